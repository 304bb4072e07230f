// Reading and framing CRIU image files; see criu_image.hpp.
#include "images/criu_image.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <string>

namespace migrated::images::criu_image {
namespace {

std::uint32_t get_u32_le(const std::uint8_t* p) {
  return std::uint32_t(p[0]) | (std::uint32_t(p[1]) << 8) | (std::uint32_t(p[2]) << 16) |
         (std::uint32_t(p[3]) << 24);
}

std::string hex32(std::uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08x", v);
  return buf;
}

}  // namespace

result<std::vector<std::uint8_t>> read_file(const std::filesystem::path& file, std::uint64_t max_bytes) {
  const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) return fail_errno(errno, "open " + file.string());
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    return fail_errno(err, "stat " + file.string());
  }
  if (std::uint64_t(st.st_size) > max_bytes) {
    ::close(fd);
    return fail(errc::protocol, file.string() + ": " + std::to_string(st.st_size) +
                                    " bytes is too large for this image");
  }
  std::vector<std::uint8_t> data(std::size_t(st.st_size));
  std::size_t got = 0;
  while (got < data.size()) {
    const ssize_t n = ::read(fd, data.data() + got, data.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      ::close(fd);
      return fail_errno(err, "read " + file.string());
    }
    if (n == 0) break;  // shrank while reading: parse what is there
    got += std::size_t(n);
  }
  ::close(fd);
  data.resize(got);
  return data;
}

result<void> for_each_entry(std::span<const std::uint8_t> file, std::uint32_t magic,
                            const entry_fn& on_entry) {
  if (file.size() < 4) return fail(errc::protocol, "too short for an image magic");
  std::size_t pos = 4;
  const std::uint32_t first = get_u32_le(file.data());
  if (first == img_common_magic || first == img_service_magic) {
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
