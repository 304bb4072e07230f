#!/usr/bin/env bash
# SIGTERM (what systemd sends) to either daemon in the middle of a
# migration leaves exactly one copy of the container running, with its
# state: the counter continues, no page is corrupt, and the name is free for
# the next migration. Each case arms a fault point that pauses the session
# at an exact place (fault_point.hpp), waits for the daemon to say so, then
# stops that daemon:
#   destination, after its restore and Ready, before Commit: it removes its
#     copy and tells the source, which restores its own (rolled_back);
#   source in a warm-up round: nothing stopped yet (failed, same process);
#   source after the final checkpoint, before the transfer: rolled back;
#   source waiting for the restore at the destination: rolled back, and the
#     destination removes the copy it restored when the link ends.
# A stopped daemon must exit 0 having finished its migration. Last, a
# session that throws (a bug) is rolled back like any failure.
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"

ID=mc-stop
CTL_OUT=

# migrate_in_background METHOD: starts the migration A -> B, report to CTL_OUT.
migrate_in_background() {
  CTL_OUT=$TEST_WORK/ctl.$RANDOM.json
  ctl_a migrate "$ID" --to edge-b --method "$1" --json >"$CTL_OUT" 2>&1 &
  CTL_PID=$!
}

# Waits for the background migrate (in this shell: it is our child).
await_ctl() {
  local rc=0
  wait "$CTL_PID" || rc=$?
  [ "$rc" != 0 ] || fail "migrate succeeded although a daemon was stopped: $(cat "$CTL_OUT")"
}

# stop_at HOST POINT METHOD WANT: restarts HOST with POINT armed, migrates,
# SIGTERMs HOST when the session pauses there, checks the outcome.
stop_at() {
  local host=$1 point=$2 method=$3 want=$4 boot before rc=0 got
  daemon_stop "$host" || true
  daemon_start "$host" "MIGRATED_FAULT=$point.pause" || fail "$host did not restart with $point.pause"
  boot=$(field a "$ID" boot)
  before=$(field a "$ID" counter)
  log "$method with $point.pause armed on $host"
  migrate_in_background "$method"
  wait_log "$host" "fault point $point: paused" 60 || fail "$host never reached $point"
  log "SIGTERM to $(host_node "$host") at $point"
  daemon_stop "$host" || rc=$?
  assert_eq 0 "$rc" "exit status of $(host_node "$host")'s daemon after SIGTERM"
  await_ctl
  got=$(json_get "$(cat "$CTL_OUT")" .result)
  assert_eq "$want" "$got" "result when $(host_node "$host") stops at $point"
  log "reported: $(json_get "$(cat "$CTL_OUT")" .error)"
  [ "$want" = failed ] || jq -e '.downtime_ms > 0' "$CTL_OUT" >/dev/null \
    || fail "a rolled-back migration reports no downtime: $(cat "$CTL_OUT")"
  if ! daemon_running a; then daemon_start a || fail "edge-a did not restart"; fi
  if ! daemon_running b; then daemon_start b || fail "edge-b did not restart"; fi
  assert_running a "$ID"
  assert_alive_on a "$ID" "$boot" "$before"
  wait_for absent_on b 15 || fail "$ID still known on edge-b after the stop at $point"
  # Nothing is left busy: the next migration may start.
  assert_eq 0 "$(ctl_a status --json | jq '[.migrations[] | select(.result == "running")] | length')" \
    "migrations still running on edge-a"
}

absent_on() { [ -z "$(container_state "$(host_runc_root "$1")" "$ID")" ]; }

require_root_tools
setup_hosts_and_daemons
start_counter "$ID" --mib 32 --dirty-mib-s 8

stop_at b dest.ready cold rolled_back
stop_at a source.warmup precopy failed
stop_at a source.transfer precopy rolled_back
stop_at a source.restore cold rolled_back

# A session that throws after the checkpoint: rolled back, name free.
daemon_stop a || true
daemon_start a "MIGRATED_FAULT=source.transfer.throw" || fail "edge-a did not restart with source.transfer.throw"
boot=$(field a "$ID" boot)
before=$(field a "$ID" counter)
out=$(ctl_a migrate "$ID" --to edge-b --json) && fail "migrate succeeded despite the throwing session: $out"
assert_eq rolled_back "$(json_get "$out" .result)" "result of a session that threw"
assert_contains "$(json_get "$out" .error)" "internal error" "error of a session that threw"
assert_running a "$ID"
assert_alive_on a "$ID" "$boot" "$before"
assert_absent b "$ID"
daemon_stop a || true
daemon_start a || fail "edge-a did not restart"

# After all of that the same container still moves, and continues there.
boot=$(field a "$ID" boot)
last=$(field a "$ID" counter)
migrate_ok a b "$ID" precopy >/dev/null
assert_absent a "$ID"
assert_alive_on b "$ID" "$boot" "$last"
pass
