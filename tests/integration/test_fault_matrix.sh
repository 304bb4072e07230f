#!/usr/bin/env bash
# Every phase boundary of a migration, on the side it belongs to, under the
# three things that happen to daemons: SIGKILL (the daemon restarts and its
# journal recovers what it left), SIGTERM (the graceful stop), and a cut
# link (the daemon is killed and restarts while its peer is unreachable;
# the link comes back afterwards). The session is held at the point with
# PLACE.pause (fault_point.hpp) while the test acts. After each case:
#   - exactly one copy runs, on the host the journal's rules say (before
#     Commit: the source; after the destination read Commit: the
#     destination), and the other host's runc does not know the container;
#   - the memcounter workload is the same process (boot id) and counts on
#     from where it was, with no corrupt page and its TCP connection alive;
#   - no migration is left running on either daemon; in a subset of cases
#     the container then migrates again, without faults.
#   - after a restart (kill, cut), the daemon's status lists what its
#     journal recovered (phase "recovery").
# The next case migrates the container from wherever it runs. The table
# point × {kill, term, cut} — each cell the side the container ended on —
# is printed and saved as fault-matrix.txt in the work dir (and in
# MIGRATED_BUILD_DIR, with both daemons' logs in fault-matrix-logs/).
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"

ID=mc-matrix
HERE=a             # where the container runs
declare -A RESULT=()
FAILED=0

SOURCE_POINTS=(source.accepted source.connecting source.warmup source.stopping source.checkpointed
  source.transfer source.restore source.committing source.released)
DEST_POINTS=(dest.receiving dest.received dest.restored dest.ready dest.committed)
ACTIONS=(kill term cut)
# Points after which the container, once settled, migrates again cleanly.
AGAIN=(source.checkpointed source.committing dest.restored dest.committed)

# Short timeouts: a cut link is noticed in seconds, not minutes.
short_timeouts() {
  printf 'timeouts: {connect_ms: 2000, io_ms: 4000, checkpoint_ms: 6000, restore_ms: 10000, commit_ms: 5000, ready_ms: 5000, outcome_ms: 60000}\n' \
    >>"$MIG_WORK/$1.yaml"
}

side_of() { case "$1" in source.*) echo source ;; *) echo dest ;; esac; }

# Where the container must run after POINT: the destination once it has
# read Commit (or the source sent it and stopped listening), else the source.
expected_side() {
  case "$1" in
    source.committing | source.released | dest.committed) echo dest ;;
    *) echo source ;;
  esac
}

method_for() {
  case "$1" in
    source.warmup | source.checkpointed | dest.received | dest.committed) echo precopy ;;
    *) echo cold ;;
  esac
}

log_size() { stat -c %s "$MIG_WORK/$1.log" 2>/dev/null || echo 0; }

# paused_since X OFFSET POINT: X's log says, after OFFSET, that POINT paused.
paused_since() { tail -c +"$(($2 + 1))" "$MIG_WORK/$1.log" | grep -qF "fault point $3: paused"; }

kill_daemon() {
  local x=$1 pid=${MIG_DAEMON_PID[$1]}
  kill -KILL "$pid"
  wait "$pid" 2>/dev/null || true
  unset "MIG_DAEMON_PID[$x]"
}

state_on() { container_state "$(host_runc_root "$1")" "$ID"; }

# One copy runs, on X, and the other host does not know the container.
only_on() {
  [ "$(state_on "$1")" = running ] && [ -z "$(state_on "$(other_host "$1")")" ]
}

running_migrations() {
  ctl "$1" status --json 2>/dev/null | jq '[.migrations[] | select(.result == "running")] | length'
}
recoveries() {
  ctl "$1" status --json 2>/dev/null | jq '[.migrations[] | select(.phase == "recovery")] | length'
}
settled() { [ "$(running_migrations a)" = 0 ] && [ "$(running_migrations b)" = 0 ]; }

