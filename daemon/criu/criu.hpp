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
  // Accepts "empty-ns none" and reads CRIU_CONFIG_FILE after an RPC request
  // (scripts/criu/0002): a container's own network namespace can then be
  // dumped and restored although runc always asks to leave it empty.
  bool own_netns = false;
  std::string problem;        // why not usable
};

awaitable<features> detect(const std::filesystem::path& binary);

// The options migrated gives every CRIU that an RPC client (runc) runs for
// it, as environments naming a configuration file (CRIU_CONFIG_FILE):
// - engine: tcp-established and file-locks, on dumps and restores alike;
//   Docker's engine needs the same file for its own restores
//   (docs/operations.md, "Docker");
// - with_netns: those, and "empty-ns none": a container's own network
//   namespace travels in its images (empty when this CRIU cannot).
struct overrides {
  std::filesystem::path engine_file;
  std::vector<std::string> engine;
  std::vector<std::string> with_netns;
};
result<overrides> write_overrides(const std::filesystem::path& dir, const features& f);

// Up to max_lines "Error (...)" lines of a CRIU log, joined with "; ",
// followed by " (see <log>)". Empty when the log has none or is missing.
std::string log_errors(const std::filesystem::path& log, std::size_t max_lines = 3);

}  // namespace migrated::criu
