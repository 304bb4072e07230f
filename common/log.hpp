// Logging: spdlog loggers per module ("server", "transport", "migration",
// "runtime", "criu", "main") writing to one sink chosen by config: stderr,
// a file, or journald. Every line about a migration carries its id and
// phase; with the journald sink they are also the structured fields
// MIGRATION_ID= and PHASE= (plus MODULE=), so operators can run
//   journalctl -u migrated MIGRATION_ID=m-3f2a…
// Library code only logs through these; errors are logged once, at the
// boundary that handles them.
#pragma once

#include <memory>
#include <span>
#include <string>
#include <string_view>

#include <spdlog/spdlog.h>

#include "common/error.hpp"

namespace migrated::log {

struct options {
  std::string sink = "stderr";  // stderr | journald | file
  std::string level = "info";
  std::string file;             // for sink == "file"
  std::string ident = "migrated";  // SYSLOG_IDENTIFIER for journald
};

// Installs the sink for every module logger (existing and future).
// Fails with a clear message for an unknown sink/level or unwritable file.
result<void> setup(const options& opts);

// The logger of a module; created on first use with the current sink.
std::shared_ptr<spdlog::logger> get(std::string_view module);

// Logs one line about a migration: "[<id>] <phase>: <message>" on text sinks,
// and MIGRATION_ID=<id> PHASE=<phase> fields on journald.
void event(spdlog::logger& logger, spdlog::level::level_enum level,
           std::string_view migration_id, std::string_view phase,
           std::string_view message);

// One more journald field of a summary line: NAME=value.
struct field {
  std::string_view name;
  std::string value;
};

// The one line that closes a migration: "[<id>] finished: <message>" on
// text sinks; on journald also PHASE=finished and `fields` (CONTAINER=,
// PEER=, METHOD=, RESULT=, DOWNTIME_MS=), for queries such as
//   journalctl -u migrated RESULT=rolled_back
void summary(spdlog::logger& logger, spdlog::level::level_enum level, std::string_view migration_id,
             std::span<const field> fields, std::string_view message);

template <class... Args>
void info(spdlog::logger& l, std::string_view id, std::string_view phase,
          fmt::format_string<Args...> fmt, Args&&... args) {
  event(l, spdlog::level::info, id, phase, fmt::format(fmt, std::forward<Args>(args)...));
}
template <class... Args>
void warn(spdlog::logger& l, std::string_view id, std::string_view phase,
          fmt::format_string<Args...> fmt, Args&&... args) {
  event(l, spdlog::level::warn, id, phase, fmt::format(fmt, std::forward<Args>(args)...));
}
template <class... Args>
void error(spdlog::logger& l, std::string_view id, std::string_view phase,
           fmt::format_string<Args...> fmt, Args&&... args) {
  event(l, spdlog::level::err, id, phase, fmt::format(fmt, std::forward<Args>(args)...));
}

}  // namespace migrated::log
