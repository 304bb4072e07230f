// Recovering unfinished migrations when the daemon starts (see
// journal_recovery.hpp). Each record ends in the registry as a migration
// in phase "recovery", so `migratectl status` shows what was done.
#include "migration/journal_recovery.hpp"

#include "common/log.hpp"
#include "common/names.hpp"
#include "migration/recovery.hpp"
#include "migration/source_copy.hpp"

namespace migrated::migration {
namespace {

std::shared_ptr<spdlog::logger> logger() { return log::get("migration"); }

pb::Report report_of(const node_context& ctx, const journal::entry& e) {
  pb::Report r;
  r.set_id(e.migration_id);
  r.set_container(e.container);
  const bool here_first = e.side == journal::role::source;
  r.set_source(here_first ? ctx.cfg.node_name : e.peer);
  r.set_destination(here_first ? e.peer : ctx.cfg.node_name);
  r.set_runtime(e.runtime);
  r.set_method(parse_method(e.method));
  r.set_requested_method(parse_method(e.method));
  r.set_phase(std::string(phase::recovery));
  r.set_result(pb::RESULT_RUNNING);
  r.set_started_unix_ms(e.updated_unix_ms);
  return r;
}

void finish(node_context& ctx, pb::Report r, const result<std::string>& what, pb::Result ok_result) {
  r.set_result(what ? ok_result : pb::RESULT_FAILED);
  r.set_error("recovered after a restart: " + (what ? *what : what.error().message));
  if (what) log::warn(*logger(), r.id(), phase::recovery, "{}: {}", r.container(), *what);
  else log::error(*logger(), r.id(), phase::recovery, "{}: {}", r.container(), what.error().message);
  ctx.migrations.finish(r);
}

std::filesystem::path outgoing(const node_context& ctx, const journal::entry& e) {
  return ctx.cfg.images_root() / "outgoing" / e.migration_id;
}

awaitable<void> drop_images(node_context& ctx, const journal::entry& e) {
  const auto dir = outgoing(ctx, e);
  co_await offload(ctx.pool, [&dir] {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  });
}

void forget(node_context& ctx, const journal::entry& e) {
  if (auto ok = ctx.journal->remove(e.migration_id); !ok)
    log::error(*logger(), e.migration_id, phase::recovery, "{}", ok.error().message);
}

// The container back here through source_copy, the code that rolls back:
// a frozen copy is thawed; one that is gone (or stopped) comes back from
// its images, or fresh from its bundle when it was stopped without any.
awaitable<result<std::string>> bring_back(node_context& ctx, const journal::entry& e, bool only_if_frozen) {
  runtime::runtime* rt = ctx.runtimes.find(e.runtime);
  if (!rt) co_return fail(errc::unsupported, "runtime " + e.runtime + " is not enabled");
  auto info = co_await rt->inspect(e.container);
  if (!info && info.error().code != errc::not_found) co_return std::unexpected(info.error());
  if (info && info->status == "running") {
    co_await drop_images(ctx, e);
    co_return e.container + " runs here";
  }
  const bool frozen = info && info->status == "paused";
  if (only_if_frozen && !frozen) {
    co_await drop_images(ctx, e);  // warm-up rounds, if any
    co_return e.container + " was never stopped (it is " + (info ? info->status : "gone") + "): nothing to do";
  }
  // A post-copy's images lack the memory, which only its frozen copy held:
  // restoring them would bring back a process with pages missing.
  if (!frozen && restores_lazily(parse_method(e.method)))
    co_return fail(errc::runtime, e.container + " runs nowhere: its post-copy images lack its memory, which only its "
                                                "frozen copy here held, and that copy is " +
                                      (info ? info->status : std::string("gone")));
  if (info && !frozen) co_await rt->remove(e.container);  // a stopped remnant: its images bring it back
  runtime::container_info c;
  c.id = e.container;
  c.bundle = e.bundle;
  auto copy = source_copy::recovered(*rt, c, e.migration_id, only_if_frozen ? std::filesystem::path{} : e.images, frozen,
                                     !restores_lazily(parse_method(e.method)));
  const auto work = outgoing(ctx, e) / "work-recovery";
  co_await offload(ctx.pool, [&work] {
    std::error_code ec;
    std::filesystem::create_directories(work, ec);
  });
  auto back = co_await copy.roll_back(work);
  if (back) {
    co_await drop_images(ctx, e);  // its images are not needed any more
  }
  if (back) co_return e.container + (frozen ? " runs on here (thawed)" : " runs here again (pid " +
                                                                          std::to_string(copy.container().pid) + ")");
  std::string lost = e.container + " runs nowhere: it could not be brought back (" + back.error().message + ")";
  if (!e.images.empty()) {
    const lost_record record{e.migration_id, e.runtime, c, e.images};
    const auto dir = outgoing(ctx, e);
    auto kept = co_await offload(ctx.pool, [&dir, &record] { return write_lost(dir, record); });
    lost += "; its images are kept in " + e.images.string() +
            (kept ? "; `migratectl recover " + e.migration_id + "` restores it here" : " (" + kept.error().message + ")");
  }
  co_return fail(back.error().code, lost);
}

// The destination owns it: the copy here goes, with its images.
awaitable<result<std::string>> release(node_context& ctx, const journal::entry& e) {
  runtime::runtime* rt = ctx.runtimes.find(e.runtime);
  if (!rt) co_return fail(errc::unsupported, "runtime " + e.runtime + " is not enabled");
  if (auto gone = co_await rt->remove(e.container); !gone) co_return std::unexpected(gone.error());
  const auto dir = outgoing(ctx, e);
  co_await offload(ctx.pool, [&dir] {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  });
  co_return e.container + " runs on " + e.peer + " (committed): the copy here was released";
}

awaitable<result<std::string>> remove_copy(node_context& ctx, const journal::entry& e) {
  runtime::runtime* rt = ctx.runtimes.find(e.runtime);
  if (!rt) co_return fail(errc::unsupported, "runtime " + e.runtime + " is not enabled");
  if (auto gone = co_await rt->remove(e.container); !gone) co_return std::unexpected(gone.error());
  co_return "not committed: the copy of " + e.container + " here was removed (" + e.peer + " keeps its own)";
}

// One record's rule, done; the journal record goes once it succeeded.
awaitable<void> settle(node_context& ctx, const journal::entry& e, recovery_action a, pb::Report report) {
  result<std::string> what = fail(errc::internal, "no rule");
  pb::Result done = pb::RESULT_ROLLED_BACK;
  switch (a) {
    case recovery_action::thaw_if_frozen: what = co_await bring_back(ctx, e, true); break;
    case recovery_action::resume:  // (its copy was not frozen any more)
    case recovery_action::bring_back: what = co_await bring_back(ctx, e, false); break;
    case recovery_action::release:
      what = co_await release(ctx, e);
      done = pb::RESULT_OK;
      break;
    case recovery_action::remove_copy: what = co_await remove_copy(ctx, e); break;
    case recovery_action::keep: what = std::string("committed: ") + e.container + " is this node's"; done = pb::RESULT_OK; break;
    case recovery_action::ask: break;
  }
  // A container that could not be brought back has its lost.json now;
  // one whose removal failed keeps its record, and the next start retries.
  const bool retry = !what && (a == recovery_action::release || a == recovery_action::remove_copy);
  if (a != recovery_action::keep && !retry) forget(ctx, e);
  finish(ctx, std::move(report), what, done);
}

// A record in `committing`: ask, in the background, then settle.
// (Registered as running by the caller, before it is spawned: its
// container is busy from the start.)
awaitable<void> ask_then_settle(node_context& ctx, journal::entry e, std::shared_ptr<bool> stopped) {
  auto report = report_of(ctx, e);
  log::warn(*logger(), e.migration_id, phase::recovery, "{}: Commit went to {} before the restart: asking it",
            e.container, e.peer);
  std::function<bool()> stop = [stopped] { return *stopped; };
  auto answer = co_await ask_outcome_until(ctx, e.peer, e.migration_id, ctx.cfg.timeouts.outcome, stop);
  if (answer) {
    const std::optional<outcome> heard = *answer;
    co_await settle(ctx, e, decide_after(heard), report);
    co_return;
  }
  // No answer: the container may run there. Frozen here it stays, with its
  // images and its record: never a second copy on a guess.
  std::string why = e.container + " is kept frozen here: " + e.peer + " could not say whether it committed (" +
                    answer.error().message + ")";
  if (*stopped) {
    why += "; asked again at the next start";
  } else if (!e.images.empty()) {
    runtime::container_info c;
    c.id = e.container;
    c.bundle = e.bundle;
    const lost_record record{e.migration_id, e.runtime, c, e.images};
    const auto dir = outgoing(ctx, e);
    auto kept = co_await offload(ctx.pool, [&dir, &record] { return write_lost(dir, record); });
    why += kept ? "; `migratectl recover " + e.migration_id + "` asks again and brings it back here if it did not commit"
                : " (" + kept.error().message + ")";
  }
  const result<std::string> failed = fail(errc::peer, why);
  finish(ctx, std::move(report), failed, pb::RESULT_FAILED);
}

}  // namespace

std::string_view name(recovery_action a) {
  switch (a) {
    case recovery_action::thaw_if_frozen: return "thaw_if_frozen";
    case recovery_action::bring_back: return "bring_back";
    case recovery_action::resume: return "resume";
    case recovery_action::ask: return "ask";
    case recovery_action::release: return "release";
    case recovery_action::remove_copy: return "remove_copy";
    case recovery_action::keep: return "keep";
  }
  return "unknown";
}

recovery_action decide(const journal::entry& e) {
  using st = journal::step;
  if (e.side == journal::role::destination)
    return e.state == st::committed ? recovery_action::keep : recovery_action::remove_copy;
  switch (e.state) {
    case st::accepted: return recovery_action::thaw_if_frozen;
    case st::stopping: return recovery_action::bring_back;  // no Commit was sent: the destination cannot own it
    case st::stopped:  // the same; but a post-copy's destination may wait for its pages
      return restores_lazily(parse_method(e.method)) ? recovery_action::resume : recovery_action::bring_back;
    case st::committing: return recovery_action::ask;
    case st::committed: return recovery_action::release;
    default: return recovery_action::bring_back;  // (not a source's step: decode() refuses it)
  }
}

// A destination that does not know the migration never committed it: it
// records Commit before it acknowledges, and keeps that record for weeks.
recovery_action decide_after(const std::optional<outcome>& answer) {
  if (!answer) return recovery_action::ask;
  return answer->committed ? recovery_action::release : recovery_action::bring_back;
}

namespace {

// A post-copy's copy that is still frozen holds all of its memory: its
// pages can be served again.
awaitable<bool> still_frozen(node_context& ctx, const journal::entry& e) {
  runtime::runtime* rt = ctx.runtimes.find(e.runtime);
  if (!rt) co_return false;
  auto info = co_await rt->inspect(e.container);
  co_return info && info->status == "paused";
}

}  // namespace

awaitable<std::vector<journal::entry>> recover_journal(node_context& ctx) {
  std::vector<journal::entry> resumable;
  if (!ctx.journal) co_return resumable;
  ctx.journal->prune(std::chrono::system_clock::now());
  auto found = ctx.journal->load();
  for (const auto& bad : found.refused) {
    logger()->error("{}", bad.why.message);
    if (bad.migration_id.empty()) continue;
    pb::Report r;
    r.set_id(bad.migration_id);
    r.set_phase(std::string(phase::recovery));
    r.set_result(pb::RESULT_FAILED);
    r.set_error(bad.why.message);
    ctx.migrations.finish(r);
  }
  auto ex = co_await asio::this_coro::executor;
  for (const auto& e : found.entries) {
    const auto a = decide(e);
    if (a == recovery_action::keep) continue;  // a finished migration: nothing to say
    log::info(*logger(), e.migration_id, phase::recovery, "{} ({}, journal: {}): {}", e.container,
              journal::name(e.side), journal::name(e.state), name(a));
    if (a == recovery_action::resume && co_await still_frozen(ctx, e)) {
      resumable.push_back(e);
      continue;
    }
    if (a == recovery_action::ask) {
      auto stopped = std::make_shared<bool>(false);
      ctx.migrations.add(report_of(ctx, e), [stopped](const std::string&) { *stopped = true; });
      asio::co_spawn(ex, ask_then_settle(ctx, e, stopped), [id = e.migration_id](std::exception_ptr p) {
        if (!p) return;
        try {
          std::rethrow_exception(p);
        } catch (const std::exception& x) {
          logger()->critical("[{}] recovery crashed: {}", id, x.what());
        }
      });
      continue;
    }
    auto report = report_of(ctx, e);
    ctx.migrations.add(report);
    co_await settle(ctx, e, a, report);
  }
  co_return resumable;
}

}  // namespace migrated::migration