# alive X BOOT BEFORE: the same process on X counts past BEFORE, and on.
alive() {
  local x=$1 boot=$2 before=$3 c1
  wait_for counter_at_least "$x" "$ID" "$((before + 1))" 10 || { echo "counter stuck at or below $before"; return 1; }
  [ "$(field "$x" "$ID" boot)" = "$boot" ] || { echo "boot id changed: a fresh process"; return 1; }
  c1=$(field "$x" "$ID" counter)
  wait_for counter_at_least "$x" "$ID" "$((c1 + 1))" 5 || { echo "counter stopped at $c1"; return 1; }
  [ "$(field "$x" "$ID" corrupt)" = 0 ] || { echo "corrupt pages"; return 1; }
  if [ "$(field "$x" "$ID" net_port)" != 0 ]; then
    [ "$(field "$x" "$ID" net_alive)" = 1 ] || { echo "its TCP connection broke"; return 1; }
    [ "$(field "$x" "$ID" net_errors)" = 0 ] || { echo "breaks in its TCP stream"; return 1; }
  fi
  return 0
}

# run_case POINT ACTION: one cell of the matrix; sets RESULT and HERE.
run_case() {
  local point=$1 action=$2 from=$HERE to host method boot before off out pid rc=0 want why
  to=$(other_host "$from")
  if [ "$(side_of "$point")" = source ]; then host=$from; else host=$to; fi
  method=$(method_for "$point")
  daemon_stop "$host" || true
  daemon_start "$host" "MIGRATED_FAULT=$point.pause" || fail "$(host_node "$host") did not start with $point.pause"
  boot=$(field "$from" "$ID" boot)
  before=$(field "$from" "$ID" counter)
  off=$(log_size "$host")
  out=$TEST_WORK/ctl.$point.$action.json
  log "$point × $action ($method, $(host_node "$from") → $(host_node "$to"), fault on $(host_node "$host"))"
  ctl "$from" migrate "$ID" --to "$(host_node "$to")" --method "$method" --json >"$out" 2>&1 &
  pid=$!
  if ! wait_for paused_since "$host" "$off" "$point" 60; then
    wait "$pid" || true
    RESULT[$point.$action]="FAIL: never reached $point ($(jq -r '.error // empty' "$out" 2>/dev/null | head -c 200))"
    FAILED=1
    return 0
  fi
  case "$action" in
    kill)
      kill_daemon "$host"
      daemon_start "$host" || fail "$(host_node "$host") did not restart after SIGKILL"
      ;;
    term)
      daemon_stop "$host" || rc=$?
      [ "$rc" = 0 ] || { RESULT[$point.$action]="FAIL: exit status $rc after SIGTERM"; FAILED=1; }
      daemon_start "$host" || fail "$(host_node "$host") did not restart after SIGTERM"
      ;;
    cut)
      link_down
      kill_daemon "$host"
      daemon_start "$host" || fail "$(host_node "$host") did not restart with the link cut"
      sleep 2
      link_up
      ;;
  esac
  wait "$pid" 2>/dev/null || true
  # The restarted daemon shows what its journal recovered (a destination's
  # committed record has nothing to recover: the container is simply there).
  local recovered=""
  if [ "$action" != term ] && [ "$point" != dest.committed ]; then
    if [ "$(recoveries "$host")" -ge 1 ]; then
      recovered=", recovered"
    else
      RESULT[$point.$action]="FAIL: $(host_node "$host")'s status shows no recovery after the restart"
      FAILED=1
    fi
  fi
  if [ "$(expected_side "$point")" = source ]; then want=$from; else want=$to; fi
  if ! wait_for only_on "$want" 60; then
    RESULT[$point.$action]="FAIL: expected only on $(host_node "$want"); $(host_node a): '$(state_on a)', $(host_node b): '$(state_on b)'"
    FAILED=1
    # Two copies or none: the next cases would prove nothing.
    [ "$(state_on a)" = running ] || [ "$(state_on b)" = running ] || return 1
    if [ "$(state_on a)" = running ] && [ "$(state_on b)" = running ]; then return 1; fi
    [ "$(state_on a)" = running ] && HERE=a || HERE=b
    return 0
  fi
  HERE=$want
  if ! wait_for settled 60; then
    RESULT[$point.$action]="FAIL: a migration stays running (a: $(running_migrations a), b: $(running_migrations b))"
    FAILED=1
    return 0
  fi
  if ! why=$(alive "$want" "$boot" "$before"); then
    RESULT[$point.$action]="FAIL: on $(host_node "$want"): $why"
    FAILED=1
    return 0
  fi
  [ -n "${RESULT[$point.$action]:-}" ] || RESULT[$point.$action]="ok: $(expected_side "$point") ($(host_node "$want"))$recovered"
}

