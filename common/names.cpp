// Names of methods and results (see names.hpp).
#include "common/names.hpp"

#include <array>
#include <utility>

namespace migrated {
namespace {

constexpr std::array<std::pair<pb::Method, std::string_view>, 8> methods{{
    {pb::COLD, "cold"}, {pb::PRECOPY, "precopy"}, {pb::POSTCOPY, "postcopy"}, {pb::HYBRID, "hybrid"},
    {pb::DIFF, "diff"}, {pb::FULL, "full"}, {pb::REPLAY, "replay"}, {pb::AUTO, "auto"},
}};

}  // namespace

std::string_view method_name(pb::Method m) {
  for (auto& [v, n] : methods)
    if (v == m) return n;
  return "unspecified";
}

std::vector<std::string> method_names() {
  std::vector<std::string> names;
  for (auto& [v, n] : methods) names.emplace_back(n);
  return names;
}

pb::Method parse_method(std::string_view name) {
  for (auto& [v, n] : methods)
    if (n == name) return v;
  return pb::METHOD_UNSPECIFIED;
}

std::string_view result_name(pb::Result r) {
  switch (r) {
    case pb::RESULT_OK: return "ok";
    case pb::RESULT_FAILED: return "failed";
    case pb::RESULT_ROLLED_BACK: return "rolled_back";
    case pb::RESULT_RUNNING: return "running";
    default: return "unknown";
  }
}

}  // namespace migrated
