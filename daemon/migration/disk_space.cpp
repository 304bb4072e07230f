// Room for a migration's images (see disk_space.hpp).
#include "migration/disk_space.hpp"

#include <sys/statvfs.h>

#include <cerrno>
#include <cstdio>

namespace migrated::migration {

std::uint64_t image_bytes_needed(std::uint64_t memory, pb::Method m) {
  std::uint64_t dumps = 0;
  if (m == pb::COLD || m == pb::METHOD_UNSPECIFIED) dumps = 1;
  else if (m == pb::PRECOPY || m == pb::HYBRID) dumps = 2;  // a round and the one before
  if (dumps == 0) return 0;
  const std::uint64_t one = memory + memory / 8 + fixed_image_bytes;
  return dumps * one;
}

result<std::uint64_t> free_bytes(const std::filesystem::path& dir) {
  struct statvfs st {};
  if (::statvfs(dir.c_str(), &st) != 0) return fail_errno(errno, "statvfs " + dir.string());
  return std::uint64_t(st.f_bavail) * std::uint64_t(st.f_frsize);
}

std::string mib_text(std::uint64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f MiB", double(bytes) / 1048576.0);
  return buf;
}

result<void> check_room(std::uint64_t free, std::uint64_t needed, std::uint64_t memory, const std::string& node,
                        const std::filesystem::path& dir, const std::string& container) {
  if (free >= needed) return {};
  return fail(errc::no_space, node + "'s storage (" + dir.string() + ") has " + mib_text(free) +
                                  " free; the images of " + container + " need about " + mib_text(needed) + " (" +
                                  mib_text(memory) + " of memory)");
}

}  // namespace migrated::migration
