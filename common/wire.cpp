// Frame encoding; see wire.hpp for the format.
#include "common/wire.hpp"

#include "migrated.pb.h"

namespace migrated::wire {
namespace {

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

std::vector<std::uint8_t> encode(const pb::Envelope& header, std::span<const std::uint8_t> payload) {
  std::string h = header.SerializeAsString();
  prefix p{std::uint32_t(h.size()), std::uint32_t(payload.size())};
  auto pre = encode_prefix(p);
  std::vector<std::uint8_t> out;
  out.reserve(prefix_bytes + h.size() + payload.size());
  out.insert(out.end(), pre.begin(), pre.end());
  out.insert(out.end(), h.begin(), h.end());
  out.insert(out.end(), payload.begin(), payload.end());
  return out;
}

result<decoded> decode(std::span<const std::uint8_t> bytes) {
  if (bytes.size() < prefix_bytes) return fail(errc::protocol, "truncated frame prefix");
  auto p = decode_prefix(bytes.first<prefix_bytes>());
  if (!p) return std::unexpected(p.error());
  std::size_t need = prefix_bytes + std::size_t(p->header_len) + p->payload_len;
  if (bytes.size() < need) return fail(errc::protocol, "truncated frame");
  if (bytes.size() > need) return fail(errc::protocol, "trailing bytes after frame");
  auto header = bytes.subspan(prefix_bytes, p->header_len);
  auto payload = bytes.subspan(prefix_bytes + p->header_len, p->payload_len);
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
