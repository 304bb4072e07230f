// Source side of a migration: the flow of each method family, top to
// bottom, and the steps they share. The states and why rollback is safe are
// explained in source_session.hpp and docs/design.md.
#include "migration/source_session.hpp"

#include <chrono>

#include "common/fault.hpp"
#include "common/log.hpp"
#include "common/names.hpp"
#include "images/criu_stats.hpp"
#include "images/page_set.hpp"
#include "migration/destination.hpp"
#include "migration/fault_point.hpp"
#include "migration/outcome_query.hpp"
#include "migration/recovery.hpp"

namespace migrated::migration {
namespace {

std::shared_ptr<spdlog::logger> logger() { return log::get("migration"); }

// How long the source gives an Abort to reach the destination, and then its
// answer to arrive, before it restores its own copy (the destination also
// drops its copy on its own when the connection ends or Commit does not
// come): a destination that stopped reading costs the rollback no more.
constexpr auto abort_timeout = std::chrono::seconds(1);

std::string_view phase_of(source_session::state s) {
  using st = source_session::state;
  switch (s) {
    case st::queued: return phase::queued;
    case st::accepted: return phase::accepted;
    case st::measuring: return phase::measure;
    case st::connecting: return phase::connect;
    case st::pulling: return phase::pull;
    case st::sending_image: return phase::image;
    case st::warming_up: return phase::warmup;
    case st::stopping: return phase::stop;
    case st::checkpointing: return phase::checkpoint;
    case st::transferring: return phase::transfer;
    case st::starting: return phase::start;
    case st::restoring: return phase::restore;
    case st::waiting_ready: return phase::ready;
    case st::postcopy: return phase::postcopy;
    case st::committing: return phase::commit;
    case st::releasing: return phase::release;
    case st::rolling_back: return phase::rollback;
    case st::done: return phase::done;
    case st::failed: return phase::failed;
  }
  return "unknown";
}

}  // namespace

std::string_view name(source_session::state s) { return phase_of(s); }

bool offers(const pb::Capabilities& caps, pb::Method m) {
  const auto n = method_name(m);
  return std::find(caps.methods().begin(), caps.methods().end(), n) != caps.methods().end();
}

source_session::source_session(node_context& ctx, pb::MigrateRequest req, std::string id, progress_fn progress,
                               bool prepare)
    : ctx_(ctx),
      req_(std::move(req)),
      id_(std::move(id)),
      progress_(std::move(progress)),
      prepare_(prepare),
      dir_(ctx_.cfg.images_root() / "outgoing" / id_),
      lazy_dir_(ctx_.cfg.lazy_images_dir / "outgoing" / id_),
      rounds_(dir_) {
  if (req_.method() == pb::METHOD_UNSPECIFIED) req_.set_method(pb::COLD);
  stats_.id = id_;
  stats_.container = req_.container();
  stats_.source = ctx_.cfg.node_name;
  stats_.destination = req_.destination();
  stats_.method = stats_.requested_method = req_.method();
  stats_.started_unix_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                               std::chrono::system_clock::now().time_since_epoch()).count();
}

void source_session::enter(state s, std::string detail) {
  state_ = s;
  stats_.phase = std::string(phase_of(s));
  stats_.total_ms = total_.ms();
  ctx_.migrations.update(to_report(stats_));
  log::info(*logger(), id_, stats_.phase, "{}{}{}", req_.container(), detail.empty() ? "" : ": ", detail);
  if (progress_) {
    pb::Progress p;
    p.set_migration_id(id_);
    p.set_phase(stats_.phase);
    p.set_elapsed_ms(total_.ms());
    p.set_detail(std::move(detail));
    progress_(p);
  }
}

void source_session::cancel(const std::string& reason) {
  if (!cancelled_) cancelled_ = reason;
  fault_point::resume(id_);
  if (state_ == state::queued) {
    ctx_.slots.withdraw(id_);
    return;
  }
  // The commit exchange is one frame each way on a live link: cutting it
  // would leave the destination unsure whether it owns the container.
  if (state_ == state::committing || state_ == state::releasing || state_ == state::done) return;
  if (peer_) peer_->close();  // whatever waits on the destination ends now
  if (link_) link_->close();
}

result<void> source_session::check_cancel() const {
  if (cancelled_) return fail(errc::cancelled, *cancelled_);
  return {};
}

// (Behind a disk's writeback a record's two fsyncs took 330 ms here: on
// the I/O thread they had stopped every other session and link as long.)
awaitable<result<void>> source_session::note(journal::step s, const std::filesystem::path* images) {
  if (!ctx_.journal || prepare_) co_return result<void>{};
  journaled_ = true;
  const journal::entry e = entry_of(s, images ? *images : std::filesystem::path{});
  co_return co_await offload(ctx_.pool, [this, &e] { return ctx_.journal->write(e); });
}

