// Writing just-written files back to the disk now rather than later. On
// ext4 (data=ordered) the metadata work of a switch-over — the final
// round's few files, a rootfs file replaced, a journal record — waits for
// the journal, and the journal for dirty data whose blocks it allocated:
// with the GiBs of warm-up rounds still in the page cache (nothing starts
// writing them before a tenth of RAM is dirty, or 30 s), a 2 GiB hybrid's
// final bundle sync took 107–162 ms of its downtime instead of 2 ms.
// So at the destination a round's large files are sent to the disk once
// the round is delivered, and a large copy keeps what it has dirtied to
// about two of its steps. Small files are left to the page cache: they
// are usually removed before the kernel would write them at all.
#pragma once

#include <cstdint>
#include <filesystem>

#include "common/error.hpp"

namespace migrated::fs {

// Files from this size on are written back early.
inline constexpr std::uint64_t writeback_from_bytes = 256u << 20;

// Starts the writeback of every regular file directly in `dir` of at least
// `from_bytes`, without waiting for it.
result<void> start_writeback(const std::filesystem::path& dir, std::uint64_t from_bytes = writeback_from_bytes);

// For a file written sequentially in steps: each step goes to the disk as
// it is written, and the step before it is waited for.
class write_behind {
 public:
  explicit write_behind(int fd) : fd_(fd) {}
  // [offset, offset + len) was just written.
  result<void> wrote(std::uint64_t offset, std::uint64_t len);

 private:
  int fd_;
  std::uint64_t prev_offset_ = 0, prev_len_ = 0;
};

}  // namespace migrated::fs
