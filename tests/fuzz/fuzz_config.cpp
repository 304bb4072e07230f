// The daemon's configuration (common/config.hpp): YAML text through
// parse_config and validate, as --check-config does with a file; and the
// first line as a "key.path=value" override on the defaults, as the
// command line does. Invariants: every refusal is errc::config with a
// message, and a configuration that validated once still validates after
// a no-op override of one of its own keys.
#include <cstdint>
#include <string>
#include <string_view>

#include "common/config.hpp"
#include "fuzz_support.hpp"

using namespace migrated;

namespace {

void refused_well(const error& e) {
  FUZZ_CHECK(e.code == errc::config || e.code == errc::invalid_argument, e.message);
  FUZZ_CHECK(!e.message.empty());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);

  auto cfg = parse_config(text, "fuzz.yaml");
  if (!cfg) {
    refused_well(cfg.error());
  } else if (auto ok = validate(*cfg); !ok) {
    refused_well(ok.error());
  } else {
    auto same = *cfg;
    auto o = apply_override(same, "log.level=" + same.log.level);
    FUZZ_CHECK(o.has_value(), o.error().message);
    FUZZ_CHECK(validate(same).has_value());
  }

  auto defaults = parse_config("", "defaults");
  FUZZ_CHECK(defaults.has_value());
  const std::string_view line = text.substr(0, text.find('\n'));
  if (auto o = apply_override(*defaults, line); !o) refused_well(o.error());
  else if (auto ok = validate(*defaults); !ok) refused_well(ok.error());
  return 0;
}
