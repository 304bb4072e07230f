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
// Indented JSON text. A string that is not UTF-8 (an error quoting a
// child's output, a path from a request) has its bad bytes replaced
// rather than throwing.
std::string json_text(const nlohmann::ordered_json& j);

}  // namespace migrated
