// Phase names, shared by logs (PHASE=), progress and reports, and the
// stopwatch used for every timing in a report (steady clock, fractional
// milliseconds: sub-millisecond phases are reported as they are).
#pragma once

#include <chrono>
#include <string_view>

#include "migrated.pb.h"

namespace migrated::migration {

namespace phase {
inline constexpr std::string_view accepted = "accepted";
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
inline constexpr std::string_view commit = "commit";
inline constexpr std::string_view rollback = "rollback";
inline constexpr std::string_view done = "done";
inline constexpr std::string_view failed = "failed";
}  // namespace phase

class stopwatch {
 public:
  using clock = std::chrono::steady_clock;
  stopwatch() : start_(clock::now()) {}
  double ms() const { return std::chrono::duration<double, std::milli>(clock::now() - start_).count(); }
  clock::time_point started() const { return start_; }
  static double between(clock::time_point a, clock::time_point b) {
    return std::chrono::duration<double, std::milli>(b - a).count();
  }

 private:
  clock::time_point start_;
};

inline double mib_per_s(double bytes_per_ms) { return bytes_per_ms * 1000.0 / 1048576.0; }

std::string_view method_name(pb::Method m);
std::string_view result_name(pb::Result r);
// "cold" → COLD; METHOD_UNSPECIFIED for unknown names.
pb::Method parse_method(std::string_view name);

}  // namespace migrated::migration
