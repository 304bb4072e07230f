#!/usr/bin/env bash
# Pre-copy migration of a memcounter that dirties memory fast: warm-up rounds
# while it runs, a final round of page deltas, and the same process counting
# on at the destination with every page intact. Then the same with
# auto-converge forced on: the report shows the throttle, and the container
# at the destination runs unthrottled. Both ask for plain rounds
# (--auto-converge off / force): where they would not converge, a default
# precopy goes on as a hybrid instead (test_hybrid), which a slow build
# (the sanitizers) makes likely.
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"

ID=mc-pre

# check_precopy_report JSON: warm-up rounds and a final one, deltas sent.
check_precopy_report() {
  local r=$1
  assert_eq ok "$(json_get "$r" .result)" "result"
  assert_eq precopy "$(json_get "$r" .method)" "method"
  jq -e '
      ([.rounds[] | select(.kind == "warmup")] | length) >= 1
    and ([.rounds[] | select(.kind == "final")] | length) == 1
    and (.rounds[-1].kind == "final")
    and .downtime_ms > 0 and .downtime_ms <= .total_ms
    and (.convergence | length) > 0
    and ([.rounds[] | select(.kind == "warmup")][0].pages_full > 0)
    and (.rounds[-1].pages_skipped > 0)
    and (.rounds[-1].bytes_wire < .bytes_image)
  ' <<<"$r" >/dev/null || fail "precopy report inconsistent: $r"
}

# cpu_limit PID: "unlimited", or the CPU quota of the process's cgroup
# (cgroup v1 cpu.cfs_quota_us or v2 cpu.max).
cpu_limit() {
  local pid=$1 v1 v2 q
  v1=$(awk -F: '$2 ~ /(^|,)cpu(,|$)/ {print $3}' "/proc/$pid/cgroup")
  v2=$(awk -F: '$1 == "0" {print $3}' "/proc/$pid/cgroup")
  if [ -n "$v1" ] && [ -f "/sys/fs/cgroup/cpu$v1/cpu.cfs_quota_us" ]; then
    q=$(cat "/sys/fs/cgroup/cpu$v1/cpu.cfs_quota_us")
    [ "$q" = -1 ] && q=unlimited
  else
    q=$(cut -d' ' -f1 "/sys/fs/cgroup$v2/cpu.max" 2>/dev/null || echo max)
    [ "$q" = max ] && q=unlimited
  fi
  printf '%s\n' "$q"
}

migrate_precopy() {
  local from=$1 to=$2 extra=${3:-} boot last out rc=0
  boot=$(field "$from" "$ID" boot)
  last=$(field "$from" "$ID" counter)
  # shellcheck disable=SC2086 # extra is a list of options
  out=$(ctl "$from" migrate "$ID" --to "$(host_node "$to")" --method precopy $extra --json) || rc=$?
  [ "$rc" = 0 ] || fail "precopy migrate exited $rc: $out"
  check_precopy_report "$out"
  assert_absent "$from" "$ID"
  assert_running "$to" "$ID"
  assert_alive_on "$to" "$ID" "$boot" "$last"
  log "rounds $(jq -c '[.rounds[] | {kind, pages_full, pages_xor, pages_ref, pages_skipped, bytes_wire, throttle_pct}]' <<<"$out")"
  log "downtime $(json_get "$out" .downtime_ms) ms; $(json_get "$out" .convergence)"
  REPORT=$out
}

require_root_tools
setup_hosts_and_daemons
start_counter "$ID" --mib 64 --dirty-mib-s 32
migrate_precopy a b "--auto-converge off"

# Forced auto-converge: every warm-up round throttles one step further, the
# report says how deep, and the destination's container has its CPU back.
migrate_precopy b a "--auto-converge force"
jq -e '.throttle_max_pct > 0 and ([.rounds[] | select(.throttle_pct > 0)] | length) >= 1' <<<"$REPORT" >/dev/null \
  || fail "forced auto-converge left no trace in the report: $REPORT"
assert_eq unlimited "$(cpu_limit "$(runc --root "$(host_runc_root a)" state "$ID" | jq -r .pid)")" \
  "CPU limit of $ID after an auto-converged migration"
pass
