// Framing and wire format of CRIU image files; see criu_image.hpp.
#include "images/criu_image.hpp"

#include <cstdio>
#include <string>

namespace migrated::images::criu_image {
namespace {

enum wire_type : std::uint8_t { wt_varint = 0, wt_fixed64 = 1, wt_bytes = 2, wt_fixed32 = 5 };

std::uint32_t get_u32_le(const std::uint8_t* p) {
  return std::uint32_t(p[0]) | (std::uint32_t(p[1]) << 8) | (std::uint32_t(p[2]) << 16) |
         (std::uint32_t(p[3]) << 24);
}

std::string hex32(std::uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08x", v);
  return buf;
}

// Protobuf varint at msg[pos]: at most 10 bytes, at most 64 bits.
std::optional<std::uint64_t> read_varint(std::span<const std::uint8_t> msg, std::size_t& pos) {
  std::uint64_t value = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (pos >= msg.size()) return std::nullopt;
    const std::uint8_t b = msg[pos++];
    if (shift == 63 && b > 1) return std::nullopt;
    value |= std::uint64_t(b & 0x7f) << shift;
    if ((b & 0x80) == 0) return value;
  }
  return std::nullopt;
}

}  // namespace

result<varint_fields> decode_varints(std::span<const std::uint8_t> message) {
  varint_fields out;
  std::size_t pos = 0;
  while (pos < message.size()) {
    const auto key = read_varint(message, pos);
    if (!key) return fail(errc::protocol, "malformed protobuf field key");
    const std::uint64_t number = *key >> 3;
    if (number == 0) return fail(errc::protocol, "protobuf field number 0");
    std::size_t skip = 0;
    switch (*key & 7) {
      case wt_varint: {
        const auto value = read_varint(message, pos);
        if (!value) return fail(errc::protocol, "malformed protobuf varint");
        if (number < out.by_number.size()) out.by_number[number] = *value;
        continue;
      }
      case wt_fixed64: skip = 8; break;
      case wt_fixed32: skip = 4; break;
      case wt_bytes: {
        const auto len = read_varint(message, pos);
        if (!len) return fail(errc::protocol, "malformed protobuf length");
        if (*len > message.size()) return fail(errc::protocol, "protobuf field runs past its message");
        skip = std::size_t(*len);
        break;
      }
      default:
        return fail(errc::protocol, "unsupported protobuf wire type " + std::to_string(*key & 7));
    }
    if (skip > message.size() - pos) return fail(errc::protocol, "protobuf field runs past its message");
    pos += skip;
  }
  return out;
}

result<void> for_each_entry(std::span<const std::uint8_t> file, std::uint32_t magic,
                            const entry_fn& on_entry) {
  if (file.size() < 4) return fail(errc::protocol, "too short for an image magic");
  std::size_t pos = 4;
  const std::uint32_t first = get_u32_le(file.data());
  if (first == img_common_magic) {
    if (file.size() < 8) return fail(errc::protocol, "too short for an image magic");
    const std::uint32_t second = get_u32_le(file.data() + 4);
    if (second != magic)
      return fail(errc::protocol, "image magic " + hex32(second) + ", expected " + hex32(magic));
    pos = 8;
  } else if (first != magic) {
    return fail(errc::protocol, "not a CRIU image (magic " + hex32(first) + ")");
  }
  while (pos < file.size()) {
    if (file.size() - pos < 4)
      return fail(errc::protocol, "truncated entry length at offset " + std::to_string(pos));
    const std::uint32_t len = get_u32_le(file.data() + pos);
    pos += 4;
    if (len > file.size() - pos)
      return fail(errc::protocol, "entry of " + std::to_string(len) + " bytes at offset " +
                                      std::to_string(pos - 4) + " runs past the end of the file");
    if (auto r = on_entry(file.subspan(pos, len)); !r) return r;
    pos += len;
  }
  return {};
}

}  // namespace migrated::images::criu_image