# migrate_again KEY: the names are free: a migration without faults
# succeeds; its result goes to RESULT[KEY].
migrate_again() {
  local key=$1 from=$HERE to boot before out rc=0 why
  to=$(other_host "$from")
  daemon_stop a || true
  daemon_start a || fail "edge-a did not restart"
  daemon_stop b || true
  daemon_start b || fail "edge-b did not restart"
  boot=$(field "$from" "$ID" boot)
  before=$(field "$from" "$ID" counter)
  out=$(ctl "$from" migrate "$ID" --to "$(host_node "$to")" --method cold --json) || rc=$?
  if [ "$rc" != 0 ] || [ "$(json_get "$out" .result)" != ok ]; then
    RESULT[$key]="FAIL: $(json_get "$out" .error 2>/dev/null || echo "$out")"
    FAILED=1
    return 0
  fi
  HERE=$to
  if ! only_on "$to"; then
    RESULT[$key]="FAIL: not only on $(host_node "$to")"
    FAILED=1
  elif ! why=$(alive "$to" "$boot" "$before"); then
    RESULT[$key]="FAIL: $why"
    FAILED=1
  else
    RESULT[$key]="ok $(host_node "$to")"
  fi
}

print_table() {
  local point action
  printf '%-20s | %-32s | %-32s | %-32s | %s\n' point kill term cut "then migrated again"
  printf '%s\n' "---------------------+----------------------------------+----------------------------------+----------------------------------+--------------------"
  for point in "${SOURCE_POINTS[@]}" "${DEST_POINTS[@]}"; do
    printf '%-20s' "$point"
    for action in "${ACTIONS[@]}"; do printf ' | %-32s' "${RESULT[$point.$action]:-not run}"; done
    printf ' | %s\n' "${RESULT[$point.again]:-}"
  done
}

require_root_tools
command -v iptables >/dev/null 2>&1 || skip "iptables is not installed (cuts the link between the hosts)"
setup_hosts
write_config a ""
write_config b ""
short_timeouts a
short_timeouts b
on_exit link_up
on_exit daemons_stop
daemon_start a || fail "the daemon of edge-a did not start"
daemon_start b || fail "the daemon of edge-b did not start"
start_counter "$ID" --mib 16 --dirty-mib-s 2

started=$SECONDS
for point in "${SOURCE_POINTS[@]}" "${DEST_POINTS[@]}"; do
  for action in "${ACTIONS[@]}"; do
    run_case "$point" "$action" || { log "no single copy left after $point × $action: stopping the matrix"; break 2; }
  done
  for again in "${AGAIN[@]}"; do
    [ "$again" = "$point" ] || continue
    migrate_again "$point.again"
  done
done
migrate_again end.again

mkdir -p "$MIGRATED_BUILD_DIR/fault-matrix-logs"
cp "$MIG_WORK"/a.log "$MIG_WORK"/b.log "$MIGRATED_BUILD_DIR/fault-matrix-logs/" 2>/dev/null || true
table=$(print_table)
printf '%s\n' "$table" >"$TEST_WORK/fault-matrix.txt"
printf '%s\n' "$table" >"$MIGRATED_BUILD_DIR/fault-matrix.txt" || true
printf '%s\nfinal migration: %s\nmatrix time: %ss\n' "$table" "${RESULT[end.again]}" "$((SECONDS - started))" >&2
[ "$FAILED" = 0 ] || fail "some cases failed (table above, also in $MIGRATED_BUILD_DIR/fault-matrix.txt)"
pass
