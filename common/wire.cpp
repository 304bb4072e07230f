// Frame encoding and authentication tags; see wire.hpp for the format and
// docs/protocol.md for why every frame carries a sequence-bound tag.
#include "common/wire.hpp"

#include "migrated.pb.h"

namespace migrated::wire {
namespace {

constexpr std::string_view hello_key = "migrated-v1 pre-handshake frame key";

void put_u32(std::uint8_t* p, std::uint32_t v) {
  p[0] = v >> 24; p[1] = v >> 16; p[2] = v >> 8; p[3] = v;
}
std::uint32_t get_u32(const std::uint8_t* p) {
  return (std::uint32_t(p[0]) << 24) | (std::uint32_t(p[1]) << 16) |
         (std::uint32_t(p[2]) << 8) | std::uint32_t(p[3]);
}

}  // namespace

std::array<std::uint8_t, prefix_bytes> encode_prefix(prefix p) {
  std::array<std::uint8_t, prefix_bytes> out{};
  put_u32(out.data(), p.header_len);
  put_u32(out.data() + 4, p.payload_len);
  return out;
}

result<prefix> decode_prefix(std::span<const std::uint8_t, prefix_bytes> bytes) {
  prefix p{get_u32(bytes.data()), get_u32(bytes.data() + 4)};
  if (p.header_len == 0) return fail(errc::protocol, "frame with an empty header");
  if (p.header_len > max_header_bytes)
    return fail(errc::protocol, "frame header of " + std::to_string(p.header_len) +
                                    " bytes exceeds the limit of " + std::to_string(max_header_bytes));
  if (p.payload_len > max_payload_bytes)
    return fail(errc::protocol, "frame payload of " + std::to_string(p.payload_len) +
                                    " bytes exceeds the limit of " + std::to_string(max_payload_bytes));
  return p;
}

sealer::sealer() : key_(hello_key.begin(), hello_key.end()) {}

auth::mac sealer::tag(prefix p, std::span<const std::uint8_t> header,
                      std::span<const std::uint8_t> payload) const {
  std::array<std::uint8_t, 8> seq{};
  for (int i = 0; i < 8; ++i) seq[i] = std::uint8_t(seq_ >> (56 - 8 * i));
  auto pre = encode_prefix(p);
  return auth::hmac_sha256(key_, {seq, pre, header, payload});
}

auth::mac sealer::seal(prefix p, std::span<const std::uint8_t> header,
                       std::span<const std::uint8_t> payload) {
  auto t = tag(p, header, payload);
  ++seq_;
  return t;
}

result<void> sealer::open(prefix p, std::span<const std::uint8_t> header,
                          std::span<const std::uint8_t> payload,
                          std::span<const std::uint8_t> received) {
  auto expected = tag(p, header, payload);
  if (!auth::equal(expected, received))
    return fail(errc::auth, "frame " + std::to_string(seq_) +
                                " failed its integrity check (tampered, replayed or wrong key)");
  ++seq_;
  return {};
}

std::vector<std::uint8_t> encode(sealer& s, const pb::Envelope& header,
                                 std::span<const std::uint8_t> payload) {
  std::string h = header.SerializeAsString();
  prefix p{std::uint32_t(h.size()), std::uint32_t(payload.size())};
  auto hb = std::span(reinterpret_cast<const std::uint8_t*>(h.data()), h.size());
  auto t = s.seal(p, hb, payload);
  auto pre = encode_prefix(p);
  std::vector<std::uint8_t> out;
  out.reserve(prefix_bytes + h.size() + payload.size() + tag_bytes);
  out.insert(out.end(), pre.begin(), pre.end());
  out.insert(out.end(), hb.begin(), hb.end());
  out.insert(out.end(), payload.begin(), payload.end());
  out.insert(out.end(), t.begin(), t.end());
  return out;
}

result<decoded> decode(sealer& s, std::span<const std::uint8_t> bytes) {
  if (bytes.size() < prefix_bytes) return fail(errc::protocol, "truncated frame prefix");
  auto p = decode_prefix(bytes.first<prefix_bytes>());
  if (!p) return std::unexpected(p.error());
  std::size_t need = prefix_bytes + std::size_t(p->header_len) + p->payload_len + tag_bytes;
  if (bytes.size() < need) return fail(errc::protocol, "truncated frame");
  if (bytes.size() > need) return fail(errc::protocol, "trailing bytes after frame");
  auto header = bytes.subspan(prefix_bytes, p->header_len);
  auto payload = bytes.subspan(prefix_bytes + p->header_len, p->payload_len);
  auto tag = bytes.subspan(need - tag_bytes, tag_bytes);
  if (auto ok = s.open(*p, header, payload, tag); !ok) return std::unexpected(ok.error());
  return decoded{{header.begin(), header.end()}, {payload.begin(), payload.end()}};
}

result<void> parse_envelope(std::span<const std::uint8_t> header, pb::Envelope& out) {
  if (!out.ParseFromArray(header.data(), int(header.size())))
    return fail(errc::protocol, "frame header is not a valid message");
  if (out.body_case() == pb::Envelope::BODY_NOT_SET)
    return fail(errc::protocol, "frame carries no known message (newer peer?)");
  return {};
}

}  // namespace migrated::wire
