// Destination side of a migration (see destination_session.hpp).
#include "migration/destination_session.hpp"

#include <signal.h>

#include <regex>

#include "common/fault.hpp"
#include "common/log.hpp"
#include "migration/bundle_sync.hpp"
#include "transport/file_stream.hpp"

namespace migrated::migration {
namespace {

std::shared_ptr<spdlog::logger> logger() { return log::get("migration"); }

// Container ids become directory names and runc ids here: keep them plain.
bool valid_container_id(const std::string& id) {
  static const std::regex re("[A-Za-z0-9][A-Za-z0-9_.-]{0,127}");
  return std::regex_match(id, re);
}

bool valid_migration_id(const std::string& id) {
  static const std::regex re("m-[0-9a-f]{1,32}");
  return std::regex_match(id, re);
}

}  // namespace

destination_session::destination_session(node_context& ctx, transport::channel& ch) : ctx_(ctx), ch_(ch) {}

void destination_session::enter(std::string_view phase, std::string detail) {
  report_.set_phase(std::string(phase));
  ctx_.migrations.update(report_);
  log::info(*logger(), id_, phase, "{}{}{}", container_, detail.empty() ? "" : ": ", detail);
}

awaitable<void> destination_session::run(const pb::Envelope& pull) {
  auto outcome = co_await serve(pull);
  report_.set_total_ms(total_.ms());
  if (outcome) {
    report_.set_result(pb::RESULT_OK);
    enter(phase::done, committed_ ? "committed, running here" : "bundle received");
  } else {
    report_.set_error(outcome.error().message);
    report_.set_result(restored_ ? pb::RESULT_ROLLED_BACK : pb::RESULT_FAILED);
    if (!id_.empty()) log::warn(*logger(), id_, report_.phase(), "{}", outcome.error().message);
  }
  co_await clean_up(outcome.has_value());
  if (!id_.empty()) ctx_.migrations.finish(report_);
}

awaitable<result<void>> destination_session::serve(const pb::Envelope& pull) {
  if (auto ok = co_await accept_pull(pull); !ok) co_return ok;
  for (;;) {
    auto f = co_await ch_.recv(ctx_.cfg.timeouts.io + ctx_.cfg.timeouts.checkpoint);
    if (!f) {
      // The source closing after a pull is how a prepare ends.
      if (f.error().code == errc::peer && !restored_) co_return result<void>{};
      co_return std::unexpected(f.error());
    }
    auto& m = f->msg;
    if (m.has_tree_manifest()) {
      if (auto ok = co_await receive_tree_for(m.tree_manifest()); !ok) co_return ok;
    } else if (m.has_provision()) {
      if (auto ok = co_await provision(m); !ok) co_return ok;
    } else if (m.has_migrate_begin()) {
      report_.set_method(m.migrate_begin().method());
      method_ = m.migrate_begin().method();
      rounds_ = std::make_unique<round_receiver>(dir_);
      if (auto ok = co_await ch_.reply(m.request_id(), {}, id_); !ok) co_return ok;
    } else if (m.has_round_begin()) {
      if (!rounds_) co_return fail(errc::protocol, "a round before MigrateBegin");
      if (bundle_.empty()) co_return fail(errc::protocol, "a round before the container was provisioned");
      const bool fresh = m.round_begin().start_fresh();
      if (!fresh) {
        if (auto ok = co_await receive_round(m.round_begin()); !ok) co_return ok;
        if (!m.round_begin().final()) continue;
      }
      if (auto ok = co_await launch(fresh); !ok) co_return ok;
      co_return co_await await_commit();
    } else if (m.has_abort()) {
      co_await ch_.reply(m.request_id(), {});
      co_return fail(errc::cancelled, "source aborted: " + m.abort().reason());
    } else {
      co_return fail(errc::protocol, "unexpected message #" + std::to_string(m.body_case()));
    }
  }
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
    return {};
  };
  auto ok = check();
  if (ok) {
    id_ = p.migration_id();
    container_ = p.container();
    report_.set_id(id_);
    report_.set_container(container_);
    report_.set_source(ch_.peer.node());
    report_.set_destination(ctx_.cfg.node_name);
    report_.set_runtime(p.runtime());
    report_.set_result(pb::RESULT_RUNNING);
    ctx_.migrations.add(report_);
    rt_ = ctx_.runtimes.find(p.runtime());
    method_ = p.method();
    auto existing = co_await rt_->inspect(container_);
    if (existing) ok = fail(errc::already_exists, "container " + container_ + " already exists on " + ctx_.cfg.node_name);
    else if (existing.error().code != errc::not_found) ok = std::unexpected(existing.error());
  }
  if (ok) {
    dir_ = ctx_.cfg.storage_dir / "incoming" / id_;
    std::error_code ec;
    std::filesystem::create_directories(dir_ / "work", ec);
    if (ec) ok = fail(errc::io, "create " + dir_.string() + ": " + ec.message());
  }
  if (ok && !rt_->has_images()) {
    // full starts from nothing: a bundle left by an earlier prepare goes.
    std::error_code ec;
    if (method_ == pb::FULL) std::filesystem::remove_all(rt_->bundle_path(container_), ec);
    const std::string no_spec;  // runc: config.json travels in the bundle
    auto made = co_await rt_->create(container_, no_spec);
    if (made) bundle_ = made->bundle;
    else ok = std::unexpected(made.error());
  }
  enter(phase::pull, ok ? "accepted from " + ch_.peer.node() : ok.error().message);
  auto sent = co_await ch_.reply(env.request_id(), ok, id_);
  if (!ok) co_return ok;
  co_return sent;
}

