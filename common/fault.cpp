// Reads MIGRATED_FAULT once; a comma-separated list of point names.
#include "common/fault.hpp"

#include <cstdlib>
#include <set>
#include <string>

namespace migrated {

bool fault_injected(std::string_view point) {
  static const std::set<std::string, std::less<>> points = [] {
    std::set<std::string, std::less<>> s;
    const char* env = std::getenv("MIGRATED_FAULT");
    std::string v = env ? env : "";
    std::size_t start = 0;
    while (start <= v.size()) {
      auto end = v.find(',', start);
      if (end == std::string::npos) end = v.size();
      if (end > start) s.emplace(v.substr(start, end - start));
      start = end + 1;
    }
    return s;
  }();
  return points.contains(point);
}

}  // namespace migrated
