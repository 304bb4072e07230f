// Room for a migration's images at the destination. The source estimates
// what they will take from the container's memory (runtime::memory_bytes:
// CRIU writes its anonymous and shared pages, little else) and says so in
// the Pull; the destination refuses the Pull, before anything stops, when
// its storage has less free. A destination that fills up anyway (the
// estimate is one, the disk is shared) fails its write with ENOSPC and the
// source rolls back as from any failed transfer.
//
// What the images take, by method (image_rounds.hpp):
//   cold     one dump: the memory, plus the small images (core, mm, files…)
//   precopy  two dumps at a time: the previous round is kept while the next
//            is rebuilt beside it (or in a copy of it), and memory may grow
//            between rounds
// plus a margin of 1/8 for what the cgroup's count misses (page tables are
// not dumped, but the images' own metadata and a tmpfs's tar are) and a
// fixed 16 MiB for the images that do not scale with memory.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

#include "common/error.hpp"
#include "migrated.pb.h"

namespace migrated::migration {

constexpr std::uint64_t fixed_image_bytes = 16u << 20;  // core, mm, files, pstree, netns images and slack

// The bytes the images of a container holding `memory` bytes need at the
// destination with method `m` (0 for the methods that move no images).
std::uint64_t image_bytes_needed(std::uint64_t memory, pb::Method m);

// Bytes free for an unprivileged writer in the filesystem of `dir` (statvfs).
result<std::uint64_t> free_bytes(const std::filesystem::path& dir);

// Refuses when `free` is less than `needed`, in one sentence with both
// numbers: "edge-b's storage (/var/lib/migrated) has 64.0 MiB free; the
// images of web-1 need about 304.0 MiB (256.0 MiB of memory)".
result<void> check_room(std::uint64_t free, std::uint64_t needed, std::uint64_t memory, const std::string& node,
                        const std::filesystem::path& dir, const std::string& container);

std::string mib_text(std::uint64_t bytes);  // "304.0 MiB"

}  // namespace migrated::migration
