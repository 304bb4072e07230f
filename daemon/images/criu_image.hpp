// CRIU's protobuf image files, read without CRIU's .proto files or libprotobuf.
//
// An image file (criu/image.c) starts with two little-endian u32 magics —
// IMG_COMMON_MAGIC, then the image's own magic (images from before CRIU 1.x
// carry only the latter; the inventory and raw data files such as
// pages-<id>.img differ again) — followed by entries, each a little-endian
// u32 length and that many bytes of one protobuf message. migrated needs only
// a few varint fields of small messages (the pagemap), so it decodes the wire
// format by hand: unknown fields are skipped, which is also how protobuf
// keeps old readers working when CRIU adds fields.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>

#include "common/error.hpp"

namespace migrated::images::criu_image {

constexpr std::uint32_t img_common_magic = 0x54564319;  // criu/include/magic.h
constexpr std::uint32_t pagemap_magic = 0x56084025;     // also shmem pagemaps

// The varint fields 1..15 of one message; a field repeated on the wire keeps
// its last value, as protobuf does. Other fields and wire types are skipped.
struct varint_fields {
  std::array<std::optional<std::uint64_t>, 16> by_number;
  std::optional<std::uint64_t> get(std::uint32_t number) const {
    return number < by_number.size() ? by_number[number] : std::nullopt;
  }
};

// errc::protocol for a message that is not valid protobuf wire format.
result<varint_fields> decode_varints(std::span<const std::uint8_t> message);

// Checks the magics of a whole image file held in memory and calls on_entry
// for each message in order. errc::protocol (without the file name: callers
// add it) for a bad magic or an entry that runs past the end of the file;
// errors from on_entry pass through.
using entry_fn = std::function<result<void>(std::span<const std::uint8_t>)>;
result<void> for_each_entry(std::span<const std::uint8_t> file, std::uint32_t magic,
                            const entry_fn& on_entry);

}  // namespace migrated::images::criu_image
