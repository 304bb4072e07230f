// Child processes (runc, criu) run to completion on the thread pool, never
// on the I/O thread. stdin is /dev/null; stdout and stderr go to anonymous
// memory files rather than pipes, so a restored container that inherits
// them can never make us wait for an EOF. A deadline kills the child.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "asio.hpp"
#include "common/error.hpp"

namespace migrated::runtime {

struct process_result {
  int exit_code = -1;   // -1 when killed by a signal
  int signal = 0;
  std::string out;      // last 64 KiB
  std::string err;      // last 64 KiB
  double ms = 0;

  bool ok() const { return exit_code == 0; }
  // "exit 1: <last non-empty line of stderr>" for messages.
  std::string summary() const;
};

struct process_options {
  std::chrono::milliseconds timeout{60000};
  std::vector<std::string> extra_env;  // "K=V" added to ours
  // stdout/stderr to /dev/null instead of captured: for commands whose
  // descendants (a restored container) may inherit them and outlive us.
  bool discard_output = false;
};

// Runs argv[0] (searched in PATH) with argv. errc::not_found when the binary
// does not exist, errc::timeout when the deadline passed (child killed).
// A non-zero exit is not an error here: callers judge process_result.
// (Arguments are references — callers await at once — because g++ 12
// mishandles non-trivial by-value parameters of coroutines.)
awaitable<result<process_result>> run(asio::thread_pool& pool, const std::vector<std::string>& argv,
                                      const process_options& opts = {});

// The blocking core of run(), for callers already on a pool thread.
result<process_result> run_blocking(const std::vector<std::string>& argv, const process_options& opts);

}  // namespace migrated::runtime
