// Pre-copy warm-up rounds of a source session, and auto-converge: dump with
// --leave-running, send the page delta against the previous round, and let
// convergence.hpp decide whether to go on, throttle the container's CPU, or
// call the final round (see source_session.hpp for the whole flow).
#include "common/log.hpp"
#include "migration/source_session.hpp"

namespace migrated::migration {
namespace {

std::shared_ptr<spdlog::logger> logger() { return log::get("migration"); }

}  // namespace

// Warm-up rounds (precopy only): dump without stopping, send the delta,
// until the convergence policy calls the final round.
awaitable<result<void>> source_session::warm_up() {
  if (req_.method() != pb::PRECOPY) co_return result<void>{};
  const auto& policy = ctx_.cfg.precopy;
  converge_mode mode = !policy.auto_converge ? converge_mode::off : converge_mode::automatic;
  if (req_.auto_converge() == pb::AUTO_CONVERGE_OFF) mode = converge_mode::off;
  if (req_.auto_converge() == pb::AUTO_CONVERGE_FORCE) mode = converge_mode::forced;
  std::error_code ec;
  std::filesystem::create_directories(dir_ / "work", ec);
  std::optional<stopwatch::clock::time_point> previous_start;
  auto cpu_before = rt_->cpu_seconds(container_);
  const auto cpu_since = stopwatch::clock::now();
  for (;;) {
    if (auto ok = check_abort(); !ok) co_return ok;
    enter(phase::warmup, "round " + std::to_string(rounds_.rounds() + 1) +
                             (throttle_pct_ ? ", throttled " + std::to_string(throttle_pct_) + "%" : ""));
    auto dir = rounds_.next_dir();
    if (!dir) co_return std::unexpected(dir.error());
    const auto started = stopwatch::clock::now();
    const runtime::checkpoint_request req{*dir, dir_ / "work", true};
    // CRIU's parasite works inside the container's cgroup: a throttle
    // would slow the dump itself. The container is frozen meanwhile anyway.
    lift_throttle();
    auto dumped = co_await rt_->checkpoint(req_.container(), req);
    const double dump_ms = stopwatch::between(started, stopwatch::clock::now());
    if (throttle_pct_) co_await set_throttle(throttle_pct_);
    if (!dumped) co_return std::unexpected(dumped.error().context("warm-up round"));
    auto sent = co_await send_round(*dir, false);
    if (!sent) co_return std::unexpected(sent.error().context("warm-up round"));

    auto& r = report_.mutable_rounds()->at(report_.rounds_size() - 1);
    r.set_checkpoint_ms(dump_ms);
    // The first round sends everything: that is no dirty rate.
    round_observation seen{sent->bytes_wire, previous_start ? r.pages_dirty() * 4096 : 0,
                           previous_start ? stopwatch::between(*previous_start, started) : r.duration_ms(),
                           sent->ms};
    if (previous_start) r.set_dirty_mib_s(mib_per_s(double(seen.dirty_bytes) / seen.interval_ms));
    previous_start = started;
    history_.push_back(seen);

    // What the container uses unthrottled is the base every throttle step
    // takes its share of.
    if (!throttle_pct_ && cpu_before) {
      if (auto now = rt_->cpu_seconds(container_); now)
        cpus_used_ = (*now - *cpu_before) / (stopwatch::between(cpu_since, stopwatch::clock::now()) / 1000.0);
    }
    auto next = decide(policy, mode, history_, throttle_pct_);
    if (next.throttle_pct != throttle_pct_) co_await set_throttle(next.throttle_pct);
    if (next.final_round) {
      report_.set_convergence(next.reason);
      log::info(*logger(), id_, phase::warmup, "{}", next.reason);
      co_return result<void>{};
    }
  }
}

void source_session::lift_throttle() {
  if (!throttle_pct_) return;
  if (auto ok = rt_->throttle(container_, 0, cpus_used_); !ok)
    log::warn(*logger(), id_, phase_, "cannot lift the throttle: {}", ok.error().message);
}

awaitable<void> source_session::set_throttle(std::uint32_t pct) {
  if (auto ok = rt_->throttle(container_, pct, cpus_used_); !ok) {
    log::warn(*logger(), id_, phase::warmup, "cannot throttle: {}", ok.error().message);
    co_return;
  }
  throttle_pct_ = pct;
  report_.set_throttle_max_pct(std::max(report_.throttle_max_pct(), pct));
  log::info(*logger(), id_, phase::warmup, "CPU throttle {}% (of {:.3f} CPUs used)", pct, cpus_used_);
  co_return;
}

}  // namespace migrated::migration
