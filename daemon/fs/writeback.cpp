#include "fs/writeback.hpp"

#include <fcntl.h>

#include "common/unique_fd.hpp"

namespace migrated::fs {

result<void> start_writeback(const std::filesystem::path& dir, std::uint64_t from_bytes) {
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    if (!e.is_regular_file(ec) || e.file_size(ec) < from_bytes) continue;
    unique_fd fd(::open(e.path().c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
    if (!fd) return fail_errno(errno, "open " + e.path().string());
    if (::sync_file_range(fd.get(), 0, 0, SYNC_FILE_RANGE_WRITE) != 0)
      return fail_errno(errno, "write back " + e.path().string());
  }
  if (ec) return fail(errc::io, "list " + dir.string() + ": " + ec.message());
  return {};
}

result<void> write_behind::wrote(std::uint64_t offset, std::uint64_t len) {
  if (::sync_file_range(fd_, off_t(offset), off_t(len), SYNC_FILE_RANGE_WRITE) != 0)
    return fail_errno(errno, "write back");
  if (prev_len_ != 0 &&
      ::sync_file_range(fd_, off_t(prev_offset_), off_t(prev_len_),
                        SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER) != 0)
    return fail_errno(errno, "write back");
  prev_offset_ = offset;
  prev_len_ = len;
  return {};
}

}  // namespace migrated::fs
