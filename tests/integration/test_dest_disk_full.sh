#!/usr/bin/env bash
# The destination's storage is too small or fills up. Edge-b's storage is a
# tmpfs of its own; a 256 MiB memcounter on edge-a moves to it:
#  1. 64 MiB free: the migration is refused before anything stops, naming
#     the free space and what the images need; the container never stops.
#  2. Room enough at the check, then (fault source.transfer.wait at A: the
#     container is frozen, the images not sent yet) the disk is filled to
#     40 MiB free: the destination's write fails with ENOSPC, the source
#     rolls back promptly (its report says how long the container stood
#     still: downtime_ms > 0), the counter continues on A, and edge-b keeps
#     no container and no image.
#  3. With the filler gone, the same container moves to edge-b.
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"

ID=mc-disk
MIB=256

require_root_tools
setup_hosts
storage_b=$MIG_WORK/b/storage
mount -t tmpfs -o size=64m migrated-test "$storage_b" || skip "cannot mount a tmpfs over edge-b's storage"
on_exit umount -l "$storage_b"
write_config a ""
write_config b ""
on_exit daemons_stop
daemon_start a MIGRATED_FAULT=source.transfer.wait || fail "the daemon of edge-a did not start"
daemon_start b || fail "the daemon of edge-b did not start"
start_counter "$ID" --mib "$MIB" --dirty-mib-s 2

free_mib() { df -Pm "$storage_b" | awk 'NR == 2 { print $4 }'; }

# Nothing of the migration is left on edge-b: no container, no image file.
assert_nothing_on_b() {
  assert_absent b "$ID"
  local left
  left=$(find "$storage_b" -name '*.img' -o -name 'round-*' -o -name 'stage-*' | head -n 5)
  [ -z "$left" ] || fail "images left on edge-b after the failure: $left"
}

# --- 1. refused before anything stops ----------------------------------------
boot=$(field a "$ID" boot)
before=$(field a "$ID" counter)
log "edge-b has $(free_mib) MiB free for a $MIB MiB container"
rc=0
out=$(ctl_a migrate "$ID" --to edge-b --json) || rc=$?
[ "$rc" != 0 ] || fail "a $MIB MiB container moved onto $(free_mib) MiB: $out"
assert_eq failed "$(json_get "$out" .result)" "result of the refused migration"
err=$(json_get "$out" .error)
log "refused: $err"
assert_contains "$err" "free" "the refusal"
assert_contains "$err" "MiB" "the refusal"
assert_contains "$err" "edge-b" "the refusal"
assert_eq 0 "$(json_get "$out" .downtime_ms)" "downtime of a migration refused before the stop"
assert_eq 0 "$(json_get "$out" .checkpoint_ms)" "checkpoint_ms of a migration refused before the stop"
assert_running a "$ID"
assert_alive_on a "$ID" "$boot" "$before"
assert_nothing_on_b

# --- 2. the disk fills during the transfer ----------------------------------------
mount -o remount,size=600m "$storage_b"
boot=$(field a "$ID" boot)
before=$(field a "$ID" counter)
result=$TEST_WORK/disk-full.json
log "edge-b has $(free_mib) MiB free now; migrating, then filling it while the container is frozen"
(
  rc=0
  ctl_a migrate "$ID" --to edge-b --json >"$result" 2>&1 || rc=$?
  echo "$rc" >"$result.rc"
) &
migration=$!
wait_log a "fault point source.transfer: waiting" 60 || fail "the migration never reached source.transfer"
fill=$(($(free_mib) - 40))
fallocate -l "${fill}M" "$storage_b/filler" || fail "cannot fill edge-b's storage"
log "filled: $(free_mib) MiB free on edge-b"
wait "$migration" || true
out=$(cat "$result")
assert_eq rolled_back "$(json_get "$out" .result)" "result when the disk filled (rc $(cat "$result.rc"))"
err=$(json_get "$out" .error)
log "reported error: $err"
grep -qiE 'no space left|ENOSPC' <<<"$err" || fail "the error does not name the full disk: $err"
rollback_ms=$(json_get "$out" '.rollback_ms | floor')
downtime_ms=$(json_get "$out" '.downtime_ms | floor')
log "rollback took $rollback_ms ms; the container stood still for $downtime_ms ms (5 s of them the fault's wait)"
# The rollback once waited out the 15 s I/O deadline on a peer that had
# stopped reading; a thaw takes milliseconds.
[ "$rollback_ms" -lt 10000 ] || fail "the rollback took $rollback_ms ms"
assert_ge "$downtime_ms" 1 "downtime_ms of a rolled-back migration"
jq -e '.downtime_ms >= .rollback_ms and .checkpoint_ms > 0 and .total_ms >= .downtime_ms' <<<"$out" >/dev/null \
  || fail "report timings inconsistent: $out"
assert_running a "$ID"
assert_alive_on a "$ID" "$boot" "$before"
assert_nothing_on_b
daemon_running b || fail "edge-b's daemon died when its disk filled"

# --- 3. with room again, it moves ---------------------------------------------------
rm -f "$storage_b/filler"
daemon_stop a || true
daemon_start a || fail "the daemon of edge-a did not restart"
boot=$(field a "$ID" boot)
before=$(field a "$ID" counter)
migrate_ok a b "$ID" cold >/dev/null
assert_running b "$ID"
assert_absent a "$ID"
assert_alive_on b "$ID" "$boot" "$before"
pass
