#!/usr/bin/env bash
# Eight live 32 MiB containers migrated from edge-a to edge-b at once
# (cold), then all back at once (precopy). The source runs at most
# max_concurrent_migrations (4) of them at a time and queues the rest. Each
# migration must succeed and report on its own container only: every
# counter continues on the other host as the same process with no corrupt
# page, the reports carry distinct ids, and the queued ones say so.
# Prints the slowest downtime of each direction.
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"

N=8
declare -A BOOT=() LAST=()

# move_all FROM TO METHOD: starts all N migrations, waits, checks each.
move_all() {
  local from=$1 to=$2 method=$3 i id pids=() slowest=0 queued=0 ids=
  for ((i = 0; i < N; i++)); do
    id=mc-many-$i
    BOOT[$id]=$(field "$from" "$id" boot)
    LAST[$id]=$(field "$from" "$id" counter)
    ctl "$from" migrate "$id" --to "$(host_node "$to")" --method "$method" --json >"$TEST_WORK/$id.json" 2>&1 &
    pids+=($!)
  done
  log "$N $method migrations from $(host_node "$from") to $(host_node "$to") started"
  for ((i = 0; i < N; i++)); do
    wait "${pids[$i]}" || fail "migration of mc-many-$i exited non-zero: $(cat "$TEST_WORK/mc-many-$i.json")"
  done
  for ((i = 0; i < N; i++)); do
    id=mc-many-$i
    local r
    r=$(cat "$TEST_WORK/$id.json")
    assert_eq ok "$(json_get "$r" .result)" "result of $id"
    assert_eq "$id" "$(json_get "$r" .container)" "container in the report of $id"
    assert_eq "$(host_node "$to")" "$(json_get "$r" .destination)" "destination in the report of $id"
    jq -e '.downtime_ms > 0 and .downtime_ms <= .total_ms and .bytes_image > 0
           and ([.rounds[].bytes_wire] | add) == .bytes_wire' <<<"$r" >/dev/null \
      || fail "report of $id inconsistent: $r"
    ids+="$(json_get "$r" .id) "
    slowest=$(jq -n --argjson a "$slowest" --argjson b "$(json_get "$r" .downtime_ms)" '[$a, $b] | max')
    assert_absent "$from" "$id"
    assert_running "$to" "$id"
  done
  assert_eq "$N" "$(tr ' ' '\n' <<<"$ids" | grep -c . | tr -d ' ')" "report ids"
  assert_eq "$N" "$(tr ' ' '\n' <<<"$ids" | grep . | sort -u | wc -l | tr -d ' ')" "distinct report ids"
  queued=$(grep -c "\] queued: " "$MIG_WORK/$from.log" || true)
  assert_ge "$queued" 1 "migrations that waited in the queue on $(host_node "$from")"
  for ((i = 0; i < N; i++)); do
    assert_alive_on "$to" "mc-many-$i" "${BOOT[mc-many-$i]}" "${LAST[mc-many-$i]}"
  done
  log "$N $method migrations $(host_node "$from") -> $(host_node "$to"): all ok, slowest downtime ${slowest} ms, $queued queued"
}

require_root_tools
setup_hosts_and_daemons
for ((i = 0; i < N; i++)); do
  start_counter "mc-many-$i" --mib 32 --dirty-mib-s 2
done
move_all a b cold
move_all b a precopy
pass
