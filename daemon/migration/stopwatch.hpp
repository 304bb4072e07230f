// The stopwatch behind every timing in a report: the steady clock, in
// fractional milliseconds, so sub-millisecond phases are reported as they are.
#pragma once

#include <chrono>

namespace migrated::migration {

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

}  // namespace migrated::migration
