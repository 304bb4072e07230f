// Reading CRIU's stats-dump and stats-restore; see criu_stats.hpp.
#include "images/criu_stats.hpp"

#include <optional>
#include <span>

#include "images/criu_image.hpp"

namespace migrated::images {
namespace {

constexpr std::uint64_t max_stats_bytes = 64 * 1024;  // one small message

result<criu::StatsEntry> read_stats(const std::filesystem::path& file) {
  auto data = criu_image::read_file(file, max_stats_bytes);
  if (!data) return std::unexpected(data.error());  // errc::not_found: none written
  std::optional<criu::StatsEntry> entry;
  auto r = criu_image::for_each_entry(*data, criu_image::stats_magic,
                                      [&](std::span<const std::uint8_t> message) -> result<void> {
                                        if (entry) return fail(errc::protocol, "more than one stats entry");
                                        auto parsed = criu_image::parse<criu::StatsEntry>(message, "stats entry");
                                        if (!parsed) return std::unexpected(parsed.error());
                                        entry = std::move(*parsed);
                                        return {};
                                      });
  if (!r) return std::unexpected(r.error().context(file.string()));
  if (!entry) return fail(errc::protocol, file.string() + ": no stats entry");
  return std::move(*entry);
}

}  // namespace

result<criu::DumpStatsEntry> read_dump_stats(const std::filesystem::path& work_dir) {
  const auto file = work_dir / "stats-dump";
  auto stats = read_stats(file);
  if (!stats) return std::unexpected(stats.error());
  if (!stats->has_dump()) return fail(errc::protocol, file.string() + ": no dump statistics");
  return stats->dump();
}

result<criu::RestoreStatsEntry> read_restore_stats(const std::filesystem::path& work_dir) {
  const auto file = work_dir / "stats-restore";
  auto stats = read_stats(file);
  if (!stats) return std::unexpected(stats.error());
  if (!stats->has_restore()) return fail(errc::protocol, file.string() + ": no restore statistics");
  return stats->restore();
}

}  // namespace migrated::images
