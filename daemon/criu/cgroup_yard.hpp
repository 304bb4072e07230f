// CRIU's cgroup yard: a directory with one entry per cgroup hierarchy of
// the host, where CRIU reads a dumped task's cgroups and creates a
// restored one's. Without one CRIU mounts a fresh view of every hierarchy
// on each dump and lets it go at once: ten mounts and their teardown on a
// cgroup v1 host, 10 to 25 ms of every freeze here. The host's own mounts
// (/sys/fs/cgroup/<controller>) are the same hierarchies, so migrated
// hands CRIU a yard of symlinks to them (`cgroup-yard` in the files of
// criu::write_overrides), built at start-up. Symlinks only: removing the
// yard never reaches into a cgroup file system.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.hpp"

namespace migrated::criu {

// One entry of the yard: the name CRIU looks for (a hierarchy's
// controllers as /proc/PID/cgroup lists them, "name=" dropped, "unified"
// for cgroup v2) and the host's mount of that hierarchy's root.
struct yard_link {
  std::string name;
  std::filesystem::path target;
  bool operator==(const yard_link&) const = default;
};

// The yard for a process whose /proc/self/cgroup, /proc/self/mountinfo
// and /proc/cgroups read as given: an entry for every hierarchy it is in,
// or why there can be none (a hierarchy mounted nowhere, or only below
// its root).
result<std::vector<yard_link>> plan_cgroup_yard(std::string_view self_cgroup, std::string_view mountinfo,
                                                std::string_view proc_cgroups);

// Builds the yard for this process in `dir` (whatever was there is
// replaced) and returns it; errors say why there is none.
result<std::filesystem::path> make_cgroup_yard(const std::filesystem::path& dir);

}  // namespace migrated::criu
