// migratectl's commands. Each returns the process exit code:
// 0 success, 1 failed / refused / rolled back, 2 usage.
#pragma once

#include <string>

#include "asio.hpp"
#include "ctl/client.hpp"

namespace migrated::ctl {

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
