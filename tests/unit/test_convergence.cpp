// The pre-copy convergence policy: when warm-up rounds stop, and when the
// container is throttled.
#include <catch2/catch.hpp>

#include "migration/convergence.hpp"

using namespace migrated;
using namespace migrated::migration;

namespace {

constexpr std::uint64_t mib = 1 << 20;

// A round of `wire` bytes sent at 100 MiB/s, `dirty` bytes dirtied over 1 s.
round_observation round_of(std::uint64_t wire, std::uint64_t dirty = 0) {
  return {wire, dirty, 1000.0, double(wire) / (100.0 * mib / 1000.0)};
}

}  // namespace

TEST_CASE("convergence: a shrinking delta continues, a small one ends the warm-up", "[convergence]") {
  config::precopy_config p;
  auto d = decide(p, converge_mode::automatic, final_kind::stop_and_copy, {round_of(256 * mib), round_of(64 * mib)}, 0);
  CHECK_FALSE(d.final_round);
  // 50 ms at 100 MiB/s is 5 MiB: 4 MiB left converges.
  d = decide(p, converge_mode::automatic, final_kind::stop_and_copy, {round_of(256 * mib), round_of(64 * mib), round_of(4 * mib)}, 0);
  CHECK(d.final_round);
  CHECK_THAT(d.reason, Catch::Contains("converged"));
}

TEST_CASE("convergence: a tiny round ends the warm-up even without a bandwidth", "[convergence]") {
  config::precopy_config p;
  round_observation tiny{4096 * 10, 0, 1000, 0};
  auto d = decide(p, converge_mode::off, final_kind::stop_and_copy, {tiny}, 0);
  CHECK(d.final_round);
}

TEST_CASE("convergence: a delta that stops shrinking ends the warm-up without auto-converge", "[convergence]") {
  config::precopy_config p;
  auto d = decide(p, converge_mode::off, final_kind::stop_and_copy, {round_of(256 * mib), round_of(80 * mib), round_of(78 * mib)}, 0);
  CHECK(d.final_round);
  CHECK(d.throttle_pct == 0);
  CHECK_THAT(d.reason, Catch::Contains("stopped shrinking"));
}

TEST_CASE("convergence: auto-converge throttles step by step instead of giving up", "[convergence]") {
  config::precopy_config p;  // step 20, max 90
  std::vector<round_observation> h{round_of(256 * mib), round_of(80 * mib), round_of(78 * mib)};
  auto d = decide(p, converge_mode::automatic, final_kind::stop_and_copy, h, 0);
  CHECK_FALSE(d.final_round);
  CHECK(d.throttle_pct == 20);
  d = decide(p, converge_mode::automatic, final_kind::stop_and_copy, h, 80);
  CHECK(d.throttle_pct == 90);
  // At the maximum throttle, a non-shrinking delta ends the rounds.
  d = decide(p, converge_mode::automatic, final_kind::stop_and_copy, h, 90);
  CHECK(d.final_round);
  CHECK(d.throttle_pct == 90);
}

TEST_CASE("convergence: dirtying that costs the link more than half its rate throttles", "[convergence]") {
  config::precopy_config p;
  // A round that sent 80 MiB of deltas for 1 s of dirtying, on a 100 MiB/s link.
  std::vector<round_observation> h{round_of(256 * mib), round_of(80 * mib, 80 * mib)};
  auto d = decide(p, converge_mode::automatic, final_kind::stop_and_copy, h, 0);
  CHECK_FALSE(d.final_round);
  CHECK(d.throttle_pct == 20);
  d = decide(p, converge_mode::off, final_kind::stop_and_copy, h, 0);
  CHECK(d.throttle_pct == 0);
}

TEST_CASE("convergence: many pages with a few bytes changed each do not throttle", "[convergence]") {
  config::precopy_config p;
  // 180 MiB of pages touched in a second, but their delta is 1 MiB.
  std::vector<round_observation> h{round_of(256 * mib), round_of(8 * mib, 180 * mib), round_of(1 * mib, 180 * mib)};
  auto d = decide(p, converge_mode::automatic, final_kind::stop_and_copy, h, 0);
  CHECK(d.throttle_pct == 0);
}

TEST_CASE("convergence: the first round's full copy is not a dirty rate", "[convergence]") {
  config::precopy_config p;
  // The first round has no dirty bytes (everything is sent once).
  auto d = decide(p, converge_mode::automatic, final_kind::stop_and_copy, {round_of(256 * mib, 0)}, 0);
  CHECK(d.throttle_pct == 0);
  CHECK_FALSE(d.final_round);
}

