// What migrated needs to know about CRIU: its version and the kernel
// features it can use (dirty-page tracking, userfaultfd), checked once at
// start-up; and, when a dump or restore fails, the Error lines of its log
// lifted into the message (as crun's show_criu_log does).
#pragma once

#include <filesystem>
#include <string>

#include "asio.hpp"
#include "common/error.hpp"

namespace migrated::criu {

struct features {
  std::string version;        // "4.1.1"
  bool usable = false;        // `criu check` passed
  bool dirty_tracking = false;
  bool userfaultfd = false;
  std::string problem;        // why not usable
};

awaitable<features> detect(const std::filesystem::path& binary);

// Up to max_lines "Error (...)" lines of a CRIU log, joined with "; ",
// followed by " (see <log>)". Empty when the log has none or is missing.
std::string log_errors(const std::filesystem::path& log, std::size_t max_lines = 3);

}  // namespace migrated::criu