void source_session::note_meanwhile(journal::step s, asio::any_io_executor ex) {
  if (!ctx_.journal || prepare_) return;
  journaled_ = true;
  noting_entry_ = entry_of(s, {});
  noting_.emplace();
  noting_->start(ex, write_noting_entry(), "the journal");
}

awaitable<result<void>> source_session::write_noting_entry() {
  co_return co_await offload(ctx_.pool, [this] { return ctx_.journal->write(noting_entry_); });
}

awaitable<result<void>> source_session::noted() {
  if (!noting_) co_return result<void>{};
  auto ok = co_await noting_->wait();
  noting_.reset();
  co_return ok;
}

journal::entry source_session::entry_of(journal::step s, const std::filesystem::path& images) const {
  journal::entry e;
  e.migration_id = id_;
  e.side = journal::role::source;
  e.state = s;
  e.container = req_.container();
  e.runtime = stats_.runtime;
  e.method = std::string(method_name(req_.method()));
  e.peer = req_.destination();
  if (copy_) {
    e.images = copy_->images();
    e.bundle = copy_->container().bundle;
    e.frozen = copy_->frozen();
  }
  if (!images.empty()) e.images = images;
  return e;
}

// The migration ended (done, rolled back, or lost with its lost.json):
// nothing is left for a restart to do.
awaitable<void> source_session::forget() {
  if (!journaled_ || commit_unknown_) co_return;
  auto ok = co_await offload(ctx_.pool, [this] { return ctx_.journal->remove(id_); });
  if (!ok) log::error(*logger(), id_, stats_.phase, "{}", ok.error().message);
  journaled_ = false;
}

transport::send_options source_session::stream_options(std::string_view phase_name) {
  transport::send_options o;
  o.pool = &ctx_.pool;
  o.zstd_level = ctx_.cfg.transfer.zstd_level;
  o.chunk_bytes = ctx_.cfg.transfer.chunk_bytes;
  auto last = std::make_shared<stopwatch>();
  o.on_progress = [this, phase = std::string(phase_name), last](std::uint64_t done, std::uint64_t expected) {
    if (!progress_ || last->ms() < 200) return;
    *last = stopwatch();
    pb::Progress p;
    p.set_migration_id(id_);
    p.set_phase(phase);
    p.set_elapsed_ms(total_.ms());
    p.set_bytes_done(done);
    p.set_bytes_total(expected);
    progress_(p);
  };
  return o;
}

// --- the flow ------------------------------------------------------------------

awaitable<pb::Report> source_session::run() {
  ctx_.migrations.add(to_report(stats_), [this](const std::string& why) { cancel(why); });
  admission::ticket slot;
  result<void> outcome;
  try {
    if (!ctx_.slots.available()) enter(state::queued, std::to_string(ctx_.slots.waiting() + 1) + " waiting");
    slot = co_await ctx_.slots.acquire(id_);
    // (No co_await inside ?: — g++ 12 runs both arms.)
    if (!slot) outcome = fail(errc::cancelled, cancelled_.value_or("cancelled") + " while queued");
    else if (resumed_) outcome = co_await resume();
    else if (prepare_) outcome = co_await prepare();
    else outcome = co_await migrate();
  } catch (const std::exception& e) {
    outcome = fail(errc::internal, std::string("internal error in the migration session: ") + e.what());
  }
  // A record still being written lands before the rollback and forget().
  if (auto ok = co_await noted(); !ok) log::error(*logger(), id_, stats_.phase, "{}", ok.error().message);
  if (!outcome && copy_ && copy_->current() == source_copy::state::committed) {
    // Past Commit the container is the destination's: what failed after it
    // (releasing the copy here) loses nothing, and is only logged.
    log::error(*logger(), id_, stats_.phase, "after commit: {}", outcome.error().message);
    outcome = {};
  }
  if (!outcome && cancelled_ && outcome.error().message.find(*cancelled_) == std::string::npos)
    outcome = fail(errc::cancelled, *cancelled_ + " (" + outcome.error().message + ")");
  if (outcome) {
    stats_.result = pb::RESULT_OK;
    stats_.total_ms = total_.ms();
    enter(state::done, prepare_ ? "prepared at " + stats_.destination : "now running on " + stats_.destination);
  } else {
    stats_.error = outcome.error().message;
    stats_.error_code = outcome.error().code;
    log::error(*logger(), id_, stats_.phase, "{}", outcome.error().message);
    try {
      if (commit_unknown_) co_await keep_frozen(outcome.error());
      else co_await roll_back(outcome.error());
    } catch (const std::exception& e) {
      stats_.result = pb::RESULT_FAILED;
      stats_.error += std::string("; rollback crashed: ") + e.what();
      logger()->critical("[{}] rollback crashed: {}", id_, e.what());
    }
    stats_.total_ms = total_.ms();
    enter(state::failed, std::string(result_name(stats_.result)));
  }
  if (peer_) peer_->close();
  co_await clean_up();
  co_await forget();
  slot.reset();
  pb::Report report = to_report(stats_);
  ctx_.migrations.finish(report);
  co_return report;
}

