#!/usr/bin/env bash
# Pre-copy interrupted in every phase leaves the container running on the
# source with its state: the destination dies during a warm-up round (the
# container never stopped: result failed), dies during the final transfer,
# and fails its restore (the container stopped: result rolled_back).
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"

ID=mc-prefault

# interrupt POINT RESULT: arms POINT on B, migrates with precopy, checks.
interrupt() {
  local point=$1 want=$2 boot before out rc=0
  daemon_stop b || true
  daemon_start b "MIGRATED_FAULT=$point" || fail "edge-b did not restart with fault $point"
  boot=$(field a "$ID" boot)
  before=$(field a "$ID" counter)
  log "precopy with $point armed on edge-b"
  out=$(ctl_a migrate "$ID" --to edge-b --method precopy --json) || rc=$?
  [ "$rc" != 0 ] || fail "precopy succeeded despite $point: $out"
  assert_eq "$want" "$(json_get "$out" .result)" "result with $point"
  log "reported error: $(json_get "$out" .error)"
  assert_running a "$ID"
  assert_alive_on a "$ID" "$boot" "$before"
  assert_absent b "$ID"
  daemon_stop b || true
  daemon_start b || fail "edge-b did not restart"
}

require_root_tools
setup_hosts_and_daemons
start_counter "$ID" --mib 32 --dirty-mib-s 8
interrupt dest.warmup.die failed
interrupt dest.transfer.die rolled_back
interrupt dest.restore.fail rolled_back
# After all that, the same container still migrates.
boot=$(field a "$ID" boot)
last=$(field a "$ID" counter)
out=$(ctl_a migrate "$ID" --to edge-b --method precopy --json) || fail "precopy after the faults failed: $out"
assert_running b "$ID"
assert_alive_on b "$ID" "$boot" "$last"
pass
