// The names of methods, results and phases as they appear on the command
// line, in reports and in logs (PHASE=). They live here, not in the engine,
// because the controller prints and parses them too and links no engine.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "migrated.pb.h"

namespace migrated {

namespace phase {
inline constexpr std::string_view queued = "queued";
inline constexpr std::string_view accepted = "accepted";
inline constexpr std::string_view measure = "measure";
inline constexpr std::string_view connect = "connect";
inline constexpr std::string_view pull = "pull";
inline constexpr std::string_view image = "image";
inline constexpr std::string_view warmup = "warmup";
inline constexpr std::string_view stop = "stop";
inline constexpr std::string_view start = "start";
inline constexpr std::string_view replay = "replay";
inline constexpr std::string_view checkpoint = "checkpoint";
inline constexpr std::string_view transfer = "transfer";
inline constexpr std::string_view restore = "restore";
inline constexpr std::string_view ready = "ready";
inline constexpr std::string_view postcopy = "postcopy";  // the process runs there; its pages follow
inline constexpr std::string_view commit = "commit";
inline constexpr std::string_view release = "release";
inline constexpr std::string_view rollback = "rollback";
inline constexpr std::string_view recovery = "recovery";  // after a restart, from the journal
inline constexpr std::string_view done = "done";
inline constexpr std::string_view failed = "failed";
}  // namespace phase

std::string_view method_name(pb::Method m);
std::string_view result_name(pb::Result r);
// The name of every method, "cold" first.
std::vector<std::string> method_names();
// "cold" → COLD; METHOD_UNSPECIFIED for unknown names.
pb::Method parse_method(std::string_view name);
// post-copy and hybrid: the process moves first, its memory after.
inline bool restores_lazily(pb::Method m) { return m == pb::POSTCOPY || m == pb::HYBRID; }

}  // namespace migrated