awaitable<result<void>> source_session::migrate() {
  enter(state::accepted, "to " + req_.destination() + ", method " + std::string(method_name(req_.method())));
  if (auto ok = co_await find_container(); !ok) co_return ok;
  if (auto ok = co_await note(journal::step::accepted); !ok) co_return ok;
  co_await fault_point::reach(id_, "source.accepted");
  if (auto ok = co_await connect(); !ok) co_return ok;
  if (auto ok = co_await choose_method(); !ok) co_return ok;
  switch (req_.method()) {
    case pb::COLD:
    case pb::PRECOPY: co_return co_await move_process_state();
    case pb::POSTCOPY:
    case pb::HYBRID: co_return co_await move_memory_lazily();
    case pb::DIFF:
    case pb::FULL:
    case pb::REPLAY: co_return co_await move_filesystem();
    default:
      co_return fail(errc::unsupported, "method " + std::string(method_name(req_.method())) +
                                            " is not supported (supported: cold, precopy, postcopy, hybrid, "
                                            "diff, full, replay, auto)");
  }
}

// Cold and pre-copy: the process moves with its memory.
awaitable<result<void>> source_session::move_process_state() {
  if (auto ok = can_move_process(); !ok) co_return ok;
  // While the container runs: its filesystem, then (precopy) its memory in rounds.
  if (auto ok = co_await pull(own_image); !ok) co_return ok;
  if (auto ok = co_await begin(); !ok) co_return ok;
  if (req_.method() == pb::PRECOPY) {
    if (auto ok = co_await warm_up(); !ok) co_return ok;
    if (req_.method() == pb::HYBRID) co_return co_await stop_and_move_lazily();  // the rounds' switch
  }
  // The container stops: downtime begins.
  if (auto ok = co_await checkpoint(); !ok) co_return ok;
  enter(state::transferring, std::to_string(stats_.bytes_image) + " image bytes");
  if (auto ok = co_await send_final_round(); !ok) co_return ok;
  // The destination restores: downtime ends with its RestoreResult.
  enter(state::restoring);
  co_await fault_point::reach(id_, "source.restore");
  if (auto ok = co_await await_launch("restore"); !ok) co_return ok;
  stats_.downtime_ms = stopwatch::between(copy_->stopped_at(), stopwatch::clock::now());
  auto all = history_;
  all.push_back({stats_.round("final").sent.bytes_wire, 0, 0, stats_.transfer_ms});
  stats_.bandwidth_mib_s = mib_per_s(bandwidth_bytes_per_ms(all));
  if (auto ok = co_await await_ready(); !ok) co_return ok;
  if (auto ok = co_await commit(); !ok) co_return ok;
  co_await release_here();
  co_return result<void>{};
}

// diff, full and replay: the filesystem moves; the process starts fresh there.
awaitable<result<void>> source_session::move_filesystem() {
  switch (req_.method()) {
    case pb::DIFF: {
      if (auto ok = co_await pull(own_image); !ok) co_return ok;
      if (auto ok = co_await begin(); !ok) co_return ok;
      if (auto ok = co_await stop_here(); !ok) co_return ok;
      enter(state::transferring, "filesystem changes");
      stopwatch sw;
      auto& final_round = stats_.add_round("final");
      if (auto ok = co_await send_changes(final_round, true); !ok) co_return ok;
      stats_.transfer_ms = final_round.duration_ms = sw.ms();
      break;
    }
    case pb::FULL: {
      // The whole filesystem goes, so the container stops first: it must not change under the copy.
      if (auto ok = co_await stop_here(); !ok) co_return ok;
      auto image = co_await commit_image();  // Docker: the filesystem as an image; runc: none
      if (!image) co_return std::unexpected(image.error());
      if (auto ok = co_await pull(*image); !ok) co_return ok;
      if (auto ok = co_await begin(); !ok) co_return ok;
      break;
    }
    case pb::REPLAY:
      // Make before break: this copy serves until the destination is ready.
      if (auto ok = co_await pull(own_image); !ok) co_return ok;
      if (auto ok = co_await begin(); !ok) co_return ok;
      break;
    default: co_return fail(errc::internal, "not a filesystem method");
  }
  if (auto ok = co_await start_there(); !ok) co_return ok;
  if (auto ok = co_await await_ready(); !ok) co_return ok;
  // replay kept serving here until the destination was ready: no gap.
  if (copy_->current() == source_copy::state::stopped)
    stats_.downtime_ms = stopwatch::between(copy_->stopped_at(), stopwatch::clock::now());
  if (auto ok = co_await commit(); !ok) co_return ok;
  co_await release_here();
  co_return result<void>{};
}

