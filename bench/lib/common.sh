# shellcheck shell=bash
# The RES_* and FAIL_REASON variables set here are read by bench/run.sh.
# shellcheck disable=SC2034

# Shared helpers of bench/run.sh and bench/docker.sh: clocks, the link's
# byte counters, the memcounter workload (start, check, remove) and result
# rows. Sourced after scripts/lib/hosts.sh, bundle.sh and daemons.sh.

# now_us VAR: the wall clock in microseconds, without forking.
now_us() { printf -v "$1" '%s' "${EPOCHREALTIME/./}"; }

# ms_between T0 T1: two now_us stamps as milliseconds with one decimal.
ms_between() {
  local d=$(($2 - $1))
  [ "$d" -ge 0 ] || d=0
  printf '%d.%d\n' $((d / 1000)) $(((d % 1000) / 100))
}

# veth_tx_bytes NS DEV: bytes the device has sent.
veth_tx_bytes() {
  ip -n "$1" -s -j link show dev "$2" | jq '.[0].stats64.tx.bytes'
}

# wire_read VAR_AB VAR_BA: bytes sent so far from A to B and from B to A,
# read from the two ends of the veth pair.
wire_read() {
  local wire_ab_ wire_ba_
  wire_ab_=$(veth_tx_bytes "$MIG_NS_A" "$MIG_VETH_A")
  wire_ba_=$(veth_tx_bytes "$MIG_NS_B" "$MIG_VETH_B")
  printf -v "$1" '%s' "$wire_ab_"
  printf -v "$2" '%s' "$wire_ba_"
}

# --- the workload ----------------------------------------------------------------

bench_bundle() { printf '%s/%s\n' "$(host_bundles "$1")" "$2"; }

# The workload's state directory (memcounter --state /data), DATA below:
# BUNDLE/rootfs/data for a runc bundle, <merged dir>/data for Docker.

# data_field DATA KEY: a field of the workload's status file in DATA.
data_field() {
  [ -r "$1/status" ] || return 1
  tr ' ' '\n' <"$1/status" 2>/dev/null | awk -F= -v k="$2" '$1 == k { print $2; found = 1 } END { exit !found }'
}
# bundle_field BUNDLE KEY: a field of the workload's status in BUNDLE.
bundle_field() { data_field "$1/rootfs/data" "$2"; }
bench_field() { bundle_field "$(bench_bundle "$1" "$2")" "$3"; }

# counter_above DATA N: the workload has counted past N.
counter_above() {
  local n
  n=$(data_field "$1" counter) || return 1
  [ "$n" -gt "$2" ]
}

passes_at_least() {
  local n
  n=$(data_field "$1" verified_passes) || return 1
  [ "$n" -ge "$2" ]
}

# poll TIMEOUT_S CMD [ARGS...]: retries CMD every 0.2 s until it succeeds.
poll() {
  local deadline=$((SECONDS + $1))
  shift
  until "$@"; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.2
  done
}

# start_workload ID DIRTY_MODE: a fresh memcounter container on host A
# (BENCH_MIB MiB of random content, BENCH_DIRTY MiB/s rewritten), running
# for BENCH_SETTLE_S seconds past its first ticks. Without its network side
# (--no-net): the seeds' scripts cannot move a container with an
# established connection at all (their checkpoint has no
# --tcp-established, and their restore would lose the loopback), so the
# benchmark compares memory moves only.
start_workload() {
  local id=$1 mode=$2 bundle
  bundle=$(bench_bundle a "$id")
  make_bundle "$bundle" "$id" "$(host_cgroup_parent a)" -- /bin/memcounter --no-net \
    --mib "$BENCH_MIB" --dirty-mib-s "$BENCH_DIRTY" --dirty-mode "$mode" --content random \
    >/dev/null || return 1
  start_container "$(host_runc_root a)" "$bundle" "$id" || return 1
  poll 60 counter_above "$bundle/rootfs/data" 1 || return 1
  sleep "$BENCH_SETTLE_S"
}

# drop_workload ID: removes the container from both hosts whatever its state.
drop_workload() {
  local id=$1 x
  for x in a b; do
    remove_container "$(host_runc_root "$x")" "$id"
    remove_cgroups "$(host_cgroup_parent "$x")" "$id"
    rm -rf "$(bench_bundle "$x" "$id")"
  done
}

