// Frames as a peer sends them (common/wire.hpp): the 8-byte prefix, a whole
// frame under the public pre-handshake key, and the header as an Envelope.
// A mutated frame almost never carries a valid tag, so the same bytes are
// also decoded with the tag they would need, which reaches everything past
// the tag check. Invariants: accepted lengths are within the limits, a
// prefix encodes back to its bytes, and an accepted Envelope survives
// encode/decode with its payload.
#include <algorithm>
#include <cstdint>
#include <span>
#include <vector>

#include "common/wire.hpp"
#include "fuzz_support.hpp"
#include "migrated.pb.h"

using namespace migrated;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::uint8_t> in(data, size);
  {
    wire::sealer s;  // as received: the seeds carry real tags
    if (auto d = wire::decode(s, in)) {
      FUZZ_CHECK(s.sequence() == 1);
      FUZZ_CHECK(d->header_bytes.size() + d->payload.size() + wire::prefix_bytes + wire::tag_bytes == size);
    }
  }
  if (size < wire::prefix_bytes) return 0;
  auto p = wire::decode_prefix(in.first<wire::prefix_bytes>());
  if (!p) return 0;
  FUZZ_CHECK(p->header_len > 0 && p->header_len <= wire::max_header_bytes);
  FUZZ_CHECK(p->payload_len <= wire::max_payload_bytes);
  const auto again = wire::encode_prefix(*p);
  FUZZ_CHECK(std::equal(again.begin(), again.end(), data));

  const std::size_t body = std::size_t(p->header_len) + p->payload_len;
  if (size - wire::prefix_bytes < body) return 0;
  const auto header = in.subspan(wire::prefix_bytes, p->header_len);
  const auto payload = in.subspan(wire::prefix_bytes + p->header_len, p->payload_len);

  // The same frame with the tag it needs: must decode to the same pieces.
  wire::sealer sender, receiver;
  const auto tag = sender.seal(*p, header, payload);
  std::vector<std::uint8_t> frame(data, data + wire::prefix_bytes + body);
  frame.insert(frame.end(), tag.begin(), tag.end());
  auto d = wire::decode(receiver, frame);
  FUZZ_CHECK(d.has_value(), d.error().message);
  FUZZ_CHECK(std::equal(d->header_bytes.begin(), d->header_bytes.end(), header.begin(), header.end()));
  FUZZ_CHECK(std::equal(d->payload.begin(), d->payload.end(), payload.begin(), payload.end()));

  pb::Envelope env;
  if (!wire::parse_envelope(d->header_bytes, env)) return 0;
  FUZZ_CHECK(env.body_case() != pb::Envelope::BODY_NOT_SET);
  // What we accept we can send on: an Envelope parsed from at most
  // max_header_bytes re-serializes within them (unknown fields are kept).
  if (env.ByteSizeLong() > wire::max_header_bytes) return 0;
  wire::sealer out, back;
  auto round = wire::decode(back, wire::encode(out, env, d->payload));
  FUZZ_CHECK(round.has_value(), round.error().message);
  pb::Envelope env2;
  FUZZ_CHECK(wire::parse_envelope(round->header_bytes, env2).has_value());
  FUZZ_CHECK(env2.body_case() == env.body_case());
  FUZZ_CHECK(round->payload == d->payload);
  return 0;
}