// Prepare: the filesystem (and image) go ahead of a migration; nothing stops.
awaitable<result<void>> source_session::prepare() {
  enter(state::accepted, "prepare " + req_.destination());
  if (auto ok = co_await find_container(); !ok) co_return ok;
  if (auto ok = co_await connect(); !ok) co_return ok;
  if (auto ok = co_await pull(own_image); !ok) co_return ok;
  pb::Envelope env;
  env.mutable_prepare_end()->set_migration_id(id_);
  co_return co_await call(env, "prepare");
}

// --- steps -----------------------------------------------------------------------

awaitable<result<void>> source_session::find_container() {
  if (req_.container().empty()) co_return fail(errc::invalid_argument, "no container named");
  auto found = co_await ctx_.runtimes.locate(req_.container(), req_.runtime());
  if (!found) co_return std::unexpected(found.error());
  if (found->container.status != "running")
    co_return fail(errc::invalid_argument,
                   "container " + req_.container() + " is " + found->container.status + ", not running");
  stats_.runtime = std::string(found->rt->name());
  if (restores_lazily(req_.method())) {
    // Before anything stops: it restores with lazy pages, which only runc's restore takes.
    if (found->rt->has_images())
      co_return fail(errc::unsupported, req_.container() + " runs under " + stats_.runtime + ", whose engine restores a "
                                        "checkpoint only with all of its memory (docker start --checkpoint takes no "
                                        "lazy pages): move it with precopy or cold");
    if (!offers(ctx_.me.caps, req_.method()))
      co_return fail(errc::unsupported, "post-copy needs userfaultfd and a CRIU with scripts/criu/0002 on " +
                                            ctx_.cfg.node_name + ", which lacks them: move it with precopy or cold");
  }
  copy_.emplace(*found->rt, std::move(found->container), id_);
  co_return result<void>{};
}

awaitable<result<void>> source_session::connect() {
  if (auto ok = check_cancel(); !ok) co_return ok;
  enter(state::connecting, req_.destination());
  co_await fault_point::reach(id_, "source.connecting");
  auto ch = co_await connect_destination(ctx_, req_.destination());
  if (!ch) co_return std::unexpected(ch.error().context("destination " + req_.destination()));
  peer_.emplace(std::move(*ch));
  if (cancelled_) peer_->close();  // cancelled while connecting
  stats_.destination = peer_->peer.node();
  const auto& rts = peer_->peer.caps().runtimes();
  if (std::find(rts.begin(), rts.end(), stats_.runtime) == rts.end())
    co_return fail(errc::unsupported, "destination " + stats_.destination + " has no " + stats_.runtime + " runtime");
  if (restores_lazily(req_.method()) && !offers(peer_->peer.caps(), req_.method()))
    co_return fail(errc::unsupported, "destination " + stats_.destination + " cannot restore lazily (it needs "
                                      "userfaultfd and a CRIU with scripts/criu/0002): move it with precopy or cold");

  co_return check_cancel();
}

awaitable<result<void>> source_session::begin() {
  pb::Envelope env;
  auto* b = env.mutable_migrate_begin();
  b->set_migration_id(id_);
  b->set_container(req_.container());
  b->set_method(req_.method());
  b->set_runtime(stats_.runtime);
  b->set_source_node(ctx_.cfg.node_name);
  co_return co_await call(env, "migrate");
}

