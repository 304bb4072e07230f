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
#  3. the source's daemon killed mid-post-copy and restarted at once: it
#     finds its frozen copy in the journal, dumps it lazily again and serves
#     its pages to the destination, which waited for it; the migration ends
#     ok, the same process counts on at the destination with every page.
#  4. the source's daemon killed mid-post-copy and restarted only after the
#     destination's recovery window: the destination gave its copy up, and
#     the restarted source, told so, thaws its own.
#  5. --method auto over a 20 Mbit link, with the counter dirtying 8 MiB/s
#     (more than the link carries): auto chooses post-copy and says why,
#     and the counter, faulting on pages the slow link has not brought yet,
#     counts on at the destination with every page intact.
# docs/design.md, "Post-copy".
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"

ID=mc-post
MIB=64
RECOVER_MS=8000

require_root_tools
criu check --feature uffd-noncoop >/dev/null 2>&1 || skip "this kernel has no non-cooperative userfaultfd"
setup_hosts
for x in a b; do
  write_config "$x" ""
  printf 'postcopy: {recover_timeout_ms: %s}\n' "$RECOVER_MS" >>"$MIG_WORK/$x.yaml"
done
on_exit daemons_stop
daemon_start a || fail "the daemon of edge-a did not start"
daemon_start b || fail "the daemon of edge-b did not start"
start_counter "$ID" --mib "$MIB" --dirty-mib-s 8

# 1. a → b
boot=$(field a "$ID" boot)
last=$(field a "$ID" counter)
out=$(migrate_ok a b "$ID" postcopy)
log "post-copy: $(jq -c '{downtime_ms, restore_ms, postcopy_ms, pages_faulted, pages_pushed, postcopy_faults,
                          fault_p50_ms, fault_p99_ms, fault_max_ms, bytes_image, bytes_postcopy, bytes_wire,
                          criu_dump, criu_restore}' <<<"$out")"
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
# CRIU's own count: the pages it left in the frozen process are the pages
# that crossed the page link, and it wrote only what the images hold.
jq -e '
    .criu_dump.pages_lazy > 0 and (.pages_faulted + .pages_pushed) == .criu_dump.pages_lazy
  and .criu_dump.pages_written == .pages_image and .criu_dump.freezing_ms > 0
  and .criu_restore.restore_ms > 0
' <<<"$out" >/dev/null || fail "CRIU statistics of the post-copy implausible: $(jq -c '{pages_faulted, pages_pushed, pages_image, criu_dump, criu_restore}' <<<"$out")"
assert_absent a "$ID"
assert_running b "$ID"
assert_alive_on b "$ID" "$boot" "$last"
leftovers=$(find "$MIG_WORK/a/storage/outgoing" -maxdepth 2 -name 'round-*' 2>/dev/null | wc -l)
assert_eq 0 "$leftovers" "round directories left at the source after Commit"
# The lazy dump went to lazy_images (write_config: WORK/X/lazy): nothing of
# it stays there, and its log joins the others in storage.
mid=$(jq -r .id <<<"$out")
[ -z "$(ls -A "$MIG_WORK/a/lazy/outgoing" 2>/dev/null)" ] \
  || fail "the lazy dump left files in edge-a's lazy_images: $(find "$MIG_WORK/a/lazy" | head -n 5)"
grep -qs 'Lazy pages transfer finished successfully' "$MIG_WORK/a/storage/outgoing/$mid/work/dump.log" \
  || fail "no log of the lazy dump in edge-a's outgoing/$mid/work"

# 2. b → a, a's daemon (the destination) killed while the pages come.
killed_mid_postcopy a dest.postcopy
assert_eq rolled_back "$(json_get "$out" .result)" "result with the destination killed mid-post-copy"
log "reported error: $(json_get "$out" .error)"
assert_running b "$ID"
assert_alive_on b "$ID" "$boot" "$before"
daemon_start a || fail "edge-a did not restart"
assert_absent a "$ID"

# 3. b → a, b's daemon (the source) killed while it serves the pages, and
# restarted at once: the post-copy goes on from its journal.
killed_mid_postcopy b source.postcopy
daemon_start b || fail "edge-b did not restart"
wait_for finished_on b "$ID" 60 || fail "the restarted edge-b did not finish the post-copy of $ID: $(last_report b "$ID")"
report=$(last_report b "$ID")
log "taken up after the restart: $(jq -c '{result, phase, error, pages_faulted, pages_pushed, bytes_postcopy}' <<<"$report")"
log "edge-a: $(grep -ho 'edge-b took the migration up again after [0-9]* ms' "$MIG_WORK/a.log" | tail -n1)"
assert_eq ok "$(jq -r .result <<<"$report")" "result of the post-copy taken up after the source's restart"
assert_eq postcopy "$(jq -r .method <<<"$report")" "its method"
assert_running a "$ID"
assert_alive_on a "$ID" "$boot" "$before"
assert_absent b "$ID"
mid=$(jq -r .id <<<"$report")
[ ! -e "$MIG_WORK/b/storage/journal/$mid.json" ] || fail "edge-b kept the journal record of $mid after it ended"
[ ! -e "$MIG_WORK/b/storage/outgoing/$mid" ] || [ -z "$(find "$MIG_WORK/b/storage/outgoing/$mid" -name 'round-*')" ] \
  || fail "edge-b kept round directories of $mid"
head -n1 "$MIG_WORK/a/storage/journal/$mid.json" | jq -e '.state == "committed"' >/dev/null \
  || fail "edge-a has no committed record of $mid: $(cat "$MIG_WORK/a/storage/journal/$mid.json" 2>&1)"

# 4. a → b, a's daemon (the source) killed while it serves the pages, and
# restarted only once b has stopped waiting for it.
killed_mid_postcopy a source.postcopy postcopy a b
gone_from_b() { [ -z "$(container_state "$(host_runc_root b)" "$ID")" ]; }
wait_for gone_from_b $((RECOVER_MS / 1000 + 20)) || fail "edge-b kept its copy of $ID past its recovery window"
daemon_start a || fail "edge-a did not restart"
running_on_a() { [ "$(container_state "$(host_runc_root a)" "$ID")" = running ]; }
wait_for running_on_a 30 || fail "the restarted edge-a did not thaw $ID (state '$(container_state "$(host_runc_root a)" "$ID")')"
assert_alive_on a "$ID" "$boot" "$before"
assert_absent b "$ID"
after=$(last_report a "$ID" | jq -c '{result, phase, error}')
log "after the window: $after"
assert_eq rolled_back "$(jq -r .result <<<"$after")" "result of the post-copy whose source restarted after the window"

# 5. a → b with auto over a link slower than the dirty rate.
daemon_stop a || true
daemon_start a || fail "edge-a did not restart"
hosts_shape 20mbit
boot=$(field a "$ID" boot)
last=$(field a "$ID" counter)
out=$(migrate_ok a b "$ID" auto)
log "auto: $(json_get "$out" .method_reason)"
log "post-copy at 20 Mbit: $(jq -c '{downtime_ms, postcopy_ms, pages_faulted, pages_pushed, postcopy_faults,
                                     fault_p50_ms, fault_p99_ms, fault_max_ms, bytes_postcopy}' <<<"$out")"
assert_eq postcopy "$(json_get "$out" .method)" "auto's choice for a workload faster than its link"
assert_contains "$(json_get "$out" .method_reason)" "as fast as the link carries it" "auto's reason"
assert_eq 0 "$(json_get "$out" .throttle_max_pct)" "throttling during auto's post-copy"
assert_running b "$ID"
assert_alive_on b "$ID" "$boot" "$last"
assert_absent a "$ID"
pass