# verify_continued ROOT ID BUNDLE BOOT LAST: the workload runs under runc
# root ROOT from BUNDLE and has continued (workload_continued). Sets
# FAIL_REASON when it has not.
verify_continued() {
  local root=$1 id=$2 bundle=$3 boot=$4 last=$5 state
  state=$(container_state "$root" "$id")
  if [ "$state" != running ]; then
    FAIL_REASON="not running after the move (runc: ${state:-unknown})"
    return 1
  fi
  workload_continued "$bundle/rootfs/data" "$boot" "$last"
}

# workload_continued DATA BOOT LAST: the running workload with state
# directory DATA is the same process (boot id), counts past LAST and on,
# completes two full verification passes after the move and has seen no
# corrupt page. Sets FAIL_REASON when it has not.
workload_continued() {
  local data=$1 boot=$2 last=$3 now c1 p0 corrupt
  if ! poll 30 counter_above "$data" "$last"; then
    FAIL_REASON="counter stuck at $(data_field "$data" counter || echo '?') (was $last)"
    return 1
  fi
  now=$(data_field "$data" boot) || now=
  if [ "$now" != "$boot" ]; then
    FAIL_REASON="boot id changed ($boot -> ${now:-none}): the process restarted, state lost"
    return 1
  fi
  c1=$(data_field "$data" counter)
  p0=$(data_field "$data" verified_passes)
  # The pass running now started before the move; the one after it is whole.
  if ! poll 30 passes_at_least "$data" $((p0 + 2)); then
    FAIL_REASON="verification passes stuck at $(data_field "$data" verified_passes || echo '?')"
    return 1
  fi
  if ! counter_above "$data" "$c1"; then
    FAIL_REASON="counter stopped at $c1"
    return 1
  fi
  corrupt=$(data_field "$data" corrupt) || corrupt='?'
  if [ "$corrupt" != 0 ]; then
    FAIL_REASON="$corrupt corrupt pages"
    return 1
  fi
}

# switch_gap BUNDLE T_END_US / ticks_gap DATA T_END_US: the pause around
# the switch-over as the workload logged it (ticks.log, wall clock): the
# last gap between two ticks longer than 1.5 ticks that began before
# T_END_US (when the method returned). Unlike max_gap_ms, a freeze of a warm-up checkpoint cannot
# stand in for it. Prints nothing when there is no such gap.
switch_gap() { ticks_gap "$1/rootfs/data" "$2"; }
ticks_gap() {
  awk -v tend=$(($2 / 1000)) '
    { t = ""; for (i = 1; i <= NF; i++) if ($i ~ /^time_ms=/) t = substr($i, 9) + 0 }
    t == "" { next }
    prev != "" && t - prev >= 150 && prev < tend { gap = t - prev }
    { prev = t }
    END { if (gap != "") print gap }' "$1/ticks.log" 2>/dev/null
}

# --- results --------------------------------------------------------------------

# json_num VALUE: VALUE when it is a number, else null.
json_num() {
  if [[ "${1:-}" =~ ^[0-9]+(\.[0-9]+)?$ ]]; then printf '%s\n' "$1"; else printf 'null\n'; fi
}

# emit_row FILE SCENARIO METHOD: appends one JSON line from the RES_*
# variables the method left behind.
emit_row() {
  local file=$1 scenario=$2 method=$3
  jq -e . <<<"$RES_PHASES" >/dev/null 2>&1 || RES_PHASES='{}'
  jq -e . <<<"$RES_REPORT" >/dev/null 2>&1 || RES_REPORT=null
  jq -cn --arg scenario "$scenario" --arg method "$method" --arg status "$RES_STATUS" --argjson mib "$BENCH_MIB" \
    --argjson downtime "$(json_num "$RES_DOWN")" --argjson total "$(json_num "$RES_TOTAL")" \
    --argjson ab "$(json_num "$RES_WIRE_AB")" --argjson ba "$(json_num "$RES_WIRE_BA")" \
    --argjson gap "$(json_num "$RES_GAP")" --argjson gap_before "$(json_num "$RES_GAP_BEFORE")" \
    --argjson switch_gap "$(json_num "$RES_SWITCH_GAP")" \
    --argjson phases "$RES_PHASES" --argjson report "$RES_REPORT" '
    {scenario: $scenario, mib: $mib, method: $method, status: $status,
     downtime_ms: $downtime, total_ms: $total,
     wire_ab: $ab, wire_ba: $ba,
     wire: (if $ab == null or $ba == null then null else $ab + $ba end),
     max_gap_ms: $gap, max_gap_before_ms: $gap_before, switch_gap_ms: $switch_gap,
     phases: $phases, report: $report}' >>"$file"
}