// The final dump: the container stops here, its state in the newest round.
awaitable<result<void>> source_session::checkpoint() {
  if (auto ok = check_cancel(); !ok) co_return ok;
  enter(state::checkpointing);
  auto images = co_await offload(ctx_.pool, [this] { return next_round_dir(); });
  if (!images) co_return std::unexpected(images.error());
  // The images' place is on disk before the container freezes: a restart
  // finds it frozen, or its images, whenever the daemon dies from here on.
  if (auto ok = co_await note(journal::step::stopping, &*images); !ok) co_return ok;
  co_await fault_point::reach(id_, "source.stopping");
  if (auto ok = check_cancel(); !ok) co_return ok;  // stopped while it paused there
  copy_->lock_network_with_nftables(both_lock_with_nftables());
  auto ok = co_await copy_->checkpoint(*images, dir_ / "work");
  stats_.checkpoint_ms = stopwatch::between(copy_->stopped_at(), stopwatch::clock::now());
  if (copy_->current() == source_copy::state::stopped)
    if (auto noted = co_await note(journal::step::stopped); !noted && ok) ok = noted;
  if (!ok) co_return ok;
  final_images_ = *images;
  final_work_ = dir_ / "work";
  co_await fault_point::reach(id_, "source.checkpointed");
  const auto dir = *images;
  stats_.bytes_image = co_await offload(ctx_.pool, [&dir] { return dir_bytes(dir); });
  co_return result<void>{};
}

// One round: RoundBegin, then the dump's files (page files as deltas against
// the previous round), answered once the destination rebuilt and verified it.
awaitable<result<void>> source_session::send_round(const std::filesystem::path& dir, bool final,
                                                   round_stats& round) {
  pb::Envelope env;
  env.mutable_round_begin()->set_index(rounds_.rounds());
  env.mutable_round_begin()->set_final(final);
  env.mutable_round_begin()->set_lazy(final && restores_lazily(req_.method()));
  if (auto ok = co_await peer_->send(env); !ok) co_return ok;
  auto files = co_await offload(ctx_.pool, [&] { return rounds_.files_for(dir, ctx_.cfg.transfer.chunk_bytes); });
  if (!files) co_return std::unexpected(files.error());
  auto opts = stream_options(final ? phase::transfer : phase::warmup);
  if (final && fault_injected("source.transfer.cut")) opts.cut_connection = [] { return true; };
  auto st = co_await transport::send_files(*peer_, *files, opts);
  if (!st) co_return std::unexpected(st.error().context(final ? "image transfer" : "warm-up round"));
  // A warm-up round replaces the previous one. After the final round none
  // follows, and the previous round's removal stays out of the downtime:
  // unlinking a dump of GiBs just written waits for its writeback (400 ms
  // of a 2 GiB hybrid's downtime, bench/RESULTS.md); the clean-up removes
  // every round afterwards.
  if (!final) co_await offload(ctx_.pool, [this] { rounds_.delivered(); });
  round.add(*st);
  round.pages = rounds_.totals().pages;
  round.throttle_pct = copy_->throttle_pct();
  co_return result<void>{};
}

// The final round, once the container stopped: the filesystem's last
// changes, then the final dump (a transfer that fails reports its time too).
awaitable<result<void>> source_session::send_final_round() {
  co_await fault_point::reach(id_, "source.transfer");
  stopwatch sw;
  auto& final_round = stats_.add_round("final");
  final_round.checkpoint_ms = stats_.checkpoint_ms;
  auto sent = co_await send_changes(final_round, true);
  if (sent) sent = co_await send_round(rounds_.latest_dir(), true, final_round);
  final_round.duration_ms = stats_.transfer_ms = sw.ms();
  co_return sent;
}

// Committed: the copy here goes.
awaitable<void> source_session::release_here() {
  enter(state::releasing);
  co_await copy_->release();
  co_await fault_point::reach(id_, "source.released");
}

// The destination's RestoreResult: its restore (or fresh start) worked.
awaitable<result<void>> source_session::await_launch(std::string_view what) {
  auto f = co_await receive(ctx_.cfg.timeouts.restore + ctx_.cfg.timeouts.io, "waiting for the " + std::string(what));
  if (!f) co_return std::unexpected(f.error());
  if (!f->msg.has_restore_result()) co_return fail(errc::protocol, "expected RestoreResult");
  const auto& rr = f->msg.restore_result();
  stats_.restore_ms = rr.restore_ms();
  if (rr.has_criu()) stats_.criu_restore = rr.criu();
  if (!rr.ok())
    co_return fail(transport::from_code(rr.code()), std::string(what) + " at " + stats_.destination + ": " + rr.message());
  co_return result<void>{};
}

// The destination probes the service (its readiness probe, or that the
// process runs) and says Ready; until then everything here stays as it was,
// so a service that never answers is rolled back like a failed restore.
awaitable<result<void>> source_session::await_ready() {
  enter(state::waiting_ready);
  auto f = co_await receive(ctx_.cfg.timeouts.ready + ctx_.cfg.timeouts.io, "waiting for ready");
  if (!f) co_return std::unexpected(f.error());
  if (!f->msg.has_ready()) co_return fail(errc::protocol, "expected Ready");
  const auto& ready = f->msg.ready();
  stats_.ready_probe = ready.probe();
  if (!ready.ok())
    co_return fail(transport::from_code(ready.code()), "not ready at " + stats_.destination + ": " + ready.message());
  // From the freeze (or the stop), or, for replay, from asking for the start.
  const auto since = copy_->current() == source_copy::state::stopped ? copy_->stopped_at() : ready_since_;
  stats_.ready_ms = stopwatch::between(since, stopwatch::clock::now());
  co_return result<void>{};
}

