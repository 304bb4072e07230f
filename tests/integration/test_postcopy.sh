#!/usr/bin/env bash
# Post-copy between two daemons (`--method postcopy`): the container stops,
# only its small images travel, the destination restores it with lazy
# pages and the memory follows over the page link, faults first.
#  1. moved: the same process counts on at the destination, keeps its TCP
#     connection, verifies every page once the last one arrived; the report
#     says how the pages came and that the images carried no memory; the
#     source has nothing left.
#  2. the destination's daemon killed mid-post-copy: the source thaws its
#     copy, which runs on with its state (rolled_back); the destination's
#     half-restored copy is gone once its daemon is back.
#  3. the source's daemon killed mid-post-copy: the destination gives its
#     copy up; the restarted source finds its frozen copy in the journal and
#     thaws it.
#  4. --method auto over a 20 Mbit link, with the counter dirtying 8 MiB/s
#     (more than the link carries): auto chooses post-copy and says why,
#     and the counter, faulting on pages the slow link has not brought yet,
#     counts on at the destination with every page intact.
# docs/design.md, "Post-copy".
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"

ID=mc-post
MIB=64

require_root_tools
criu check --feature uffd-noncoop >/dev/null 2>&1 || skip "this kernel has no non-cooperative userfaultfd"
setup_hosts_and_daemons
start_counter "$ID" --mib "$MIB" --dirty-mib-s 8

# 1. a → b
boot=$(field a "$ID" boot)
last=$(field a "$ID" counter)
out=$(migrate_ok a b "$ID" postcopy)
log "post-copy: $(jq -c '{downtime_ms, restore_ms, postcopy_ms, pages_faulted, pages_pushed, postcopy_faults,
                          fault_p50_ms, fault_p99_ms, fault_max_ms, bytes_image, bytes_postcopy, bytes_wire}' <<<"$out")"
jq -e --argjson mib "$MIB" '
    .method == "postcopy"
  and .downtime_ms > 0 and .downtime_ms <= .total_ms
  and .postcopy_ms > 0
  and (.pages_faulted + .pages_pushed) >= ($mib * 256)
  and .bytes_postcopy >= ($mib * 1048576)
  and .bytes_image < ($mib * 1048576 / 4)
  and .bytes_wire >= .bytes_postcopy
  and .fault_max_ms >= .fault_p99_ms and .fault_p99_ms >= .fault_p50_ms
' <<<"$out" >/dev/null || fail "post-copy report inconsistent: $out"
assert_absent a "$ID"
assert_running b "$ID"
assert_alive_on b "$ID" "$boot" "$last"
leftovers=$(find "$MIG_WORK/a/storage/outgoing" -maxdepth 2 -name 'round-*' 2>/dev/null | wc -l)
assert_eq 0 "$leftovers" "round directories left at the source after Commit"

# 2. b → a, a's daemon (the destination) killed while the pages come.
killed_mid_postcopy a dest.postcopy
assert_eq rolled_back "$(json_get "$out" .result)" "result with the destination killed mid-post-copy"
log "reported error: $(json_get "$out" .error)"
assert_running b "$ID"
assert_alive_on b "$ID" "$boot" "$before"
daemon_start a || fail "edge-a did not restart"
assert_absent a "$ID"

# 3. b → a, b's daemon (the source) killed while it serves the pages.
killed_mid_postcopy b source.postcopy
gone_from_a() { [ -z "$(container_state "$(host_runc_root a)" "$ID")" ]; }
wait_for gone_from_a 30 || fail "edge-a kept its copy of $ID after its source died"
daemon_start b || fail "edge-b did not restart"
assert_running b "$ID"
assert_alive_on b "$ID" "$boot" "$before"
assert_absent a "$ID"

# 4. b → a with auto over a link slower than the dirty rate.
daemon_stop b || true
daemon_start b || fail "edge-b did not restart"
hosts_shape 20mbit
boot=$(field b "$ID" boot)
last=$(field b "$ID" counter)
out=$(migrate_ok b a "$ID" auto)
log "auto: $(json_get "$out" .method_reason)"
log "post-copy at 20 Mbit: $(jq -c '{downtime_ms, postcopy_ms, pages_faulted, pages_pushed, postcopy_faults,
                                     fault_p50_ms, fault_p99_ms, fault_max_ms, bytes_postcopy}' <<<"$out")"
assert_eq postcopy "$(json_get "$out" .method)" "auto's choice for a workload faster than its link"
assert_contains "$(json_get "$out" .method_reason)" "as fast as the link carries it" "auto's reason"
assert_eq 0 "$(json_get "$out" .throttle_max_pct)" "throttling during auto's post-copy"
assert_running a "$ID"
assert_alive_on a "$ID" "$boot" "$last"
assert_absent b "$ID"
pass
