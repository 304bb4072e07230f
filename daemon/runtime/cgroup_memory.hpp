// The memory a container holds, from its cgroup: what its checkpoint will
// write. CRIU dumps a process's anonymous and shared memory pages (the page
// cache of its files stays behind), so the estimate is the cgroup's
// anonymous plus shmem bytes: cgroup v2 `anon` + `shmem`, v1 `total_rss` +
// `total_shmem` in memory.stat. Found from /proc/<pid>/cgroup, like
// cgroup_cpu.
#pragma once

#include <cstdint>

#include "common/error.hpp"

namespace migrated::runtime {

// Bytes of anonymous and shared memory in process `pid`'s memory cgroup.
result<std::uint64_t> cgroup_memory_bytes(int pid);

}  // namespace migrated::runtime