TEST_CASE("convergence: forced auto-converge throttles every round", "[convergence]") {
  config::precopy_config p;
  auto d = decide(p, converge_mode::forced, final_kind::stop_and_copy, {round_of(256 * mib)}, 0);
  CHECK(d.throttle_pct == 20);
  d = decide(p, converge_mode::forced, final_kind::stop_and_copy, {round_of(256 * mib), round_of(100 * mib)}, 20);
  CHECK(d.throttle_pct == 40);
}

TEST_CASE("convergence: max_rounds ends the warm-up", "[convergence]") {
  config::precopy_config p;
  p.max_rounds = 2;
  auto d = decide(p, converge_mode::automatic, final_kind::stop_and_copy, {round_of(256 * mib), round_of(128 * mib)}, 0);
  CHECK(d.final_round);
  CHECK_THAT(d.reason, Catch::Contains("maximum of 2"));
}

TEST_CASE("convergence: bandwidth ignores latency-bound tiny rounds", "[convergence]") {
  std::vector<round_observation> h{{100 * mib, 0, 0, 1000}, {4096, 0, 0, 50}};
  CHECK(bandwidth_bytes_per_ms(h) == Approx(100.0 * mib / 1000));
  CHECK(bandwidth_bytes_per_ms({}) == 0);
}

TEST_CASE("convergence: shrinking too slowly for the rounds left throttles", "[convergence]") {
  config::precopy_config p;  // 8 rounds, 50 ms target: 5 MiB at 100 MiB/s
  // Halving each round from 80 MiB needs 4 more rounds to reach 5 MiB.
  std::vector<round_observation> h{round_of(256 * mib), round_of(160 * mib), round_of(80 * mib)};
  auto d = decide(p, converge_mode::automatic, final_kind::stop_and_copy, h, 0);
  CHECK(d.throttle_pct == 0);  // 5 rounds left: enough
  h = {round_of(256 * mib), round_of(200 * mib), round_of(160 * mib), round_of(128 * mib),
       round_of(100 * mib), round_of(80 * mib)};
  d = decide(p, converge_mode::automatic, final_kind::stop_and_copy, h, 0);
  CHECK_FALSE(d.final_round);
  CHECK(d.throttle_pct == 20);  // 2 rounds left, 13 needed at this pace
  CHECK(decide(p, converge_mode::off, final_kind::stop_and_copy, h, 0).throttle_pct == 0);
}

TEST_CASE("convergence: a hybrid stops its rounds once a dump froze the container too long", "[convergence]") {
  config::precopy_config p;  // 50 ms target: 5 MiB at 100 MiB/s
  // The first round's dump froze the container for 900 ms. Pre-copy must
  // go on (1 GiB is no final round); a hybrid stops here, the first round
  // too: another would freeze the service longer than the switch-over.
  auto full = round_of(1024 * mib);
  full.checkpoint_ms = 900;
  auto first = decide(p, converge_mode::off, final_kind::lazy, {full}, 0);
  CHECK(first.final_round);
  CHECK_THAT(first.reason, Catch::Contains("round 1's dump froze the container for 900 ms"));
  CHECK_FALSE(decide(p, converge_mode::off, final_kind::stop_and_copy, {full}, 0).final_round);

  // Short dumps: the rounds go on while they shrink the delta.
  full.checkpoint_ms = 30;
  CHECK_FALSE(decide(p, converge_mode::off, final_kind::lazy, {full}, 0).final_round);
  auto delta = round_of(40 * mib, 160 * mib);
  delta.checkpoint_ms = 50;
  CHECK_FALSE(decide(p, converge_mode::off, final_kind::lazy, {full, delta}, 0).final_round);
  delta.checkpoint_ms = 51;
  auto second = decide(p, converge_mode::off, final_kind::lazy, {full, delta}, 0);
  CHECK(second.final_round);
  CHECK_THAT(second.reason, Catch::Contains("round 2's dump froze the container for 51 ms"));
  CHECK_FALSE(decide(p, converge_mode::off, final_kind::stop_and_copy, {full, delta}, 0).final_round);
}

TEST_CASE("convergence: a hybrid wants each round to take half off the delta", "[convergence]") {
  config::precopy_config p;
  // 256 → 160 MiB: 37.5% off. Enough for pre-copy, not for a hybrid.
  const std::vector<round_observation> h{round_of(256 * mib), round_of(160 * mib, 160 * mib)};
  CHECK_FALSE(decide(p, converge_mode::off, final_kind::stop_and_copy, h, 0).final_round);
  auto d = decide(p, converge_mode::off, final_kind::lazy, h, 0);
  CHECK(d.final_round);
  CHECK_THAT(d.reason, Catch::Contains("stopped shrinking"));
}
