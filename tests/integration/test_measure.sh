#!/usr/bin/env bash
# migratectl measure: two checkpoints a second apart give the dirty rate of a
# memcounter that rewrites up to 8 MiB/s — compared with what it really
# rewrote meanwhile (its `rewritten` count), since a starved workload
# dirties less than it aims at —, a probe gives the bandwidth to edge-b,
# and the container keeps running undisturbed as the same process.
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"

ID=mc-measure

require_root_tools
setup_hosts_and_daemons
start_counter "$ID" --mib 64 --dirty-mib-s 8
boot=$(field a "$ID" boot)
before=$(field a "$ID" counter)
rewritten0=$(field a "$ID" rewritten)
t0=$(field a "$ID" time_ms)
out=$(ctl_a measure "$ID" --to edge-b --interval-ms 1000 --json) || fail "measure failed: $out"
log "measure: $(jq -c . <<<"$out")"
# What the workload rewrote over the whole call (the interval lies inside it),
# in MiB/s; the measured rate must agree with it within a factor of two.
sleep 0.2
actual=$(awk -v p="$(( $(field a "$ID" rewritten) - rewritten0 ))" -v ms="$(( $(field a "$ID" time_ms) - t0 ))" \
  'BEGIN { printf "%.3f", p * 4096 / 1048576 / (ms / 1000) }')
log "the workload rewrote $actual MiB/s meanwhile"
jq -e --argjson actual "$actual" '
    .dirty_mib_s >= $actual / 2 and .dirty_mib_s <= $actual * 2 and .dirty_mib_s <= 12
  and .pages >= 16384 and .pages_changed > 0
  and .bandwidth_mib_s > 0 and .checkpoint_ms > 0
  and .predicted_precopy_downtime_ms > 0
  and .predicted_cold_downtime_ms > .predicted_precopy_downtime_ms
' <<<"$out" >/dev/null || fail "implausible measurement: $out"
assert_running a "$ID"
assert_alive_on a "$ID" "$boot" "$before"
# Nothing of the measurement is left behind.
[ -z "$(ls -A "$MIG_WORK/a/storage/measure" 2>/dev/null)" ] || fail "measurement left files in storage"
# An unknown container is a clear error.
out=$(ctl_a measure no-such-box 2>&1) && fail "measure of an unknown container succeeded: $out"
assert_contains "$out" "no-such-box"
pass