// Commit: the destination takes the container over once it acknowledges.
// An abort or stop that comes now waits for this exchange (cancel()).
awaitable<result<void>> source_session::commit() {
  if (auto ok = check_cancel(); !ok) co_return ok;
  enter(state::committing);
  // On disk before the frame goes: from here only the destination knows.
  if (auto ok = co_await note(journal::step::committing); !ok) co_return ok;
  pb::Envelope env;
  env.mutable_commit()->set_migration_id(id_);
  if (auto ok = co_await peer_->send(env); !ok) co_return co_await settle_commit(ok.error());
  co_await fault_point::reach(id_, "source.committing");
  auto r = co_await receive(ctx_.cfg.timeouts.io, "commit");
  // An Abort instead of the acknowledgement is an answer: the destination
  // gave its copy up. Only silence leaves it unknown.
  if (!r && r.error().code == errc::cancelled) co_return std::unexpected(r.error());
  if (!r) co_return co_await settle_commit(r.error());
  if (!r->msg.has_reply()) co_return fail(errc::protocol, "commit: expected a reply");
  if (auto ok = transport::to_result(r->msg.reply()); !ok) co_return ok;
  copy_->commit();
  if (auto ok = co_await note(journal::step::committed); !ok)  // a restart asks, and learns it was committed
    log::error(*logger(), id_, phase::commit, "{}", ok.error().message);
  co_return result<void>{};
}

// Commit went out and nothing came back: the destination may own the
// container or not. Ask it, on a connection of its own, until it answers or
// timeouts.outcome_ms passes; guess neither way (docs/design.md, "After a crash").
awaitable<result<void>> source_session::settle_commit(const error& silence) {
  log::warn(*logger(), id_, phase::commit, "commit not acknowledged ({}): asking {} what became of it",
            silence.message, stats_.destination);
  if (peer_) peer_->close();
  std::function<bool()> stop;  // the daemon stopping: the journal keeps the question for its restart
  stop = [this] { return cancelled_.has_value(); };
  auto answer = co_await ask_outcome_until(ctx_, req_.destination(), id_, ctx_.cfg.timeouts.outcome, stop);
  if (answer && answer->committed) {
    log::info(*logger(), id_, phase::commit, "{} committed", stats_.destination);
    copy_->commit();
    if (auto ok = co_await note(journal::step::committed); !ok)
      log::error(*logger(), id_, phase::commit, "{}", ok.error().message);
    co_return result<void>{};
  }
  if (answer)
    co_return fail(errc::peer, "commit not acknowledged (" + silence.message + "), and " + stats_.destination +
                                   " did not commit");
  commit_unknown_ = true;
  co_return fail(errc::peer, "commit not acknowledged (" + silence.message + "), and " + stats_.destination +
                                 " could not say whether it committed (" + answer.error().message + ")");
}

// Neither copy may be guessed: the destination may run the container, so
// the one here stays frozen (no second copy), its images and its journal
// record kept (no lost state). The next start of this daemon asks again;
// `migratectl recover ID` asks too, and thaws it on the operator's word.
awaitable<void> source_session::keep_frozen(const error& cause) {
  stats_.result = pb::RESULT_FAILED;
  std::string kept = req_.container() + " is kept frozen here: " + cause.message;
  if (!copy_->images().empty()) {
    const lost_record record{id_, stats_.runtime, copy_->container(), copy_->images()};
    auto written = co_await offload(ctx_.pool, [this, &record] { return write_lost(dir_, record); });
    kept += "; its images are kept in " + copy_->images().string() +
            (written ? "; `migratectl recover " + id_ + "` asks " + stats_.destination +
                           " again and brings it back here if it did not commit"
                     : " (" + written.error().message + ")");
  }
  stats_.error += "; " + kept;
  log::error(*logger(), id_, phase::commit, "{}", kept);
  co_return;
}

