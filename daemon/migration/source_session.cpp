// Source side of a migration; the order of phases and why rollback is safe
// are explained in source_session.hpp and docs/design.md.
#include "migration/source_session.hpp"

#include <chrono>
#include <ctime>

#include "common/fault.hpp"
#include "common/log.hpp"
#include "migration/bundle_sync.hpp"
#include "transport/file_stream.hpp"

namespace migrated::migration {
namespace {

std::shared_ptr<spdlog::logger> logger() { return log::get("migration"); }

// How long the source waits for the destination's answer to Abort before it
// restores its own copy (the destination also drops its copy on its own when
// the connection ends or Commit does not come).
constexpr auto abort_ack_timeout = std::chrono::seconds(3);

result<endpoint> resolve_destination(const config& cfg, const std::string& dest) {
  if (auto* p = cfg.find_peer(dest)) return p->address;
  if (dest.find(':') != std::string::npos) return parse_endpoint(dest);
  std::string known;
  for (auto& p : cfg.peers) known += (known.empty() ? "" : ", ") + p.name;
  return fail(errc::not_found, "unknown destination '" + dest + "' (peers: " + (known.empty() ? "none" : known) +
                                   "; or give host:port)");
}

std::uint64_t dir_bytes(const std::filesystem::path& dir) {
  std::uint64_t bytes = 0;
  std::error_code ec;
  for (auto& e : std::filesystem::directory_iterator(dir, ec))
    if (e.is_regular_file()) bytes += e.file_size(ec);
  return bytes;
}

}  // namespace

source_session::source_session(node_context& ctx, pb::MigrateRequest req, std::string id, progress_fn progress)
    : ctx_(ctx),
      req_(std::move(req)),
      id_(std::move(id)),
      progress_(std::move(progress)),
      dir_(ctx_.cfg.storage_dir / "outgoing" / id_),
      rounds_(dir_) {
  if (req_.method() == pb::METHOD_UNSPECIFIED) req_.set_method(pb::COLD);
  report_.set_id(id_);
  report_.set_container(req_.container());
  report_.set_source(ctx_.cfg.node_name);
  report_.set_destination(req_.destination());
  report_.set_method(req_.method());
  report_.set_requested_method(req_.method());
  report_.set_result(pb::RESULT_RUNNING);
  report_.set_started_unix_ms(std::chrono::duration_cast<std::chrono::milliseconds>(
                                  std::chrono::system_clock::now().time_since_epoch()).count());
}

void source_session::enter(std::string_view phase, std::string detail) {
  phase_ = phase;
  report_.set_phase(std::string(phase));
  ctx_.migrations.update(report_);
  log::info(*logger(), id_, phase, "{}{}{}", req_.container(), detail.empty() ? "" : ": ", detail);
  if (progress_) {
    pb::Progress p;
    p.set_migration_id(id_);
    p.set_phase(std::string(phase));
    p.set_elapsed_ms(total_.ms());
    p.set_detail(std::move(detail));
    progress_(p);
  }
}

result<void> source_session::check_abort() const {
  if (ctx_.migrations.abort_requested(id_)) return fail(errc::cancelled, "aborted by the controller");
  return {};
}

transport::send_options source_session::stream_options(std::string_view phase) {
  transport::send_options o;
  o.pool = &ctx_.pool;
  o.zstd_level = ctx_.cfg.transfer.zstd_level;
  o.chunk_bytes = ctx_.cfg.transfer.chunk_bytes;
  auto last = std::make_shared<stopwatch>();
  o.on_progress = [this, phase = std::string(phase), last](std::uint64_t done) {
    if (!progress_ || last->ms() < 200) return;
    *last = stopwatch();
    pb::Progress p;
    p.set_migration_id(id_);
    p.set_phase(phase);
    p.set_elapsed_ms(total_.ms());
    p.set_bytes_done(done);
    progress_(p);
  };
  return o;
}

pb::Round& source_session::add_round(std::string_view kind, double ms, const transport::stream_stats& st) {
  auto* r = report_.add_rounds();
  r->set_index(std::uint32_t(report_.rounds_size() - 1));
  r->set_kind(std::string(kind));
  r->set_duration_ms(ms);
  r->set_files(st.files);
  r->set_bytes_raw(st.bytes_raw);
  r->set_bytes_wire(st.bytes_wire);
  report_.set_bytes_wire(report_.bytes_wire() + st.bytes_wire);
  return *r;
}

awaitable<pb::Report> source_session::run() {
  ctx_.migrations.add(report_);
  enter(phase::accepted, "to " + req_.destination() + ", method " + std::string(method_name(req_.method())));
  auto outcome = co_await migrate();
  if (outcome) {
    report_.set_result(pb::RESULT_OK);
    report_.set_total_ms(total_.ms());
    enter(phase::done, "now running on " + report_.destination());
  } else {
    report_.set_error(outcome.error().message);
    log::error(*logger(), id_, phase_, "{}", outcome.error().message);
    if (stopped_ && !committed_) {
      co_await roll_back(outcome.error());
    } else {
      report_.set_result(pb::RESULT_FAILED);
    }
    report_.set_total_ms(total_.ms());
    enter(phase::failed, std::string(result_name(report_.result())));
  }
  if (peer_) peer_->close();
  co_await clean_up();
  ctx_.migrations.finish(report_);
  co_return report_;
}

awaitable<result<void>> source_session::migrate() {
  using step = awaitable<result<void>> (source_session::*)();
  for (step s : {&source_session::check_container, &source_session::connect, &source_session::choose_method}) {
    if (auto ok = check_abort(); !ok) co_return ok;
    if (auto ok = co_await (this->*s)(); !ok) co_return ok;
  }
  std::vector<step> steps;
  switch (req_.method()) {
    case pb::COLD:
    case pb::PRECOPY:
      steps = {&source_session::pull, &source_session::begin_transfer, &source_session::warm_up,
               &source_session::checkpoint, &source_session::transfer, &source_session::restore_remote};
      break;
    case pb::DIFF:
      steps = {&source_session::pull, &source_session::begin_transfer, &source_session::stop_here,
               &source_session::send_filesystem, &source_session::start_remote};
      break;
    case pb::FULL:
      // The committed image carries the filesystem: stop first, so it is whole.
      steps = {&source_session::stop_here, &source_session::commit_image, &source_session::pull,
               &source_session::begin_transfer, &source_session::send_filesystem, &source_session::start_remote};
      break;
    case pb::REPLAY:
      // Make before break: this copy serves until the destination is ready.
      steps = {&source_session::pull, &source_session::begin_transfer, &source_session::start_remote};
      break;
    default:
      co_return fail(errc::unsupported, "method " + std::string(method_name(req_.method())) +
                                            " is not supported (supported: cold, precopy, diff, full, replay, auto)");
  }
  steps.push_back(&source_session::commit);
  steps.push_back(&source_session::finish_here);
  for (step s : steps) {
    if (auto ok = check_abort(); !ok) co_return ok;
    if (auto ok = co_await (this->*s)(); !ok) co_return ok;
  }
  co_return result<void>{};
}

awaitable<result<void>> source_session::check_container() {
  if (req_.container().empty()) co_return fail(errc::invalid_argument, "no container named");
  auto found = co_await ctx_.runtimes.locate(req_.container(), req_.runtime());
  if (!found) co_return std::unexpected(found.error());
  rt_ = found->rt;
  report_.set_runtime(std::string(rt_->name()));
  container_ = std::move(found->container);
  if (container_.status != "running")
    co_return fail(errc::invalid_argument, "container " + req_.container() + " is " + container_.status + ", not running");
  co_return result<void>{};
}

awaitable<result<void>> source_session::connect() {
  enter(phase::connect, req_.destination());
  auto to = resolve_destination(ctx_.cfg, req_.destination());
  if (!to) co_return std::unexpected(to.error());
  auto ch = co_await transport::connect(*to, ctx_.psk, ctx_.me, ctx_.cfg.timeouts.connect, ctx_.cfg.timeouts.io);
  if (!ch) co_return std::unexpected(ch.error().context("destination " + req_.destination()));
  peer_.emplace(std::move(*ch));
  report_.set_destination(peer_->peer.node());
  const auto& rts = peer_->peer.caps().runtimes();
  if (std::find(rts.begin(), rts.end(), std::string(rt_->name())) == rts.end())
    co_return fail(errc::unsupported, "destination " + peer_->peer.node() + " has no " + std::string(rt_->name()) + " runtime");
  ctx_.migrations.on_cancel(id_, [this] { if (peer_) peer_->close(); });
  co_return result<void>{};
}

awaitable<result<void>> source_session::pull() {
  enter(phase::pull, rt_->has_images() ? "image " + container_.image : "bundle " + container_.bundle.string());
  stopwatch sw;
  pb::Envelope env;
  auto* p = env.mutable_pull();
  p->set_migration_id(id_);
  p->set_container(req_.container());
  p->set_runtime(std::string(rt_->name()));
  p->set_method(req_.method());
  if (auto ok = co_await call(env, "pull"); !ok) co_return ok;
  if (rt_->has_images()) {
    const bool full = !full_image_.empty();
    const std::string& image = full ? full_image_ : container_.image;
    const std::string& image_id = full ? full_image_ : container_.image_id;
    const std::string spec = full ? with_image(container_.spec, full_image_) : container_.spec;
    if (auto ok = co_await provision(image, image_id, spec); !ok) co_return ok;
    if (full) {  // the image is the filesystem
      report_.set_pull_ms(sw.ms());
      co_return co_await send_volumes();
    }
  }
  auto st = co_await sync_bundle(phase::pull);
  if (!st) co_return std::unexpected(st.error().context("pull"));
  add_round("pull", sw.ms(), *st);
  if (auto ok = co_await send_volumes(); !ok) co_return ok;
  report_.set_pull_ms(sw.ms());
  co_return result<void>{};
}

// One request to the destination and its Reply, as a result.
awaitable<result<void>> source_session::call(const pb::Envelope& env, std::string_view what) {
  if (auto ok = co_await peer_->send(env); !ok) co_return ok;
  auto r = co_await transport::expect_reply(*peer_, what, ctx_.cfg.timeouts.io);
  if (!r) co_return std::unexpected(r.error());
  co_return with_context(transport::to_result(*r), report_.destination());
}

awaitable<result<void>> source_session::checkpoint() {
  enter(phase::checkpoint);
  auto images = rounds_.next_dir();
  if (!images) co_return std::unexpected(images.error());
  std::error_code ec;
  std::filesystem::create_directories(dir_ / "work", ec);
  if (ec) co_return fail(errc::io, "create " + (dir_ / "work").string() + ": " + ec.message());
  if (auto held = co_await hold_restarts(); !held) co_return held;
  lift_throttle();  // the final dump runs at full speed; the container stays frozen
  frozen_at_ = stopwatch::clock::now();
  const runtime::checkpoint_request req{*images, dir_ / "work", false};
  auto ok = co_await rt_->checkpoint(req_.container(), req);
  report_.set_checkpoint_ms(stopwatch::between(frozen_at_, stopwatch::clock::now()));
  // (A checkpoint that succeeded has stopped it: no need to ask while it is down.)
  if (!ok) co_return co_await failed_to_stop(ok.error());
  stopped_ = true;
  report_.set_bytes_image(dir_bytes(*images));
  co_return result<void>{};
}

// Docker would start a fresh copy the moment the final dump (or a stop)
// ends the container: its restart policy is held until it is gone for good.
awaitable<result<void>> source_session::hold_restarts() {
  if (auto held = co_await rt_->hold_restarts(container_, true); !held) co_return held;
  held_ = true;
  co_return result<void>{};
}

// A dump or stop that failed half-way may have stopped the container: ask.
awaitable<result<void>> source_session::failed_to_stop(const error& e) {
  auto still = co_await rt_->inspect(req_.container());
  stopped_ = !(still && still->status == "running");
  co_return std::unexpected(e);
}

awaitable<result<void>> source_session::transfer() {
  enter(phase::transfer, std::to_string(report_.bytes_image()) + " image bytes");
  stopwatch sw;
  auto tree = co_await sync_bundle(phase::transfer);
  if (!tree) co_return std::unexpected(tree.error().context("bundle changes"));
  // The bundle changes count as part of the final round.
  report_.set_bytes_wire(report_.bytes_wire() + tree->bytes_wire);
  auto images = co_await send_round(rounds_.latest_dir(), true);
  if (!images) co_return std::unexpected(images.error().context("image transfer"));
  auto& round = report_.mutable_rounds()->at(report_.rounds_size() - 1);
  round.set_files(round.files() + tree->files);
  round.set_bytes_raw(round.bytes_raw() + tree->bytes_raw);
  round.set_bytes_wire(round.bytes_wire() + tree->bytes_wire);
  round.set_duration_ms(sw.ms());
  round.set_checkpoint_ms(report_.checkpoint_ms());
  report_.set_transfer_ms(sw.ms());
  co_return result<void>{};
}

awaitable<result<void>> source_session::begin_transfer() {
  pb::Envelope env;
  auto* b = env.mutable_migrate_begin();
  b->set_migration_id(id_);
  b->set_container(req_.container());
  b->set_method(req_.method());
  b->set_runtime(std::string(rt_->name()));
  b->set_source_node(ctx_.cfg.node_name);
  co_return co_await call(env, "migrate");
}

// One round: RoundBegin, then the dump's files (page files as deltas against
// the previous round), answered once the destination rebuilt and verified it.
awaitable<result<transport::stream_stats>> source_session::send_round(const std::filesystem::path& dir,
                                                                      bool final) {
  stopwatch sw;
  pb::Envelope env;
  env.mutable_round_begin()->set_index(rounds_.rounds());
  env.mutable_round_begin()->set_final(final);
  if (auto ok = co_await peer_->send(env); !ok) co_return std::unexpected(ok.error());
  auto files = rounds_.files_for(dir, ctx_.cfg.transfer.chunk_bytes);
  if (!files) co_return std::unexpected(files.error());
  auto opts = stream_options(final ? phase::transfer : phase::warmup);
  if (final && fault_injected("source.transfer.cut")) opts.cut_connection = [] { return true; };
  auto st = co_await transport::send_files(*peer_, *files, opts);
  if (!st) co_return std::unexpected(st.error());
  rounds_.delivered();
  const auto totals = rounds_.totals();
  auto& r = add_round(final ? "final" : "warmup", sw.ms(), *st);
  r.set_pages_scanned(totals.pages.pages);
  r.set_pages_full(totals.pages.full);
  r.set_pages_xor(totals.pages.xor_pages);
  r.set_pages_ref(totals.pages.ref);
  r.set_pages_skipped(totals.pages.same + totals.pages.zero);
  r.set_pages_dirty(totals.pages.full + totals.pages.xor_pages + totals.pages.ref);
  r.set_throttle_pct(throttle_pct_);
  co_return *st;
}

awaitable<result<void>> source_session::restore_remote() {
  enter(phase::restore);
  if (auto ok = co_await await_launch("restore"); !ok) co_return ok;
  report_.set_downtime_ms(stopwatch::between(frozen_at_, stopwatch::clock::now()));
  auto all = history_;
  all.push_back({report_.rounds().rbegin()->bytes_wire(), 0, 0, report_.transfer_ms()});
  report_.set_bandwidth_mib_s(mib_per_s(bandwidth_bytes_per_ms(all)));
  co_return co_await await_ready(frozen_at_);
}

// The destination's RestoreResult: its restore (or fresh start) worked.
awaitable<result<void>> source_session::await_launch(std::string_view what) {
  auto f = co_await peer_->recv(ctx_.cfg.timeouts.restore + ctx_.cfg.timeouts.io);
  if (!f) co_return std::unexpected(f.error().context("waiting for the " + std::string(what)));
  if (!f->msg.has_restore_result()) co_return fail(errc::protocol, "expected RestoreResult");
  const auto& rr = f->msg.restore_result();
  report_.set_restore_ms(rr.restore_ms());
  if (!rr.ok())
    co_return fail(transport::from_code(rr.code()),
                   std::string(what) + " at " + report_.destination() + ": " + rr.message());
  co_return result<void>{};
}

// The bundle (runc) or writable layer (Docker) to the destination: all of
// it the first time, what changed since afterwards.
awaitable<result<transport::stream_stats>> source_session::sync_bundle(std::string_view phase) {
  auto st = co_await send_tree(*peer_, container_.bundle, stream_options(phase));
  if (!st) co_return std::unexpected(st.error());
  report_.set_bytes_rootfs(report_.bytes_rootfs() + st->files.bytes_raw);
  co_return st->files;
}

// The destination probes the service (its readiness probe, or that the
// process runs) and says Ready; until then everything here stays as it was,
// so a service that never answers is rolled back like a failed restore.
awaitable<result<void>> source_session::await_ready(const stopwatch::clock::time_point& since) {
  enter(phase::ready);
  auto f = co_await peer_->recv(ctx_.cfg.timeouts.ready + ctx_.cfg.timeouts.io);
  if (!f) co_return std::unexpected(f.error().context("waiting for ready"));
  if (!f->msg.has_ready()) co_return fail(errc::protocol, "expected Ready");
  const auto& ready = f->msg.ready();
  report_.set_ready_probe(ready.probe());
  if (!ready.ok())
    co_return fail(transport::from_code(ready.code()), "not ready at " + report_.destination() + ": " + ready.message());
  report_.set_ready_ms(stopwatch::between(since, stopwatch::clock::now()));
  co_return result<void>{};
}

awaitable<result<void>> source_session::commit() {
  enter(phase::commit);
  pb::Envelope env;
  env.mutable_commit()->set_migration_id(id_);
  if (auto ok = co_await peer_->send(env); !ok) co_return ok;
  auto r = co_await transport::expect_reply(*peer_, "commit", ctx_.cfg.timeouts.io);
  if (!r)
    co_return std::unexpected(r.error().context("commit not acknowledged (" + report_.destination() +
                                                " may also be running " + req_.container() + ")"));
  if (auto ok = transport::to_result(*r); !ok) co_return ok;
  committed_ = true;
  co_return result<void>{};
}

awaitable<void> source_session::roll_back(const error& cause) {
  enter(phase::rollback, "restoring " + req_.container() + " here");
  stopwatch sw;
  if (peer_ && peer_->is_open()) {
    pb::Envelope env;
    env.mutable_abort()->set_migration_id(id_);
    env.mutable_abort()->set_reason(cause.message);
    if (co_await peer_->send(env)) co_await peer_->recv(abort_ack_timeout);
    peer_->close();
  }
  std::error_code ec;
  std::filesystem::create_directories(dir_ / "work-rollback", ec);
  result<runtime::container_info> restored = std::unexpected(error{});
  if (checkpoints()) {
    const runtime::restore_request req{container_.bundle, rounds_.latest_dir(), dir_ / "work-rollback"};
    restored = co_await rt_->restore(req_.container(), req);
  } else {  // filesystem methods keep no process state: start it again
    restored = co_await rt_->start(req_.container(), container_.bundle, dir_ / "work-rollback");
  }
  if (held_ && restored) {
    if (auto given = co_await rt_->hold_restarts(container_, false); !given)
      log::warn(*logger(), id_, phase::rollback, "{}", given.error().message);
  }
  report_.set_rollback_ms(sw.ms());
  if (restored) {
    report_.set_result(pb::RESULT_ROLLED_BACK);
    log::warn(*logger(), id_, phase::rollback, "{} runs here again (pid {})", req_.container(), restored->pid);
  } else {
    report_.set_result(pb::RESULT_FAILED);
    report_.set_error(report_.error() + "; rollback failed: " + restored.error().message +
                      (checkpoints() ? " (images kept in " + rounds_.latest_dir().string() + ")" : ""));
    log::error(*logger(), id_, phase::rollback, "{}", restored.error().message);
  }
}

awaitable<void> source_session::clean_up() {
  // Keep the images when the container could not be brought back anywhere:
  // they are the only copy of its state.
  if (report_.result() == pb::RESULT_FAILED && stopped_) co_return;
  // A migration that failed during warm-up leaves the container running
  // here, maybe throttled: give it its CPU back.
  if (!stopped_ && throttle_pct_) co_await set_throttle(0);
  std::error_code ec;
  for (auto& e : std::filesystem::directory_iterator(dir_, ec))
    if (e.path().filename().string().rfind("round-", 0) == 0) std::filesystem::remove_all(e.path(), ec);
  co_return;
}

awaitable<pb::Report> source_session::run_prepare() {
  ctx_.migrations.add(report_);
  enter(phase::accepted, "prepare " + req_.destination());
  result<void> outcome = co_await check_container();
  if (outcome) outcome = co_await connect();
  if (outcome) outcome = co_await pull();
  report_.set_total_ms(total_.ms());
  if (outcome) {
    report_.set_result(pb::RESULT_OK);
    enter(phase::done, (rt_->has_images() ? "image and writable layer are at " : "bundle is at ") + report_.destination());
  } else {
    report_.set_result(pb::RESULT_FAILED);
    report_.set_error(outcome.error().message);
    enter(phase::failed, outcome.error().message);
  }
  if (peer_) peer_->close();
  ctx_.migrations.finish(report_);
  co_return report_;
}

}  // namespace migrated::migration
