#!/usr/bin/env bash
# Pre-copy while the container keeps adding mappings: memcounter maps a new
# 1 MiB region every tick (100 ms), which moves every later page in CRIU's
# pages file between rounds. Every tick, because the rounds keep the
# container frozen for most of the time between them: with a region every
# third tick, a run could reach its final round without a new mapping.
# Deltas are keyed by virtual address, so the rounds still send little,
# and at the destination every region is intact.
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"

ID=mc-grow

require_root_tools
setup_hosts_and_daemons
start_counter "$ID" --mib 32 --dirty-mib-s 4 --grow-every-ms 100 --grow-mib 1
boot=$(field a "$ID" boot)
last=$(field a "$ID" counter)
regions=$(field a "$ID" regions)
out=$(ctl_a migrate "$ID" --to edge-b --method precopy --json) || fail "precopy failed: $out"
assert_eq ok "$(json_get "$out" .result)" "result"
log "rounds $(jq -c '[.rounds[] | {kind, pages_scanned, pages_full, pages_xor, pages_skipped, bytes_wire}]' <<<"$out")"
# Later warm-up rounds found most pages unchanged even though mappings were
# added in front of them: a file-offset diff would have resent them.
jq -e '
    ([.rounds[] | select(.kind == "warmup")] | length) >= 2
  and ([.rounds[] | select(.kind == "warmup")][1] | .pages_skipped > .pages_scanned / 2)
  and (.rounds[-1].pages_scanned > ([.rounds[] | select(.kind == "warmup")][0].pages_scanned))
' <<<"$out" >/dev/null || fail "rounds did not skip unchanged pages across new mappings: $out"
assert_absent a "$ID"
assert_running b "$ID"
assert_alive_on b "$ID" "$boot" "$last"
assert_ge "$(field b "$ID" regions)" "$((regions + 1))" "regions mapped at the destination"
pass