// The one way a failed migration ends: the destination is told to drop its
// copy (briefly: it drops it on its own when the link ends), then the owner
// of the copy here brings it back.
awaitable<void> source_session::roll_back(const error& cause) {
  if (!copy_ || copy_->current() == source_copy::state::committed) {
    stats_.result = pb::RESULT_FAILED;
    co_return;
  }
  const bool stopped = copy_->current() == source_copy::state::stopped;
  if (stopped) enter(state::rolling_back, "restoring " + req_.container() + " here");
  co_await end_page_transfer();  // post-copy: the dump ends, the copy here stays frozen for the thaw
  stopwatch sw;
  if (peer_ && peer_->is_open()) {
    pb::Envelope env;
    env.mutable_abort()->set_migration_id(id_);
    env.mutable_abort()->set_reason(cause.message);
    if (co_await peer_->send_within(abort_timeout, env)) co_await peer_->recv(abort_timeout);
    peer_->close();
  }
  const auto work = dir_ / "work-rollback";  // the runtime's logs of the restore
  co_await offload(ctx_.pool, [&work] {
    std::error_code ec;
    std::filesystem::create_directories(work, ec);
  });
  auto back = co_await copy_->roll_back(work);
  if (!stopped) {  // it never stopped: nothing was rolled back
    stats_.result = pb::RESULT_FAILED;
    co_return;
  }
  stats_.rollback_ms = sw.ms();
  stats_.downtime_ms = stopwatch::between(copy_->stopped_at(), stopwatch::clock::now());
  if (back) {
    stats_.result = pb::RESULT_ROLLED_BACK;
    co_return;
  }
  stats_.result = pb::RESULT_FAILED;
  // It runs nowhere now: say so in one sentence, with the way back.
  std::string lost = req_.container() + " runs nowhere: its rollback failed (" + back.error().message + ")";
  if (!copy_->images().empty()) {
    const lost_record record{id_, stats_.runtime, copy_->container(), copy_->images()};
    auto kept = co_await offload(ctx_.pool, [this, &record] { return write_lost(dir_, record); });
    lost += "; its images are kept in " + copy_->images().string() +
            (kept ? "; `migratectl recover " + id_ + "` restores it here" : " (" + kept.error().message + ")");
  }
  stats_.error += "; " + lost;
  log::error(*logger(), id_, phase::rollback, "{}", lost);
}

awaitable<void> source_session::clean_up() {
  co_await end_page_transfer();
  if (copy_) co_await copy_->lazy_dump_ended();
  co_await note_final_dump();
  // Keep the images when the container could not be brought back anywhere:
  // they are the only copy of its state.
  if (copy_ && copy_->current() == source_copy::state::lost) co_return;
  if (commit_unknown_) co_return;
  const auto dir = dir_;
  co_await offload(ctx_.pool, [this, &dir] {
    keep_lazy_logs();
    std::error_code ec;
    for (auto& e : std::filesystem::directory_iterator(dir, ec))
      if (e.path().filename().string().rfind("round-", 0) == 0) std::filesystem::remove_all(e.path(), ec);
  });
}

// The lazy dump's logs join the others in <storage>/outgoing/<id>/work
// (the last dump's replace the warm-up rounds', as they do there), and its
// images go: they lack the memory (on the pool).
void source_session::keep_lazy_logs() {
  std::error_code ec;
  if (!std::filesystem::exists(lazy_dir_, ec)) return;
  for (auto& e : std::filesystem::directory_iterator(lazy_dir_ / "work", ec)) {
    std::error_code copied;
    std::filesystem::copy_file(e.path(), dir_ / "work" / e.path().filename(),
                               std::filesystem::copy_options::overwrite_existing, copied);
    if (copied) log::warn(*logger(), id_, stats_.phase, "keeping {}: {}", e.path().string(), copied.message());
  }
  std::filesystem::remove_all(lazy_dir_, ec);
}

// Off the downtime: read once everything else is over. Missing statistics
// cost the report its fields, never the migration.
awaitable<void> source_session::note_final_dump() {
  if (!final_images_) co_return;
  const auto work = final_work_;
  const auto images = *final_images_;
  struct found {
    result<criu::DumpStatsEntry> stats;
    std::uint64_t pages = 0;
  };
  auto f = co_await offload(ctx_.pool, [&work, &images] {
    found out{images::read_dump_stats(work)};
    if (auto sets = images::read_all_page_sets(images))
      for (const auto& set : *sets)
        if (images::task_of_pagemap(set.pagemap_name)) out.pages += set.stored_pages;
    return out;
  });
  stats_.pages_image = f.pages;
  if (f.stats) stats_.criu_dump = criu_dump_report(*f.stats);
  else if (f.stats.error().code != errc::not_found)  // (an engine that keeps CRIU's files writes none here)
    log::warn(*logger(), id_, stats_.phase, "CRIU's statistics of the final dump: {}", f.stats.error().message);
}

// --- helpers ---------------------------------------------------------------------

