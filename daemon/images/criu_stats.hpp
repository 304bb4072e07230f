// CRIU's own statistics of a dump or a restore: the stats-dump and
// stats-restore files it writes into its work directory when one ends
// (criu/stats.c), one StatsEntry each (proto/criu_images.proto) in an image
// with IMG_SERVICE_MAGIC and STATS_MAGIC. A pre-dump writes stats-dump too:
// the file holds whichever dump ended last in that directory.
#pragma once

#include <filesystem>

#include "common/error.hpp"
#include "criu_images.pb.h"

namespace migrated::images {

// errc::not_found when CRIU wrote none there (it had not ended, or it
// failed); errc::protocol for a file that is not a stats image, or one
// without the part asked for.
result<criu::DumpStatsEntry> read_dump_stats(const std::filesystem::path& work_dir);
result<criu::RestoreStatsEntry> read_restore_stats(const std::filesystem::path& work_dir);

}  // namespace migrated::images
