// Pre-copy warm-up rounds of a source session, and auto-converge: dump with
// --leave-running, send the page delta against the previous round, and let
// convergence.hpp decide whether to go on, throttle the container's CPU, or
// call the final round (see source_session.hpp for the whole flow). A
// pre-copy that would converge only by throttling, or stop the service
// for longer than precopy.final_transfer_ms, goes on as a hybrid instead
// when both nodes can restore lazily: the rounds sent count, and only what
// changed since follows after the restore.
#include "common/log.hpp"
#include "common/names.hpp"
#include "migration/fault_point.hpp"
#include "migration/source_session.hpp"

namespace migrated::migration {
namespace {

std::shared_ptr<spdlog::logger> logger() { return log::get("migration"); }

}  // namespace

awaitable<result<void>> source_session::warm_up() {
  const config::precopy_config& policy = ctx_.cfg.precopy;
  converge_mode mode = !policy.auto_converge ? converge_mode::off : converge_mode::automatic;
  if (req_.auto_converge() == pb::AUTO_CONVERGE_OFF) mode = converge_mode::off;
  if (req_.auto_converge() == pb::AUTO_CONVERGE_FORCE) mode = converge_mode::forced;
  // A hybrid does not throttle unless told to: what the rounds leave, post-copy brings.
  if (req_.method() == pb::HYBRID && mode == converge_mode::automatic) mode = converge_mode::off;
  runtime::runtime& rt = copy_->rt();
  const auto& container = copy_->container();
  std::optional<stopwatch::clock::time_point> previous_start;
  const auto cpu_before = rt.cpu_seconds(container);
  const auto cpu_since = stopwatch::clock::now();
  double cpus_used = 0;  // what the container uses unthrottled: the base every throttle step takes its share of
  for (;;) {
    if (auto ok = check_cancel(); !ok) co_return ok;
    const auto pct = copy_->throttle_pct();
    enter(state::warming_up, "round " + std::to_string(rounds_.rounds() + 1) +
                                 (pct ? ", throttled " + std::to_string(pct) + "%" : ""));
    auto dir = co_await offload(ctx_.pool, [this] { return next_round_dir(); });
    if (!dir) co_return std::unexpected(dir.error());
    const auto started = stopwatch::clock::now();
    const runtime::checkpoint_request req{
        .image_dir = *dir, .work_dir = dir_ / "work", .leave_running = true, .carry_netns = runtime::carries_netns(container)};
    // CRIU's parasite works inside the container's cgroup: a throttle
    // would slow the dump itself. The container is frozen meanwhile anyway.
    copy_->unthrottle_for_dump();
    auto dumped = co_await rt.checkpoint(container.id, req);
    const double dump_ms = stopwatch::between(started, stopwatch::clock::now());
    stats_.warmup_frozen_ms += dump_ms;  // CRIU freezes it for the whole dump
    if (pct) throttle(pct, cpus_used);
    if (!dumped) co_return std::unexpected(dumped.error().context("warm-up round"));
    auto& round = stats_.add_round("warmup");
    round.checkpoint_ms = dump_ms;
    const stopwatch sending;
    auto sent = co_await send_round(*dir, false, round);
    round.duration_ms = sending.ms();  // (a round that fails too)
    if (!sent) co_return sent;

    // The first round sends everything: that is no dirty rate.
    const round_observation seen{round.sent.bytes_wire, previous_start ? round.pages_dirty() * 4096 : 0,
                                 previous_start ? stopwatch::between(*previous_start, started) : round.duration_ms,
                                 round.sent.ms, dump_ms};
    if (previous_start) round.dirty_mib_s = mib_per_s(double(seen.dirty_bytes) / seen.interval_ms);
    previous_start = started;
    history_.push_back(seen);
    co_await fault_point::reach(id_, "source.warmup");

    if (!copy_->throttle_pct() && cpu_before) {
      if (auto now = rt.cpu_seconds(container); now)
        cpus_used = (*now - *cpu_before) / (stopwatch::between(cpu_since, stopwatch::clock::now()) / 1000.0);
    }
    const auto ending = req_.method() == pb::HYBRID ? final_kind::lazy : final_kind::stop_and_copy;
    auto next = decide(policy, mode, ending, history_, copy_->throttle_pct());
    if (const auto why = lazy_instead(next, mode); !why.empty()) {
      req_.set_method(pb::HYBRID);
      stats_.method = pb::HYBRID;
      stats_.convergence = fmt::format("after {} rounds {}: post-copy for the rest (hybrid)", rounds_.rounds(), why);
      log::info(*logger(), id_, phase::warmup, "{}", stats_.convergence);
      co_return result<void>{};
    }
    if (next.throttle_pct != copy_->throttle_pct()) throttle(next.throttle_pct, cpus_used);
    if (next.final_round) {
      stats_.convergence = next.reason;
      if (req_.method() == pb::HYBRID) stats_.convergence += "; post-copy brings the rest";
      log::info(*logger(), id_, phase::warmup, "{}", next.reason);
      co_return result<void>{};
    }
  }
}

// Only where auto-converge may act: --auto-converge off asks for plain
// rounds, force for the throttle.
std::string source_session::lazy_instead(const convergence_decision& next, converge_mode mode) const {
  if (req_.method() != pb::PRECOPY || mode != converge_mode::automatic) return {};
  if (copy_->rt().has_images() || !offers(ctx_.me.caps, pb::HYBRID) || !offers(peer_->peer.caps(), pb::HYBRID))
    return {};  // throttling stays where nothing restores lazily
  if (next.throttle_pct > copy_->throttle_pct())
    return fmt::format("it would converge only with its CPU throttled ({}%)", next.throttle_pct);
  if (!next.final_round) return {};
  const double bytes_per_ms = bandwidth_bytes_per_ms(history_);
  const double final_ms = bytes_per_ms > 0 ? double(history_.back().wire_bytes) / bytes_per_ms : 0;
  if (final_ms <= double(ctx_.cfg.precopy.final_transfer_ms)) return {};
  return fmt::format("its final round would take ~{:.0f} ms on the link, over precopy.final_transfer_ms ({} ms)",
                     final_ms, ctx_.cfg.precopy.final_transfer_ms);
}

void source_session::throttle(std::uint32_t pct, double cpus_used) {
  if (auto ok = copy_->throttle(pct, cpus_used); !ok) {
    log::warn(*logger(), id_, phase::warmup, "cannot throttle: {}", ok.error().message);
    return;
  }
  stats_.throttle_max_pct = std::max(stats_.throttle_max_pct, pct);
  if (pct) log::info(*logger(), id_, phase::warmup, "CPU throttle {}% (of {:.3f} CPUs used)", pct, cpus_used);
}

}  // namespace migrated::migration
