// CRIU's image files: their framing, and their messages parsed with the
// code generated from proto/criu_images.proto.
//
// An image file (criu/image.c) starts with two little-endian u32 magics —
// IMG_COMMON_MAGIC (IMG_SERVICE_MAGIC for CRIU's own files such as
// stats-dump), then the image's own magic (images from before CRIU 1.x carry
// only the latter; the inventory and raw data files such as pages-<id>.img
// differ again) — followed by entries, each a little-endian u32 length and
// that many bytes of one protobuf message. Unknown fields are kept aside by
// protobuf, which is how old readers keep working when CRIU adds fields.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <limits>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.hpp"
#include "criu_images.pb.h"

namespace migrated::images::criu_image {

constexpr std::uint32_t img_common_magic = 0x54564319;   // criu/include/magic.h
constexpr std::uint32_t img_service_magic = 0x55105940;  // CRIU's own files (stats)
constexpr std::uint32_t pagemap_magic = 0x56084025;      // also shmem pagemaps
constexpr std::uint32_t stats_magic = 0x57093306;

// One entry as the message `Msg`; errc::protocol, naming `what`, for bytes
// that are not one.
template <class Msg>
result<Msg> parse(std::span<const std::uint8_t> message, std::string_view what) {
  Msg msg;
  if (message.size() > std::size_t(std::numeric_limits<int>::max()) ||
      !msg.ParseFromArray(message.data(), int(message.size())))
    return fail(errc::protocol, std::string(what) + " is not valid protobuf");
  return msg;
}

// A whole image file, errc::protocol if larger than max_bytes (image files
// migrated parses are small; a huge one is not what it claims).
result<std::vector<std::uint8_t>> read_file(const std::filesystem::path& file, std::uint64_t max_bytes);

// Checks the magics of a whole image file held in memory and calls on_entry
// for each message in order. errc::protocol (without the file name: callers
// add it) for a bad magic or an entry that runs past the end of the file;
// errors from on_entry pass through.
using entry_fn = std::function<result<void>(std::span<const std::uint8_t>)>;
result<void> for_each_entry(std::span<const std::uint8_t> file, std::uint32_t magic,
                            const entry_fn& on_entry);

}  // namespace migrated::images::criu_image
