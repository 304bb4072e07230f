// One migrated node: everything main starts, in order — CRIU and runtime
// checks (a backend that cannot work fails here, in one sentence), the
// listeners, readiness for systemd — and the graceful stop on SIGTERM:
// stop accepting, let running migrations finish or roll back, exit 0.
#pragma once

#include "asio.hpp"
#include "common/config.hpp"
#include "common/error.hpp"

namespace migrated::server {

// Runs the node until SIGTERM/SIGINT. Returns the process exit code;
// start-up failures are logged once here and return 1.
awaitable<int> run_node(const config& cfg, asio::thread_pool& pool);

}  // namespace migrated::server
