// Pre-copy convergence policy (see convergence.hpp).
#include "migration/convergence.hpp"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

namespace migrated::migration {
namespace {

// A round this small costs less than the round trip of another (P.Haul
// stops at 64 pages, too).
constexpr std::uint64_t tiny_round_bytes = 64 * 4096;

// A hybrid stops its rounds once one takes less than half off the delta:
// a further round would put more on the wire than it takes off the
// post-copy that follows.
constexpr std::uint32_t hybrid_min_shrink_pct = 50;

std::uint32_t deeper(const config::precopy_config& p, std::uint32_t pct) {
  return std::min(p.throttle_max_pct, pct + p.throttle_step_pct);
}

}  // namespace

double bandwidth_bytes_per_ms(const std::vector<round_observation>& history) {
  std::uint64_t bytes = 0;
  double ms = 0;
  for (auto& r : history) {
    // Tiny rounds are dominated by latency, not bandwidth.
    if (r.wire_bytes < (256u << 10) || r.transfer_ms <= 0) continue;
    bytes += r.wire_bytes;
    ms += r.transfer_ms;
  }
  return ms > 0 ? double(bytes) / ms : 0;
}

convergence_decision decide(const config::precopy_config& policy, converge_mode mode, final_kind ending,
                            const std::vector<round_observation>& history, std::uint32_t throttle_pct) {
  convergence_decision d{false, throttle_pct, {}};
  const auto& last = history.back();
  const double bw = bandwidth_bytes_per_ms(history);
  const double predicted_ms = bw > 0 ? double(last.wire_bytes) / bw : 0;
  const bool can_throttle = mode != converge_mode::off && throttle_pct < policy.throttle_max_pct;

  if (mode == converge_mode::forced && can_throttle) d.throttle_pct = deeper(policy, throttle_pct);

  if (last.wire_bytes <= tiny_round_bytes) {
    d.final_round = true;
    d.reason = fmt::format("converged after {} rounds: only {:.0f} KiB left", history.size(),
                           last.wire_bytes / 1024.0);
    return d;
  }
  if (bw > 0 && predicted_ms <= policy.final_transfer_ms) {
    d.final_round = true;
    d.reason = fmt::format("converged after {} rounds: {:.0f} KiB left, ~{:.1f} ms at {:.0f} MiB/s",
                           history.size(), last.wire_bytes / 1024.0, predicted_ms, bw * 1000 / 1048576);
    return d;
  }
  if (history.size() >= policy.max_rounds) {
    d.final_round = true;
    d.reason = fmt::format("stopped after the maximum of {} rounds", policy.max_rounds);
    return d;
  }
  // A hybrid's downtime does not depend on its delta: post-copy sends that
  // after the restore, the service running. A round is worth its dump only
  // while the dump is short, since every round here is a full dump that
  // freezes the container throughout (nothing tracks dirty pages): once
  // one froze it for longer than the final stop is meant to take, another
  // would interrupt the service for longer than the switch-over does.
  if (ending == final_kind::lazy && last.checkpoint_ms > policy.final_transfer_ms) {
    d.final_round = true;
    d.reason = fmt::format("after {} rounds: round {}'s dump froze the container for {:.0f} ms, over "
                           "precopy.final_transfer_ms ({} ms)",
                           history.size(), history.size(), last.checkpoint_ms, policy.final_transfer_ms);
    return d;
  }
  // Dirtying costs the link more than half its rate: the delta can never
  // shrink to nothing; slow the container down. (What counts is the delta
  // the dirtying produces, not the pages: a few bytes changed per page cost
  // a few bytes.)
  const double delta_rate =
      last.interval_ms > 0 && last.dirty_bytes > 0 ? double(last.wire_bytes) / last.interval_ms : 0;
  if (mode == converge_mode::automatic && can_throttle && bw > 0 && delta_rate > bw / 2)
    d.throttle_pct = deeper(policy, throttle_pct);

  // Shrinking, but too slowly to reach the target within the rounds left:
  // throttle now rather than stop with a large final round.
  if (mode == converge_mode::automatic && can_throttle && bw > 0 && history.size() >= 2) {
    const double shrink = double(last.wire_bytes) / double(std::max<std::uint64_t>(history[history.size() - 2].wire_bytes, 1));
    const double target_bytes = policy.final_transfer_ms * bw;
    const std::size_t left = policy.max_rounds - history.size();
    if (shrink < 1 && shrink > 0 && double(last.wire_bytes) > target_bytes) {
      const double needed = std::ceil(std::log(target_bytes / double(last.wire_bytes)) / std::log(shrink));
      if (needed > double(left)) d.throttle_pct = std::max(d.throttle_pct, deeper(policy, throttle_pct));
    }
  }

  if (history.size() >= 2) {
    const auto& prev = history[history.size() - 2];
    const std::uint32_t min_shrink_pct =
        ending == final_kind::lazy ? std::max(policy.min_shrink_pct, hybrid_min_shrink_pct) : policy.min_shrink_pct;
    const double limit = double(prev.wire_bytes) * (100 - min_shrink_pct) / 100.0;
    if (double(last.wire_bytes) > limit) {
      if (can_throttle) {
        d.throttle_pct = std::max(d.throttle_pct, deeper(policy, throttle_pct));
        return d;
      }
      d.final_round = true;
      d.reason = fmt::format("the delta stopped shrinking ({:.0f} KiB after {:.0f} KiB) after {} rounds",
                             last.wire_bytes / 1024.0, prev.wire_bytes / 1024.0, history.size());
      return d;
    }
  }
  return d;
}

}  // namespace migrated::migration