awaitable<result<void>> destination_session::receive_round(const pb::RoundBegin& round) {
  const bool final = round.final();
  enter(final ? phase::transfer : phase::warmup, "round " + std::to_string(round.index()));
  auto dir = rounds_->begin_round(round.index());
  if (!dir) co_return std::unexpected(dir.error());
  auto opts = rounds_->options(ctx_.pool);
  opts.on_chunk = [final](std::uint64_t index, std::vector<std::uint8_t>& raw) {
    if (index != 0) return;
    if (fault_injected(final ? "dest.transfer.die" : "dest.warmup.die")) ::raise(SIGKILL);
    if (final && !raw.empty() && fault_injected("dest.checksum.corrupt")) raw[0] ^= 0x5a;
  };
  auto st = co_await transport::receive_files(ch_, *dir, opts);
  if (!st) co_return std::unexpected(st.error().context("round " + std::to_string(round.index())));
  if (rounds_->patched_in_place() > 0)
    log::event(*logger(), spdlog::level::debug, id_, final ? phase::transfer : phase::warmup,
               std::to_string(rounds_->patched_in_place()) + " pages files patched in place");
  rounds_->delivered(ctx_.pool, final);
  report_.set_bytes_image(st->bytes_raw);
  report_.set_bytes_wire(report_.bytes_wire() + st->bytes_wire);
  if (final) report_.set_transfer_ms(st->ms);
  co_return result<void>{};
}

// Restores the final round's images, or (filesystem methods) starts the
// container fresh; answers RestoreResult, then Ready once it answers.
awaitable<result<void>> destination_session::launch(bool fresh) {
  enter(fresh ? phase::start : phase::restore);
  stopwatch sw;
  result<runtime::container_info> launched = std::unexpected(error{});
  if (auto adapted = rt_->adapt_bundle(bundle_, container_); !adapted) {
    launched = std::unexpected(adapted.error());
  } else if (fresh) {
    launched = co_await rt_->start(container_, bundle_, dir_ / "work");
  } else {
    const auto images = rounds_->current_dir();
    if (fault_injected("dest.restore.fail")) {
      std::error_code ec;  // CRIU must fail for real: take away the image inventory
      std::filesystem::remove(images / "inventory.img", ec);
    }
    const runtime::restore_request req{bundle_, images, dir_ / "work"};
    launched = co_await rt_->restore(container_, req);
  }
  restored_ = launched.has_value();
  report_.set_restore_ms(sw.ms());
  pb::Envelope env;
  auto* rr = env.mutable_restore_result();
  rr->set_ok(launched.has_value());
  rr->set_restore_ms(sw.ms());
  if (launched) {
    rr->set_pid(std::uint32_t(launched->pid));
  } else {
    rr->set_code(transport::to_code(launched.error().code));
    rr->set_message(launched.error().message);
  }
  if (auto ok = co_await ch_.send(env); !ok) co_return ok;
  if (!launched) co_return std::unexpected(launched.error());
  co_return co_await become_ready(sw);
}

awaitable<result<void>> destination_session::await_commit() {
  enter(phase::commit, "waiting for the source");
  auto f = co_await ch_.recv(ctx_.cfg.timeouts.commit);
  if (!f) co_return std::unexpected(f.error().context("no commit"));
  if (f->msg.has_abort()) {
    co_await ch_.reply(f->msg.request_id(), {});
    co_return fail(errc::cancelled, "source aborted: " + f->msg.abort().reason());
  }
  if (!f->msg.has_commit()) co_return fail(errc::protocol, "expected Commit");
  committed_ = true;
  co_return co_await ch_.reply(f->msg.request_id(), {}, id_);
}

awaitable<void> destination_session::clean_up(bool success) {
  if ((restored_ || created_) && !committed_) {
    enter(phase::rollback, restored_ ? "removing the restored copy" : "removing the created container");
    if (auto ok = co_await rt_->remove(container_); !ok)
      log::error(*logger(), id_, phase::rollback, "{}", ok.error().message);
  }
  rounds_.reset();
  if (!dir_.empty()) {
    std::error_code ec;
    for (auto& e : std::filesystem::directory_iterator(dir_, ec))
      if (const auto name = e.path().filename().string(); name.rfind("round-", 0) == 0 || name.rfind("stage-", 0) == 0)
        std::filesystem::remove_all(e.path(), ec);
  }
  co_return;
}

}  // namespace migrated::migration
