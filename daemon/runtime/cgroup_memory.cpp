// A container's memory from its cgroup (see cgroup_memory.hpp).
#include "runtime/cgroup_memory.hpp"

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

namespace migrated::runtime {
namespace {

const std::filesystem::path cgroup_root = "/sys/fs/cgroup";

bool lists(const std::string& controllers, std::string_view name) {
  std::stringstream list(controllers);
  for (std::string c; std::getline(list, c, ',');)
    if (c == name) return true;
  return false;
}

// memory.stat as key → value.
std::map<std::string, std::uint64_t> read_stat(const std::filesystem::path& file) {
  std::map<std::string, std::uint64_t> out;
  std::ifstream in(file);
  std::string key;
  std::uint64_t value = 0;
  while (in >> key >> value) out[key] = value;
  return out;
}

}  // namespace

result<std::uint64_t> cgroup_memory_bytes(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/cgroup");
  if (!in) return fail(errc::not_found, "process " + std::to_string(pid) + " is gone");
  for (std::string line; std::getline(in, line);) {
    auto first = line.find(':'), second = line.find(':', first + 1);
    if (first == std::string::npos || second == std::string::npos) continue;
    const std::string controllers = line.substr(first + 1, second - first - 1);
    const std::string path = line.substr(second + 2);  // drop the leading '/'
    if (lists(controllers, "memory")) {
      const auto stat = read_stat(cgroup_root / "memory" / path / "memory.stat");
      if (stat.contains("total_rss")) {
        const auto shmem = stat.contains("total_shmem") ? stat.at("total_shmem") : 0;
        return stat.at("total_rss") + shmem;
      }
    }
    if (controllers.empty()) {
      const auto stat = read_stat(cgroup_root / path / "memory.stat");
      if (stat.contains("anon")) return stat.at("anon") + (stat.contains("shmem") ? stat.at("shmem") : 0);
    }
  }
  return fail(errc::unsupported, "process " + std::to_string(pid) + " has no memory cgroup with memory.stat");
}

}  // namespace migrated::runtime