std::uint64_t source_session::dir_bytes(const std::filesystem::path& dir) {
  std::uint64_t bytes = 0;
  std::error_code ec;
  for (auto& e : std::filesystem::directory_iterator(dir, ec))
    if (e.is_regular_file()) bytes += e.file_size(ec);
  return bytes;
}

// The process moves inside CRIU images, which the destination's CRIU must
// restore: those of a CRIU with scripts/criu/0008 keep tmpfs contents as
// a plain tar, which an older one cannot read.
result<void> source_session::peer_restores_images() const {
  if (!ctx_.me.caps.tmpfs_plain_tar() || peer_->peer.caps().tmpfs_plain_tar()) return {};
  return fail(errc::unsupported, "the CRIU of " + stats_.destination +
                                     " cannot restore this node's images (they keep tmpfs contents as a plain "
                                     "tar, scripts/criu/0008): install migrated's CRIU there");
}

// Whatever must move with the process can.
result<void> source_session::can_move_process() const {
  if (auto ok = peer_restores_images(); !ok) return ok;
  return can_carry_network();
}

// A network namespace of the container's own moves only inside its images:
// both CRIUs must carry it, or it would arrive with its loopback down and
// its connections lost.
result<void> source_session::can_carry_network() const {
  const auto& c = copy_->container();
  if (!c.own_netns) return {};
  if (!c.netns_links.empty()) {
    std::string links;
    for (const auto& l : c.netns_links) links += (links.empty() ? "" : ", ") + l;
    return fail(errc::unsupported, req_.container() + "'s network namespace has interfaces CRIU cannot recreate (" +
                                       links + "): give it a named network namespace (docs/operations.md, "
                                       "\"Networks\"), or move it with diff or replay");
  }
  const bool here = ctx_.me.caps.own_netns(), there = peer_->peer.caps().own_netns();
  if (here && there) return {};
  return fail(errc::unsupported, req_.container() + " has a network namespace of its own, which the CRIU of " +
                                     (here ? stats_.destination : ctx_.cfg.node_name) +
                                     " cannot carry (it lacks scripts/criu/0002): its network would be lost");
}

// CRIU locks a namespace it dumps with nftables at a fraction of what
// iptables costs, and the restore must lift the lock the same way: only
// when both ends' CRIU can.
bool source_session::both_lock_with_nftables() const {
  return peer_ && ctx_.me.caps.nftables_lock() && peer_->peer.caps().nftables_lock();
}

// Where the next dump goes, and the work directory CRIU logs into (on the pool).
result<std::filesystem::path> source_session::next_round_dir() {
  std::error_code ec;
  std::filesystem::create_directories(dir_ / "work", ec);
  if (ec) return fail(errc::io, "create " + (dir_ / "work").string() + ": " + ec.message());
  return rounds_.next_dir();
}

// The same for a lazy dump, under lazy_images (on the pool). Its images
// are only what the restore needs besides the memory (about 100 KiB), and
// no file the dump creates there waits for the disk while it freezes the
// container: on a disk, behind the gigabytes of warm-up rounds the page
// cache was writing back, a 1 GiB hybrid's dump took 387 ms, on a tmpfs
// 217 ms (bench/RESULTS.md).
result<std::filesystem::path> source_session::next_lazy_dir() {
  std::error_code ec;
  for (const auto& d : {dir_ / "work", lazy_dir_ / "work"}) {
    std::filesystem::create_directories(d, ec);
    if (ec) return fail(errc::io, "create " + d.string() + ": " + ec.message());
  }
  return rounds_.next_dir(lazy_dir_);
}

// One request to the destination and its Reply, as a result.
awaitable<result<void>> source_session::call(const pb::Envelope& env, std::string_view what) {
  if (auto ok = co_await peer_->send(env); !ok) co_return ok;
  auto r = co_await receive(ctx_.cfg.timeouts.io, what);
  if (!r) co_return std::unexpected(r.error());
  if (!r->msg.has_reply())
    co_return fail(errc::protocol, std::string(what) + ": expected a reply, got message #" +
                                       std::to_string(r->msg.body_case()));
  co_return with_context(transport::to_result(r->msg.reply()), stats_.destination);
}

// The destination's next frame; its Abort (it gave up its copy) is an error.
awaitable<result<transport::frame>> source_session::receive(std::chrono::milliseconds timeout, std::string_view what) {
  auto f = co_await peer_->recv(timeout);
  if (!f) co_return std::unexpected(f.error().context(what));
  if (f->msg.has_abort()) co_return std::unexpected(transport::aborted_by_peer(*peer_, f->msg.abort()).context(what));
  co_return f;
}

}  // namespace migrated::migration
