// Child processes (runc, criu) awaited without blocking or polling: the
// child is spawned, a pidfd for it is watched by the I/O thread's reactor
// (it becomes readable when the child exits), and a deadline timer kills it
// through the same pidfd. No thread of the pool waits for a child, so a
// long dump never holds up another migration's compression or hashing.
//
// stdin is /dev/null (or options.input); stdout and stderr go to anonymous memory files rather
// than pipes, so a restored container that inherits them can never make us
// wait for an EOF.
#pragma once

#include <chrono>
#include <string>
#include <utility>
#include <vector>

#include "asio.hpp"
#include "common/error.hpp"

namespace migrated::process {

struct result_of_run {
  int exit_code = -1;   // -1 when killed by a signal
  int signal = 0;
  std::string out;      // last 64 KiB
  std::string err;      // last 64 KiB
  double ms = 0;

  bool ok() const { return exit_code == 0; }
  // "exit 1: <last non-empty line of stderr>" for messages.
  std::string summary() const;
};

struct options {
  std::chrono::milliseconds timeout{60000};
  std::vector<std::string> extra_env;  // "K=V" added to ours
  // stdout/stderr to /dev/null instead of captured: for commands whose
  // descendants (a restored container) may inherit them and outlive us.
  bool discard_output = false;
  std::string input;  // the child's stdin (a CNI plugin's configuration); empty: /dev/null
  // Descriptors the child gets beyond 0-2: {ours, its number in the child}.
  // Nothing else of ours reaches it, close-on-exec or not.
  std::vector<std::pair<int, int>> pass_fds;
};

// Runs argv[0] (searched in PATH) with argv on the caller's executor.
// errc::not_found when the binary does not exist, errc::timeout when the
// deadline passed (the child was killed). A non-zero exit is not an error
// here: callers judge the result. (Arguments are references — callers
// await at once — because g++ 12 mishandles non-trivial by-value parameters
// of coroutines; and there is no default for `opts`: a default argument is
// a temporary that spans the co_await, which g++ 12 destroys twice.)
awaitable<result<result_of_run>> run(const std::vector<std::string>& argv, const options& opts);

// A child's status descriptor (runc's --status-fd, the read end of a
// pipe): one byte once it is ready. errc::timeout after `deadline`,
// errc::peer when the pipe closed first (the child ended before it was
// ready). Takes `fd` over: it is closed once this returns.
awaitable<result<void>> await_status(int fd, std::chrono::milliseconds deadline);

}  // namespace migrated::process
