#!/usr/bin/env bash
# Hybrid between two daemons (`--method hybrid`): pre-copy warm-up rounds
# while the container runs, then post-copy for the rest. The destination
# asks for each page with the hash of its copy from the last warm-up round,
# and the source sends only the pages that changed since.
#  1. moved: warm-up rounds ran, no throttling; most pages came from the
#     destination's own copy and only the rest crossed the page link; the
#     same process counts on at the destination, keeps its TCP connection
#     and verifies every page (a stale page taken from the last round would
#     fail it); the source has nothing left.
#  2. the destination's daemon killed mid-post-copy: the source thaws its
#     copy, which runs on with its state (rolled_back); the destination's
#     half-restored copy is gone once its daemon is back.
#  3. and back again, the source's daemon killed mid-post-copy and
#     restarted at once: it serves the pages again from its frozen copy,
#     still only those that changed since the last round, and the counter
#     continues at the destination with every page intact.
#  4. --method precopy over 50 Mbit of a counter dirtying faster than the
#     link: instead of throttling it, the rounds go on as a hybrid, the
#     report says why, and the counter continues at the destination.
# Both daemons keep their checkpoint images on a tmpfs (the `images` key),
# the journal and the history in storage: the restarts of 2 and 3 find them.
# docs/design.md, "Hybrid".
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"

ID=mc-hybrid
MIB=64

require_root_tools
criu check --feature uffd-noncoop >/dev/null 2>&1 || skip "this kernel has no non-cooperative userfaultfd"
MIG_IMAGES_ROOT=$(mktemp -d /dev/shm/migrated-test-hybrid.XXXXXX)
export MIG_IMAGES_ROOT
on_exit rm -rf "$MIG_IMAGES_ROOT"
setup_hosts_and_daemons
start_counter "$ID" --mib "$MIB" --dirty-mib-s 4

# 1. a → b
boot=$(field a "$ID" boot)
last=$(field a "$ID" counter)
out=$(migrate_ok a b "$ID" hybrid)
log "hybrid: $(jq -c '{downtime_ms, restore_ms, postcopy_ms, pages_unchanged, pages_faulted, pages_pushed,
                       fault_p50_ms, fault_max_ms, bytes_image, bytes_postcopy, bytes_wire, convergence,
                       rounds: [.rounds[] | {kind, bytes_wire}]}' <<<"$out")"
jq -e --argjson mib "$MIB" '
    .method == "hybrid"
  and ([.rounds[] | select(.kind == "warmup")] | length) >= 1
  and .throttle_max_pct == 0
  and .downtime_ms > 0 and .downtime_ms <= .total_ms
  and .postcopy_ms > 0
  and (.pages_faulted + .pages_pushed) >= ($mib * 256)
  and .pages_unchanged >= ($mib * 256 / 2)
  and .pages_unchanged <= (.pages_faulted + .pages_pushed)
  and .bytes_postcopy < ($mib * 1048576 / 2)
  and .bytes_postcopy == (.pages_faulted + .pages_pushed - .pages_unchanged) * 4096
  and .bytes_image < ($mib * 1048576 / 4)
' <<<"$out" >/dev/null || fail "hybrid report inconsistent: $out"
assert_absent a "$ID"
assert_running b "$ID"
assert_alive_on b "$ID" "$boot" "$last"
mid=$(json_get "$out" .id)
[ -s "$MIG_IMAGES_ROOT/a/outgoing/$mid/work/dump.log" ] || fail "no dump log in edge-a's images directory"
[ -s "$MIG_IMAGES_ROOT/b/incoming/$mid/work/restore.log" ] || fail "no restore log in edge-b's images directory"
[ ! -e "$MIG_WORK/a/storage/outgoing" ] && [ ! -e "$MIG_WORK/b/storage/incoming" ] ||
  fail "images went to storage although images is set"
leftovers=$(find "$MIG_IMAGES_ROOT/a/outgoing" -maxdepth 2 -name 'round-*' 2>/dev/null | wc -l)
assert_eq 0 "$leftovers" "round directories left at the source after Commit"
leftovers=$(find "$MIG_IMAGES_ROOT/b/incoming" -maxdepth 2 -name 'round-*' 2>/dev/null | wc -l)
assert_eq 0 "$leftovers" "round directories left at the destination after Commit"

# 2. b → a, a's daemon (the destination) killed while the pages come.
killed_mid_postcopy a dest.postcopy hybrid
assert_eq rolled_back "$(json_get "$out" .result)" "result with the destination killed mid-post-copy"
log "reported error: $(json_get "$out" .error)"
assert_running b "$ID"
assert_alive_on b "$ID" "$boot" "$before"
daemon_start a || fail "edge-a did not restart"
assert_absent a "$ID"

# 3. b → a, b's daemon (the source) killed while it serves the pages, and
# restarted at once: the hybrid goes on from its journal.
killed_mid_postcopy b source.postcopy hybrid
daemon_start b || fail "edge-b did not restart"
wait_for finished_on b "$ID" 60 || fail "the restarted edge-b did not finish the hybrid of $ID: $(last_report b "$ID")"
report=$(last_report b "$ID")
log "taken up after the restart: $(jq -c '{result, error, pages_unchanged, pages_faulted, pages_pushed, bytes_postcopy}' <<<"$report")"
jq -e --argjson mib "$MIB" '
    .result == "ok" and .method == "hybrid"
  and .pages_unchanged >= ($mib * 256 / 2)
  and .bytes_postcopy < ($mib * 1048576 / 2)
' <<<"$report" >/dev/null || fail "the hybrid taken up after the restart: $report"
assert_running a "$ID"
assert_alive_on a "$ID" "$boot" "$before"
assert_absent b "$ID"

# 4. a → b: precopy that could only converge by throttling.
FAST=mc-switch
start_counter "$FAST" --mib 16 --dirty-mib-s 8
hosts_shape 50mbit
boot=$(field a "$FAST" boot)
last=$(field a "$FAST" counter)
out=$(migrate_ok a b "$FAST" precopy)
log "precopy switched: $(jq -c '{method, requested_method, convergence, throttle_max_pct, downtime_ms, postcopy_ms,
                                 pages_unchanged, bytes_postcopy}' <<<"$out")"
assert_eq hybrid "$(json_get "$out" .method)" "method after the rounds' switch"
assert_eq precopy "$(json_get "$out" .requested_method)" "requested method"
assert_contains "$(json_get "$out" .convergence)" "post-copy for the rest" "convergence"
assert_eq 0 "$(json_get "$out" .throttle_max_pct)" "throttling before the switch"
assert_running b "$FAST"
assert_alive_on b "$FAST" "$boot" "$last"
assert_absent a "$FAST"
pass
