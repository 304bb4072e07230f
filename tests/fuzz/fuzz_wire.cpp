// Frames as a peer sends them inside TLS (common/wire.hpp): the 8-byte
// prefix, a whole frame, and the header as an Envelope. Invariants:
// accepted lengths are within the limits, a prefix encodes back to its
// bytes, a decoded frame is exactly its pieces, and an accepted Envelope
// survives encode/decode with its payload.
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
  if (auto d = wire::decode(in))
    FUZZ_CHECK(d->header_bytes.size() + d->payload.size() + wire::prefix_bytes == size);
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

  // The frame without whatever followed it: must decode to the same pieces.
  auto d = wire::decode(in.first(wire::prefix_bytes + body));
  FUZZ_CHECK(d.has_value(), d.error().message);
  FUZZ_CHECK(std::equal(d->header_bytes.begin(), d->header_bytes.end(), header.begin(), header.end()));
  FUZZ_CHECK(std::equal(d->payload.begin(), d->payload.end(), payload.begin(), payload.end()));

  pb::Envelope env;
  if (!wire::parse_envelope(d->header_bytes, env)) return 0;
  FUZZ_CHECK(env.body_case() != pb::Envelope::BODY_NOT_SET);
  // What we accept we can send on: an Envelope parsed from at most
  // max_header_bytes re-serializes within them (unknown fields are kept).
  if (env.ByteSizeLong() > wire::max_header_bytes) return 0;
  auto round = wire::decode(wire::encode(env, d->payload));
  FUZZ_CHECK(round.has_value(), round.error().message);
  pb::Envelope env2;
  FUZZ_CHECK(wire::parse_envelope(round->header_bytes, env2).has_value());
  FUZZ_CHECK(env2.body_case() == env.body_case());
  FUZZ_CHECK(round->payload == d->payload);
  return 0;
}
