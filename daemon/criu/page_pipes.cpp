// Page-pipe capacity of this host's CRIU (see page_pipes.hpp).
#include "criu/page_pipes.hpp"

#include <fstream>
#include <string>

namespace migrated::criu {

namespace {

constexpr std::size_t page = 4096;
constexpr int cap_sys_resource_bit = 24;  // CAP_SYS_RESOURCE, linux/capability.h

bool has_cap_sys_resource() {
  std::ifstream in("/proc/self/status");
  std::string key;
  while (in >> key) {
    if (key == "CapEff:") {
      unsigned long long mask = 0;
      in >> std::hex >> mask;
      return (mask >> cap_sys_resource_bit) & 1U;
    }
    in.ignore(4096, '\n');
  }
  return false;
}

}  // namespace

std::size_t page_pipe_capacity(bool cap_sys_resource, std::size_t pipe_max_size) {
  if (cap_sys_resource || pipe_max_size >= page_pipe_max_bytes) return page_pipe_max_bytes;
  // Pipes grow by doubling from one page; the last size the limit allows.
  std::size_t size = page;
  while (size * 2 <= pipe_max_size) size *= 2;
  return size;
}

std::size_t host_page_pipe_capacity() {
  std::ifstream in("/proc/sys/fs/pipe-max-size");
  std::size_t limit = 0;
  if (!(in >> limit)) return page_pipe_max_bytes;
  return page_pipe_capacity(has_cap_sys_resource(), limit);
}

}  // namespace migrated::criu
