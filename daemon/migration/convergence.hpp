// When to stop pre-copy warm-up rounds, and when to throttle. After each
// warm-up round the source looks at what the round cost and decides:
//
// - another round would not shrink the delta (it shrank by less than
//   min_shrink_pct) → final round; unless auto-converge may throttle the
//   container harder, which it does first (as QEMU does for VMs);
// - the round's delta would cross the link within final_transfer_ms at the
//   measured bandwidth → final round: the container is stopped only for a
//   delta about that small;
// - max_rounds reached → final round;
// - a hybrid (its rounds end with a lazy dump and post-copy) also ends them
//   once a round's dump froze the container for longer than
//   final_transfer_ms, and when a round takes less than half off the delta;
// - else another round.
//
// Auto-converge also throttles whenever the container's dirtying costs more
// than half of what the link carries (the delta per second of the last
// round), so the rounds can converge at all, and when the delta shrinks too
// slowly to reach the target in the rounds left (judged from the last
// round's shrink factor).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/config.hpp"

namespace migrated::migration {

struct round_observation {
  std::uint64_t wire_bytes = 0;      // what the round put on the wire
  std::uint64_t dirty_bytes = 0;     // pages changed since the previous round
  double interval_ms = 0;            // since the previous round's dump started
  double transfer_ms = 0;            // how long sending it took
  double checkpoint_ms = 0;          // how long its dump froze the container
};

// How the warm-up ends: with a final round sent while the container is
// stopped (pre-copy), or with a lazy final dump whose pages come after the
// restore (hybrid).
enum class final_kind { stop_and_copy, lazy };

struct convergence_decision {
  bool final_round = false;
  std::uint32_t throttle_pct = 0;    // to apply for the next round
  std::string reason;
};

enum class converge_mode { off, automatic, forced };

// `history` holds every warm-up round so far (at least one).
convergence_decision decide(const config::precopy_config& policy, converge_mode mode, final_kind ending,
                            const std::vector<round_observation>& history, std::uint32_t throttle_pct);

// Link bandwidth in bytes per millisecond from the rounds so far (the
// largest transfers are the most telling); 0 when nothing was measured.
double bandwidth_bytes_per_ms(const std::vector<round_observation>& history);

}  // namespace migrated::migration
