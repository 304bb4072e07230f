// How much of a container's memory CRIU can hold in one page pipe. A dump
// collects the memory into pipes while the container is frozen (vmsplice,
// one parasite round trip per pipe), so the pipes' size sets a share of
// every downtime: with 1 MiB pipes a frozen 1 GiB container needs ~1000
// round trips (~100 ms here), with CRIU's largest, 4 MiB, a quarter of them.
// (A lazy dump leaves its lazy pages in the task, scripts/criu/0006: there
// it is the pre-copy rounds and the whole-image dumps that pay.)
// CRIU grows each pipe with F_SETPIPE_SZ; above fs.pipe-max-size the kernel
// lets only CAP_SYS_RESOURCE do that. The package's sysctl.d file raises
// the limit for hosts whose root lacks that capability (containers,
// sandboxes); the daemon says at start-up when a host still limits it.
#pragma once

#include <cstddef>

namespace migrated::criu {

// CRIU's own cap on a page pipe: an order-3 allocation of kernel pipe
// buffers (PIPE_MAX_SIZE, 819 slots on x86-64), which F_SETPIPE_SZ rounds up
// to a power of two pages.
inline constexpr std::size_t page_pipe_max_bytes = std::size_t{4} << 20;

// The largest page pipe CRIU reaches, given whether it may exceed the
// kernel's limit and that limit (fs.pipe-max-size, bytes).
std::size_t page_pipe_capacity(bool cap_sys_resource, std::size_t pipe_max_size);

// The same for this host and this process's capabilities (CRIU is its
// child and has the same); page_pipe_max_bytes when the limit is unreadable.
std::size_t host_page_pipe_capacity();

}  // namespace migrated::criu
