// migratectl's commands. Each returns the process exit code (exit_code).
#pragma once

#include <string>

#include "asio.hpp"
#include "ctl/client.hpp"

namespace migrated::ctl {

// What the exit status tells a script.
enum exit_code : int {
  exit_ok = 0,
  exit_failed = 1,       // failed or refused before anything changed
  exit_usage = 2,        // the command line is wrong
  exit_rolled_back = 3,  // the container stopped, and runs on at the source again
  exit_unreachable = 4,  // the daemon or the peer unreachable, or authentication refused
};

// Prints an error (a line on stderr, or with `json` an object on stdout:
// {"ok": false, "error", "code", "exit_code"}) and returns `code`.
int print_failure(const error& e, bool json, exit_code code);
// The exit status a migration's report stands for.
exit_code exit_code_of(const pb::Report& r);

struct command_line {
  std::string command;             // migrate | prepare | measure | status | history | abort | recover
  std::uint32_t interval_ms = 0;   // measure --interval-ms
  std::uint32_t limit = 0;         // history --limit (0: all the daemon keeps)
  std::string target;              // container or migration id
  std::string to;                  // --to
  std::string method = "cold";     // --method
  std::string runtime;             // --runtime (default: whichever knows the container)
  std::string auto_converge;       // --auto-converge off|force (default: the daemon's config)
  bool json = false;               // --json
  bool udp = false;                // --udp
};

awaitable<int> run_command(client& c, const command_line& cl);

}  // namespace migrated::ctl
