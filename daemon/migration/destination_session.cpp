// Destination side of a migration (see destination_session.hpp): the flow,
// top to bottom, and the rounds of images.
#include "migration/destination_session.hpp"

#include <signal.h>

#include <array>
#include <regex>

#include "common/fault.hpp"
#include "common/log.hpp"
#include "common/names.hpp"
#include "images/criu_stats.hpp"
#include "migration/bundle_sync.hpp"
#include "migration/disk_space.hpp"
#include "migration/fault_point.hpp"
#include "transport/file_stream.hpp"

namespace migrated::migration {
namespace {

std::shared_ptr<spdlog::logger> logger() { return log::get("migration"); }

// How long an Abort to the source may take when this side gives up.
constexpr auto abort_timeout = std::chrono::seconds(2);

// Container ids become directory names and runc ids here: keep them plain.
bool valid_container_id(const std::string& id) {
  static const std::regex re("[A-Za-z0-9][A-Za-z0-9_.-]{0,127}");
  return std::regex_match(id, re);
}

bool valid_migration_id(const std::string& id) {
  static const std::regex re("m-[0-9a-f]{1,32}");
  return std::regex_match(id, re);
}

bool keeps_process_state(pb::Method m) { return m == pb::COLD || m == pb::PRECOPY || restores_lazily(m); }

// What each state accepts next (Abort is always accepted). Named arrays, not
// braced lists at the call: g++ 12 miscompiles those passed to coroutines.
using kind = pb::Envelope::BodyCase;
constexpr std::array<kind, 1> provision_first{pb::Envelope::kProvision};
constexpr std::array<kind, 2> trees_or_begin{pb::Envelope::kTreeManifest, pb::Envelope::kMigrateBegin};
constexpr std::array<kind, 2> trees_or_prepare_end{pb::Envelope::kTreeManifest, pb::Envelope::kPrepareEnd};
constexpr std::array<kind, 2> rounds_or_trees{pb::Envelope::kRoundBegin, pb::Envelope::kTreeManifest};
constexpr std::array<kind, 1> commit_only{pb::Envelope::kCommit};

std::string_view phase_of(destination_session::state s) {
  using st = destination_session::state;
  switch (s) {
    case st::pulling: return phase::pull;
    case st::receiving: return phase::transfer;
    case st::launching: return phase::restore;
    case st::waiting_ready: return phase::ready;
    case st::postcopy: return phase::postcopy;
    case st::waiting_commit: return phase::commit;
    case st::committed: return phase::commit;
    case st::removing: return phase::rollback;
    case st::done: return phase::done;
    case st::failed: return phase::failed;
  }
  return "unknown";
}

// "Commit" for messages: the Envelope's field name.
std::string message_name(pb::Envelope::BodyCase c) {
  const auto* field = pb::Envelope::descriptor()->FindFieldByNumber(int(c));
  return field ? std::string(field->name()) : "message #" + std::to_string(int(c));
}

}  // namespace

std::string_view name(destination_session::state s) {
  using st = destination_session::state;
  switch (s) {
    case st::pulling: return "pulling";
    case st::receiving: return "receiving";
    case st::launching: return "launching";
    case st::waiting_ready: return "waiting_ready";
    case st::postcopy: return "postcopy";
    case st::waiting_commit: return "waiting_commit";
    case st::committed: return "committed";
    case st::removing: return "removing";
    case st::done: return "done";
    case st::failed: return "failed";
  }
  return "unknown";
}

destination_session::destination_session(node_context& ctx, transport::channel& ch) : ctx_(ctx), ch_(&ch), origin_(&ch) {}

void destination_session::enter(state s, std::string detail) {
  state_ = s;
  stats_.phase = std::string(phase_of(s));
  stats_.total_ms = total_.ms();
  if (!id_.empty()) ctx_.migrations.update(to_report(stats_));
  log::info(*logger(), id_, stats_.phase, "{}{}{}", container_, detail.empty() ? "" : ": ", detail);
}

awaitable<result<void>> destination_session::note(journal::step s) {
  if (!ctx_.journal || prepare_) co_return result<void>{};
  journal::entry e;
  e.migration_id = id_;
  e.side = journal::role::destination;
  e.state = s;
  e.container = container_;
  e.runtime = stats_.runtime;
  e.method = std::string(method_name(method_));
  e.peer = ch_->peer.node();
  journaled_ = true;
  co_return co_await offload(ctx_.pool, [this, &e] { return ctx_.journal->write(e); });
}

void destination_session::cancel(const std::string& reason) {
  fault_point::resume(id_);  // a pause ends in every state
  // After Commit was read the container is this node's: nothing to give up.
  if (state_ == state::committed || state_ == state::removing || state_ == state::done || state_ == state::failed)
    return;
  if (!cancelled_) cancelled_ = reason;
  ch_->cancel();  // whatever waits on the source ends now; the link stays for the Abort
  if (lazy_) {  // and the page transfer with it
    lazy_->claim.stop();
    lazy_->comeback.stop();
    if (lazy_->link) lazy_->link->close();
  }
}

awaitable<void> destination_session::run(const pb::Envelope& pull) {
  result<void> outcome;
  try {
    outcome = co_await serve(pull);
  } catch (const std::exception& e) {
    outcome = fail(errc::internal, std::string("internal error in the migration session: ") + e.what());
  }
  if (!outcome && cancelled_ && outcome.error().message.find(*cancelled_) == std::string::npos)
    outcome = fail(errc::cancelled, *cancelled_ + " (" + outcome.error().message + ")");
  co_await clean_up(outcome);
  stats_.total_ms = total_.ms();
  if (outcome) {
    stats_.result = pb::RESULT_OK;
    enter(state::done, state_ == state::committed ? "committed, running here" : "prepared");
  } else {
    stats_.error = outcome.error().message;
    stats_.error_code = outcome.error().code;
    stats_.result = launched_ ? pb::RESULT_ROLLED_BACK : pb::RESULT_FAILED;
    if (!id_.empty()) log::warn(*logger(), id_, stats_.phase, "{}", outcome.error().message);
    enter(state::failed, std::string(result_name(stats_.result)));
  }
  if (!id_.empty()) ctx_.migrations.finish(to_report(stats_));
}

// --- the flow ------------------------------------------------------------------

awaitable<result<void>> destination_session::serve(const pb::Envelope& pull) {
  if (auto ok = co_await accept_pull(pull); !ok) co_return ok;
  // While the container still runs at the source: its image and filesystem.
  auto begin = co_await receive_filesystem();
  if (!begin) co_return std::unexpected(begin.error());
  if (begin->msg.has_prepare_end()) co_return co_await ch_->reply(begin->msg.request_id(), {}, id_);
  co_await fault_point::reach(id_, "dest.receiving");

  const auto& b = begin->msg.migrate_begin();
  if (b.method() != method_)
    co_return fail(errc::protocol, "MigrateBegin says method " + std::string(method_name(b.method())) +
                                       ", Pull said " + std::string(method_name(method_)));
  if (bundle_.empty()) co_return fail(errc::protocol, "MigrateBegin before the container was provisioned");
  stats_.method = method_;
  rounds_ = std::make_unique<round_receiver>(dir_);
  if (restores_lazily(method_)) {
    if (auto ok = co_await expect_page_link(); !ok) co_return ok;
  }
  if (auto ok = co_await ch_->reply(begin->msg.request_id(), {}, id_); !ok) co_return ok;
  enter(state::receiving, std::string(method_name(method_)));

  if (keeps_process_state(method_)) {
    if (auto ok = co_await receive_images(); !ok) co_return ok;
  } else {
    if (auto ok = co_await receive_trees_until_start(); !ok) co_return ok;
  }
  co_await fault_point::reach(id_, "dest.received");
  if (auto ok = co_await launch(!keeps_process_state(method_)); !ok) co_return ok;
  if (restores_lazily(method_)) {
    if (auto ok = co_await receive_pages_to_the_end(); !ok) co_return ok;
  }
  co_await fault_point::reach(id_, "dest.ready");
  co_return co_await await_commit();
}

awaitable<result<void>> destination_session::accept_pull(const pb::Envelope& env) {
  const auto& p = env.pull();
  auto check = [&]() -> result<void> {
    if (!valid_migration_id(p.migration_id())) return fail(errc::invalid_argument, "bad migration id");
    if (!valid_container_id(p.container()))
      return fail(errc::invalid_argument, "bad container name '" + p.container() + "'");
    if (!ctx_.runtimes.find(p.runtime()))
      return fail(errc::unsupported, "runtime " + p.runtime() + " is not available on " + ctx_.cfg.node_name);
    if (ctx_.migrations.busy(p.container()))
      return fail(errc::busy, "a migration of " + p.container() + " is already in progress on " + ctx_.cfg.node_name);
    if (p.prepare() && p.method() != pb::COLD && p.method() != pb::METHOD_UNSPECIFIED)
      return fail(errc::invalid_argument, "a prepare names no method");
    return {};
  };
  auto ok = check();
  if (ok) {
    id_ = p.migration_id();
    container_ = p.container();
    prepare_ = p.prepare();
    method_ = p.method() == pb::METHOD_UNSPECIFIED ? pb::COLD : p.method();
    stats_.id = id_;
    stats_.container = container_;
    stats_.source = ch_->peer.node();
    stats_.destination = ctx_.cfg.node_name;
    stats_.runtime = p.runtime();
    stats_.method = stats_.requested_method = method_;
    ctx_.migrations.add(to_report(stats_), [this](const std::string& why) { cancel(why); });
    rt_ = ctx_.runtimes.find(p.runtime());
    auto existing = co_await rt_->inspect(container_);
    if (existing) ok = fail(errc::already_exists, "container " + container_ + " already exists on " + ctx_.cfg.node_name);
    else if (existing.error().code != errc::not_found) ok = std::unexpected(existing.error());
  }
  // Before anything of that name exists here: a restart removes it.
  if (ok) ok = co_await note(journal::step::receiving);
  if (ok) {
    dir_ = ctx_.cfg.images_root() / "incoming" / id_;
    const auto work = dir_ / "work";
    ok = co_await offload(ctx_.pool, [&work]() -> result<void> {
      std::error_code ec;
      std::filesystem::create_directories(work, ec);
      if (ec) return fail(errc::io, "create " + work.string() + ": " + ec.message());
      return {};
    });
  }
  if (ok && p.image_bytes_needed() > 0) {
    // Room for the images, before the source stops anything (disk_space.hpp).
    const auto dir = dir_;
    auto free = co_await offload(ctx_.pool, [&dir] { return free_bytes(dir); });
    if (!free) ok = std::unexpected(free.error());
    else
      ok = check_room(*free, p.image_bytes_needed(), p.memory_bytes(), ctx_.cfg.node_name, ctx_.cfg.images_root(),
                      container_);
  }
  if (ok && !rt_->has_images()) {
    // full starts from nothing: a bundle left by an earlier prepare goes.
    if (method_ == pb::FULL) {
      const auto old = rt_->bundle_path(container_);
      co_await offload(ctx_.pool, [&old] {
        std::error_code ec;
        std::filesystem::remove_all(old, ec);
      });
    }
    const std::string no_spec;  // runc: config.json travels in the bundle
    auto made = co_await rt_->create(container_, no_spec);
    if (made) bundle_ = made->bundle;
    else ok = std::unexpected(made.error());
  }
  enter(state::pulling, ok ? (prepare_ ? "prepare from " : "accepted from ") + ch_->peer.node() : ok.error().message);
  auto sent = co_await ch_->reply(env.request_id(), ok, id_);
  if (!ok) co_return ok;
  co_return sent;
}

// The image (Provision, once, first) and the trees, up to the frame that
// ends this state: MigrateBegin, or PrepareEnd for a prepare.
awaitable<result<transport::frame>> destination_session::receive_filesystem() {
  const auto wait = ctx_.cfg.timeouts.io + ctx_.cfg.timeouts.checkpoint;
  for (;;) {
    const std::span<const kind> allowed = rt_->has_images() && !created_ ? std::span<const kind>(provision_first)
                                          : prepare_                      ? std::span<const kind>(trees_or_prepare_end)
                                                                          : std::span<const kind>(trees_or_begin);
    auto f = co_await next(allowed, wait);
    if (!f) co_return std::unexpected(f.error());
    if (f->msg.has_provision()) {
      if (auto ok = co_await provision(f->msg); !ok) co_return std::unexpected(ok.error());
    } else if (f->msg.has_tree_manifest()) {
      if (auto ok = co_await receive_tree_for(f->msg.tree_manifest()); !ok) co_return std::unexpected(ok.error());
    } else {
      co_return f;
    }
  }
}

// cold, precopy: warm-up rounds, then (once the container stopped at the
// source) the filesystem's last changes and the final round.
awaitable<result<void>> destination_session::receive_images() {
  const auto wait = ctx_.cfg.timeouts.io + ctx_.cfg.timeouts.checkpoint;
  bool stopped_there = false;  // a tree came: the source stopped, only the final round may follow
  for (;;) {
    auto f = co_await next(rounds_or_trees, wait);
    if (!f) co_return std::unexpected(f.error());
    if (f->msg.has_tree_manifest()) {
      stopped_there = true;
      if (auto ok = co_await receive_tree_for(f->msg.tree_manifest()); !ok) co_return ok;
      continue;
    }
    const auto& round = f->msg.round_begin();
    if (round.start_fresh() || (stopped_there && !round.final()) || round.index() != next_round_) {
      const result<void> bad = fail(errc::protocol, "round " + std::to_string(round.index()) + (round.final() ? " (final)" : "") +
                                                        (round.start_fresh() ? " asking for a fresh start" : "") +
                                                        " out of order: expected round " + std::to_string(next_round_) +
                                                        (stopped_there ? " (final)" : ""));
      co_await ch_->reply(f->msg.request_id(), bad);
      co_return bad;
    }
    if (round.lazy()) {
      if (auto ok = co_await take_lazy_final(round); !ok) {
        co_await ch_->reply(f->msg.request_id(), ok);
        co_return ok;
      }
    }
    if (auto ok = co_await receive_round(round); !ok) co_return ok;
    ++next_round_;
    if (round.final()) co_return result<void>{};
  }
}

// The page link of a post-copy or hybrid: expected before the source
// hears the final round went well, which is when it opens the link.
awaitable<result<void>> destination_session::expect_page_link() {
  if (!ctx_.links) co_return fail(errc::unsupported, "no post-copy on " + ctx_.cfg.node_name);
  auto ex = co_await asio::this_coro::executor;
  lazy_ = std::make_unique<lazy_transfer>(ex);
  auto claim = ctx_.links->expect(ex, id_, ch_->peer.node(), ctx_.cfg.postcopy.recover_timeout.count() > 0);
  if (!claim) co_return std::unexpected(claim.error());
  lazy_->claim = std::move(*claim);
  co_return result<void>{};
}

// A final round without the memory, which follows on the page link. A
// precopy whose rounds went on as a hybrid (the source's convergence
// decided so) becomes one here too.
awaitable<result<void>> destination_session::take_lazy_final(const pb::RoundBegin& round) {
  if (!round.final()) co_return fail(errc::protocol, "a lazy warm-up round " + std::to_string(round.index()));
  if (restores_lazily(method_)) co_return result<void>{};
  if (method_ != pb::PRECOPY)
    co_return fail(errc::protocol, "a lazy final round for method " + std::string(method_name(method_)));
  if (next_round_ == 1) co_return fail(errc::protocol, "a precopy going on as a hybrid before any warm-up round");
  method_ = stats_.method = pb::HYBRID;
  log::info(*logger(), id_, stats_.phase, "the source goes on as a hybrid: the memory follows after the restore");
  co_return co_await expect_page_link();
}

// diff, full, replay: the filesystem's changes, up to the fresh start.
awaitable<result<void>> destination_session::receive_trees_until_start() {
  const auto wait = ctx_.cfg.timeouts.io + ctx_.cfg.timeouts.checkpoint;
  for (;;) {
    auto f = co_await next(rounds_or_trees, wait);
    if (!f) co_return std::unexpected(f.error());
    if (f->msg.has_tree_manifest()) {
      if (auto ok = co_await receive_tree_for(f->msg.tree_manifest()); !ok) co_return ok;
      continue;
    }
    if (!f->msg.round_begin().start_fresh()) {
      const result<void> bad = fail(errc::protocol, "a round of images for method " + std::string(method_name(method_)) +
                                                        ", which starts the container fresh");
      co_await ch_->reply(f->msg.request_id(), bad);
      co_return bad;
    }
    co_return result<void>{};
  }
}

awaitable<result<void>> destination_session::receive_round(const pb::RoundBegin& round) {
  const bool final = round.final();
  enter(state::receiving, (final ? "final round " : "warm-up round ") + std::to_string(round.index()));
  auto dir = co_await offload(ctx_.pool, [&] { return rounds_->begin_round(round.index()); });
  if (!dir) co_return std::unexpected(dir.error());
  auto opts = rounds_->options(ctx_.pool);
  opts.on_chunk = [final](std::uint64_t index, std::vector<std::uint8_t>& raw) {
    if (index != 0) return;
    if (fault_injected(final ? "dest.transfer.die" : "dest.warmup.die")) ::raise(SIGKILL);
    if (final && !raw.empty() && fault_injected("dest.checksum.corrupt")) raw[0] ^= 0x5a;
  };
  auto st = co_await transport::receive_files(*ch_, *dir, opts);
  if (!st) co_return std::unexpected(st.error().context("round " + std::to_string(round.index())));
  if (rounds_->patched_in_place() > 0)
    log::event(*logger(), spdlog::level::debug, id_, stats_.phase,
               std::to_string(rounds_->patched_in_place()) + " pages files patched in place");
  co_await offload(ctx_.pool, [&] { rounds_->delivered(ctx_.pool, final); });
  auto& r = stats_.add_round(final ? "final" : "warmup");
  r.add(*st);
  stats_.bytes_image = st->bytes_raw;
  if (final) stats_.transfer_ms = st->ms;
  co_return result<void>{};
}

// Restores the final round's images, or (filesystem methods) starts the
// container fresh; answers RestoreResult, then Ready once it answers.
awaitable<result<void>> destination_session::launch(bool fresh) {
  enter(state::launching, fresh ? "start" : "restore");
  stopwatch sw;
  result<runtime::container_info> launched = std::unexpected(error{});
  // A copy may run here from now on: on disk before it does.
  if (auto noted = co_await note(journal::step::restored); !noted) {
    launched = std::unexpected(noted.error());
  } else if (auto adapted = co_await offload(ctx_.pool, [this] { return rt_->adapt_bundle(bundle_, container_); }); !adapted) {
    launched = std::unexpected(adapted.error());
  } else if (fresh) {
    launched = co_await rt_->start(container_, bundle_, dir_ / "work");
  } else if (restores_lazily(method_)) {
    launched = co_await restore_lazily();
  } else {
    const auto images = rounds_->current_dir();
    if (fault_injected("dest.restore.fail")) {
      std::error_code ec;  // CRIU must fail for real: take away the image inventory
      std::filesystem::remove(images / "inventory.img", ec);
    }
    const runtime::restore_request req{bundle_, images, dir_ / "work"};
    launched = co_await rt_->restore(container_, req);
  }
  launched_ = launched.has_value();
  stats_.restore_ms = sw.ms();
  if (launched && cancelled_) launched = fail(errc::cancelled, *cancelled_);
  pb::Envelope env;
  auto* rr = env.mutable_restore_result();
  rr->set_ok(launched.has_value());
  rr->set_restore_ms(sw.ms());
  if (launched && !fresh) {
    const auto work = dir_ / "work";
    auto criu = co_await offload(ctx_.pool, [&work] { return images::read_restore_stats(work); });
    if (criu) stats_.criu_restore = criu_restore_report(*criu);
    if (stats_.criu_restore) *rr->mutable_criu() = *stats_.criu_restore;
  }
  if (launched) {
    rr->set_pid(std::uint32_t(launched->pid));
  } else {
    rr->set_code(transport::to_code(launched.error().code));
    rr->set_message(launched.error().message);
  }
  if (auto ok = co_await ch_->send(env); !ok) co_return ok;
  if (!launched) co_return std::unexpected(launched.error());
  co_await fault_point::reach(id_, "dest.restored");
  co_return co_await become_ready(sw);
}

awaitable<result<void>> destination_session::await_commit() {
  enter(state::waiting_commit, "waiting for the source");
  result<transport::frame> f = fail(errc::internal, "no frame");
  if (lazy_ && lazy_->listening.started()) f = co_await heard_after_postcopy(commit_only, ctx_.cfg.timeouts.commit);
  else f = co_await next(commit_only, ctx_.cfg.timeouts.commit);
  if (!f) co_return std::unexpected(f.error().context("no commit"));
  // Given up while the Commit was on its way (an OutcomeQuery was told
  // "not committed"): that answer stands.
  if (cancelled_) co_return fail(errc::cancelled, *cancelled_);
  // Committed once it is on disk, before the acknowledgement: a restart keeps
  // the copy, and the source's OutcomeQuery hears "committed".
  if (auto noted = co_await note(journal::step::committed); !noted) {
    const result<void> refused = std::unexpected(noted.error().context("commit"));
    co_await ch_->reply(f->msg.request_id(), refused, id_);
    co_return refused;
  }
  enter(state::committed);
  co_await fault_point::reach(id_, "dest.committed");
  if (auto ok = co_await ch_->reply(f->msg.request_id(), {}, id_); !ok)
    // The container is here now; the source, unsure, asks (OutcomeQuery)
    // and hears it from the journal.
    log::warn(*logger(), id_, phase::commit, "committed, but the acknowledgement did not reach {} ({}): it will ask",
              stats_.source, ok.error().message);
  co_return result<void>{};
}

awaitable<result<transport::frame>> destination_session::next(std::span<const pb::Envelope::BodyCase> allowed,
                                                              std::chrono::milliseconds timeout) {
  if (cancelled_) co_return fail(errc::cancelled, *cancelled_);
  auto f = co_await ch_->recv(timeout);
  co_return co_await judge(f, allowed);
}

// A frame the session reads: an Abort ends the migration, and one it does
// not expect now is refused.
awaitable<result<transport::frame>> destination_session::judge(result<transport::frame>& f,
                                                               std::span<const pb::Envelope::BodyCase> allowed) {
  if (!f) co_return std::unexpected(f.error());
  const auto got = f->msg.body_case();
  if (got == pb::Envelope::kAbort) {
    co_await ch_->reply(f->msg.request_id(), {});
    co_return fail(errc::cancelled, "source aborted: " + f->msg.abort().reason());
  }
  for (auto a : allowed)
    if (a == got) co_return std::move(f);
  std::string expected;
  for (auto a : allowed) expected += (expected.empty() ? "" : " or ") + message_name(a);
  const result<void> bad = fail(errc::protocol, message_name(got) + " out of order: " + std::string(name(state_)) +
                                                    " expects " + expected);
  co_await ch_->reply(f->msg.request_id(), bad);
  co_return std::unexpected(bad.error());
}

// Whatever this migration left here goes unless it was committed; a source
// waiting on this side hears why first (it restores its own copy), and the
// link ends before the removal: a source still sending to a side that
// stopped reading would otherwise wait out its I/O deadline meanwhile.
awaitable<void> destination_session::clean_up(const result<void>& outcome) {
  co_await end_page_transfer();
  if (!outcome && ch_->is_open()) {
    const auto code = outcome.error().code;
    // A source that aborted or went away needs no answer.
    const bool source_gave_up = code == errc::peer || (code == errc::cancelled && !cancelled_);
    if (!source_gave_up) {
      pb::Envelope env;
      env.mutable_abort()->set_migration_id(id_);
      env.mutable_abort()->set_reason(ctx_.cfg.node_name + ": " + (cancelled_ ? *cancelled_ : outcome.error().message));
      co_await ch_->send_within(abort_timeout, env);
    }
    ch_->close();
  }
  bool removed = true;
  if ((launched_ || created_ || journaled_) && state_ != state::committed) {
    enter(state::removing, launched_ ? "removing the restored copy" : "removing the created container");
    if (auto ok = co_await rt_->remove(container_); !ok) {
      removed = false;  // the journal keeps it: the next start tries again
      log::error(*logger(), id_, phase::rollback, "{}", ok.error().message);
    }
  }
  co_await lazy_pages_ended();
  // A committed record stays: it answers the source's OutcomeQuery. The
  // oldest beyond the store's limits go (on the pool: it reads them all).
  if (journaled_ && state_ != state::committed && removed) {
    auto ok = co_await offload(ctx_.pool, [this] { return ctx_.journal->remove(id_); });
    if (!ok) log::error(*logger(), id_, phase::rollback, "{}", ok.error().message);
    journaled_ = false;
  }
  if (journaled_ && state_ == state::committed) {
    auto* store = ctx_.journal;
    co_await offload(ctx_.pool, [store] { store->prune(std::chrono::system_clock::now()); });
  }
  rounds_.reset();
  if (!dir_.empty()) {
    const auto dir = dir_;
    co_await offload(ctx_.pool, [&dir] {
      std::error_code ec;
      for (auto& e : std::filesystem::directory_iterator(dir, ec))
        if (const auto n = e.path().filename().string(); n.rfind("round-", 0) == 0 || n.rfind("stage-", 0) == 0)
          std::filesystem::remove_all(e.path(), ec);
    });
  }
}

}  // namespace migrated::migration
