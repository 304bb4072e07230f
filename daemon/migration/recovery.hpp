// A container whose rollback failed runs nowhere; only its images are left,
// in <storage>/outgoing/<id>. The source writes what it needs to restore
// them there (lost.json: the container, its runtime, bundle and images) and
// says so in the report and the journal, with the command that retries:
// `migratectl recover <id>`. Recovery tries the rollback again — through
// source_copy, the one code that brings a container back — and, once the
// container runs, removes the images. The record survives a daemon restart.
#pragma once

#include <filesystem>
#include <string>

#include "migration/context.hpp"
#include "runtime/runtime.hpp"

namespace migrated::migration {

struct lost_record {
  std::string migration_id;
  std::string runtime;
  runtime::container_info container;  // id and bundle are what a restore needs
  std::filesystem::path images;
};

result<void> write_lost(const std::filesystem::path& dir, const lost_record& r);
result<lost_record> read_lost(const std::filesystem::path& dir);

// `migratectl recover ID`: restores the container of migration ID here from
// its kept images; the container's pid.
awaitable<result<int>> recover(node_context& ctx, const std::string& migration_id);

}  // namespace migrated::migration
