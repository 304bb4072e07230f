// A report as one JSON object: snake_case keys, numbers as numbers,
// milliseconds to three decimals, CRIU's statistics null where CRIU wrote
// none. The one rendering of a report: `migratectl --json` prints it and
// the daemon's HTTP endpoint serves it (/v1/migrations), so a script reads
// the same keys from either.
#pragma once

#include <nlohmann/json.hpp>

#include "migrated.pb.h"

namespace migrated {

nlohmann::ordered_json report_to_json(const pb::Report& r);

}  // namespace migrated
