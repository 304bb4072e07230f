// A fleet for the fuzz targets that need identities: made once per process
// with scripts/migrated-ca in a temporary directory (a CA, the peer edge-a
// and the controller ctl-1), loaded as credentials.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "common/credentials.hpp"

namespace migrated::fuzzing {

inline const credentials& fleet_member(const std::string& name) {
  static const std::filesystem::path dir = [] {
    char templ[] = "/tmp/migrated-fuzz-fleet.XXXXXX";
    if (!::mkdtemp(templ)) std::abort();
    const std::string ca = std::string(MIGRATED_SOURCE_DIR) + "/scripts/migrated-ca";
    const std::string d = templ;
    if (std::system(("bash " + ca + " init " + d + " >/dev/null && bash " + ca + " issue " + d +
                     " edge-a >/dev/null && bash " + ca + " issue " + d + " ctl-1 --role controller >/dev/null")
                        .c_str()) != 0)
      std::abort();
    return std::filesystem::path(d);
  }();
  static const credentials peer = [] {
    auto c = credentials::load({dir / "ca.crt", dir / "edge-a.crt", dir / "edge-a.key"});
    if (!c) std::abort();
    return *c;
  }();
  static const credentials controller = [] {
    auto c = credentials::load({dir / "ca.crt", dir / "ctl-1.crt", dir / "ctl-1.key"});
    if (!c) std::abort();
    return *c;
  }();
  return name == "ctl-1" ? controller : peer;
}

}  // namespace migrated::fuzzing
