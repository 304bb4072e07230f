// Recovering a container whose rollback failed (see recovery.hpp).
#include "migration/recovery.hpp"

#include <fstream>
#include <regex>

#include <nlohmann/json.hpp>

#include "common/log.hpp"
#include "common/names.hpp"
#include "migration/outcome_query.hpp"
#include "migration/source_copy.hpp"

namespace migrated::migration {
namespace {

using json = nlohmann::json;

constexpr const char* record_name = "lost.json";

}  // namespace

result<void> write_lost(const std::filesystem::path& dir, const lost_record& r) {
  const json j = {{"migration_id", r.migration_id},
                  {"runtime", r.runtime},
                  {"container", r.container.id},
                  {"bundle", r.container.bundle.string()},
                  {"images", r.images.string()}};
  const auto file = dir / record_name;
  const auto tmp = dir / (std::string(record_name) + ".tmp");
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << j.dump(2) << "\n";
    out.flush();
    if (!out) return fail(errc::io, "write " + tmp.string());
  }
  std::error_code ec;
  std::filesystem::rename(tmp, file, ec);
  if (ec) return fail(errc::io, "rename " + tmp.string() + ": " + ec.message());
  return {};
}

result<lost_record> read_lost(const std::filesystem::path& dir) {
  std::ifstream in(dir / record_name);
  if (!in) return fail(errc::not_found, "no lost container recorded in " + dir.string());
  const json j = json::parse(in, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return fail(errc::invalid_argument, (dir / record_name).string() + ": unreadable");
  lost_record r;
  r.migration_id = j.value("migration_id", "");
  r.runtime = j.value("runtime", "");
  r.container.id = j.value("container", "");
  r.container.bundle = j.value("bundle", "");
  r.images = j.value("images", "");
  if (r.container.id.empty() || r.runtime.empty() || r.images.empty())
    return fail(errc::invalid_argument, (dir / record_name).string() + ": incomplete");
  return r;
}

awaitable<result<int>> recover(node_context& ctx, const std::string& migration_id) {
  static const std::regex id_re("m-[0-9a-f]{1,32}");
  if (!std::regex_match(migration_id, id_re)) co_return fail(errc::invalid_argument, "bad migration id '" + migration_id + "'");
  const auto dir = ctx.cfg.images_root() / "outgoing" / migration_id;
  auto record = read_lost(dir);
  if (!record) co_return std::unexpected(record.error().context("recover " + migration_id));
  if (ctx.migrations.busy(record->container.id))
    co_return fail(errc::busy, "a migration of " + record->container.id + " is in progress");
  runtime::runtime* rt = ctx.runtimes.find(record->runtime);
  if (!rt) co_return fail(errc::unsupported, "recover " + migration_id + ": runtime " + record->runtime + " is not enabled");
  auto existing = co_await rt->inspect(record->container.id);
  if (existing && existing->status == "running")
    co_return fail(errc::already_exists, "recover " + migration_id + ": " + record->container.id + " already runs here");
  // Kept frozen because Commit went unanswered: the destination may own it.
  // Ask once more; without an answer, this command is the operator's word.
  auto journaled = ctx.journal ? ctx.journal->read(migration_id) : result<journal::entry>(fail(errc::not_found, ""));
  if (journaled && journaled->side == journal::role::source && journaled->state == journal::step::committing) {
    auto answer = co_await ask_outcome(ctx, journaled->peer, migration_id);
    if (answer && answer->committed) {
      if (existing) co_await rt->remove(record->container.id);
      co_await offload(ctx.pool, [&dir] {
        std::error_code ec;
        std::filesystem::remove_all(dir, ec);
      });
      (void)ctx.journal->remove(migration_id);
      co_return fail(errc::already_exists, "recover " + migration_id + ": " + journaled->peer + " committed it: " +
                                               record->container.id + " runs there, and the copy here was released");
    }
    if (!answer)
      log::warn(*log::get("migration"), migration_id, phase::rollback, "{} (recovering {} here as asked)",
                answer.error().message, record->container.id);
  }
  const bool frozen = existing && existing->status == "paused";
  auto copy = source_copy::recovered(*rt, record->container, migration_id, record->images, frozen);
  const auto work = dir / "work-recover";
  co_await offload(ctx.pool, [&work] {
    std::error_code ec;
    std::filesystem::create_directories(work, ec);
  });
  if (existing && !frozen) co_await rt->remove(record->container.id);  // a stopped remnant
  auto back = co_await copy.roll_back(work);
  if (!back) co_return std::unexpected(back.error().context("recover " + migration_id + " (images kept in " +
                                                            record->images.string() + ")"));
  log::warn(*log::get("migration"), migration_id, phase::rollback, "{} recovered from {}", record->container.id,
            record->images.string());
  co_await offload(ctx.pool, [&dir] {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  });
  if (ctx.journal) (void)ctx.journal->remove(migration_id);
  co_return copy.container().pid;
}

}  // namespace migrated::migration
