#!/usr/bin/env bash
# A real service with a real client inside a runc container: Debian's
# redis-server holding 200 000 keys, and redis-cli incrementing a counter
# every 100 ms over ONE connection to it on the container's loopback. The
# container moves A→B (cold) and back (precopy), and once more with its
# restore made to fail at the destination. Each time:
# - the client's connection is the same one (redis numbers every connection
#   it accepts; the INCR client keeps its id),
# - the counter it prints continues by exactly one per reply (no restart of
#   the server, no lost state),
# - the server's data is intact (DBSIZE and sampled values).
# The namespace's lock during each dump is nftables' where both CRIUs can.
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"

ID=redis-mc
KEYS=200000

start_redis() {
  local bundle
  bundle=$(host_bundles a)/$ID
  on_exit remove_counter "$ID"
  make_bundle "$bundle" "$ID" "$(host_cgroup_parent a)" -- /bin/sh /start.sh
  add_binaries "$bundle/rootfs" redis-server redis-cli
  cat >"$bundle/rootfs/start.sh" <<'SH'
redis-server --bind 127.0.0.1 --port 6379 --save '' --appendonly no --enable-debug-command local --logfile /data/redis.log &
until redis-cli -h 127.0.0.1 ping >/dev/null 2>&1; do sleep 0.1; done
redis-cli -h 127.0.0.1 debug populate 200000 key 64 >/dev/null
redis-cli -h 127.0.0.1 -r -1 -i 0.1 incr ticks >/data/ticks 2>/data/cli.err &
wait
SH
  start_container "$(host_runc_root a)" "$bundle" "$ID"
  wait_for ticks_at_least a 5 30 || fail "redis-cli never counted in $ID (cli: $(cat "$bundle/rootfs/data/cli.err" 2>&1))"
}

rcli() { runc --root "$(host_runc_root "$1")" exec "$ID" redis-cli -h 127.0.0.1 "${@:2}"; }
ticks_file() { printf '%s/rootfs/data/ticks\n' "$(counter_bundle "$1" "$ID")"; }
last_tick() { tail -n 1 "$(ticks_file "$1")" 2>/dev/null | tr -dc 0-9; }
ticks_at_least() { local n; n=$(last_tick "$1"); [ -n "$n" ] && [ "$n" -ge "$2" ]; }
# DEBUG POPULATE pads its values with NUL bytes to the size asked for.
value_of() { rcli "$1" get "$2" | tr -d '\000'; }
incr_client_id() { rcli "$1" client list | awk '/cmd=incr/ { sub("id=", "", $1); print $1 }'; }

# check_on X CLIENT_ID LAST: the same connection, the counter past LAST and
# consecutive all along, the data intact.
check_on() {
  local x=$1 id=$2 last=$3
  wait_for ticks_at_least "$x" "$((last + 5))" 15 || fail "the counter on $x did not pass $((last + 5)) (last $(last_tick "$x"))"
  assert_eq "$id" "$(incr_client_id "$x")" "id of the INCR client's connection on $x"
  awk 'NR > 1 && $1 != prev + 1 { print "line " NR ": " prev " then " $1; bad = 1 } { prev = $1 } END { exit bad }' \
    "$(ticks_file "$x")" || fail "the counter on $x skipped or restarted"
  assert_eq "$((KEYS + 1))" "$(rcli "$x" dbsize)" "keys on $x"
  assert_eq "value:4242" "$(value_of "$x" key:4242)" "key:4242 on $x"
  assert_eq "value:199999" "$(value_of "$x" key:199999)" "key:199999 on $x"
}

move() {
  local from=$1 to=$2 method=$3 id last
  id=$(incr_client_id "$from")
  last=$(last_tick "$from")
  [ -n "$id" ] || fail "no INCR client connected on $from"
  migrate_ok "$from" "$to" "$ID" "$method" >/dev/null
  assert_absent "$from" "$ID"
  check_on "$to" "$id" "$last"
  log "$method $(host_node "$from") -> $(host_node "$to"): connection $id carried on, counter past $last"
}

require_root_tools
command -v redis-server >/dev/null 2>&1 || skip "redis-server is not installed (Debian package redis-server)"
setup_hosts_and_daemons
# Where both nodes' CRIU can, a move locks the container's network namespace
# with nftables (docs/design.md, "Timing"); the connection carrying on after
# each move says the restore lifted that lock (it drops loopback too).
if criu check --feature network_lock_nftables >/dev/null 2>&1; then
  for x in a b; do
    assert_eq true "$(ctl "$x" status --json | jq .capabilities.nftables_lock)" "edge-$x offers the nftables lock"
  done
fi
start_redis
check_on a "$(incr_client_id a)" 0
move a b cold
move b a precopy

# The restore fails at the destination: the container runs on at the
# source, the same connection still counting.
daemon_stop b || true
daemon_start b MIGRATED_FAULT=dest.restore.fail || fail "edge-b did not restart with dest.restore.fail"
id=$(incr_client_id a)
last=$(last_tick a)
out=$(ctl_a migrate "$ID" --to edge-b --json) && fail "migrate succeeded despite dest.restore.fail: $out"
assert_eq rolled_back "$(json_get "$out" .result)" "result with the restore failing at edge-b"
assert_running a "$ID"
check_on a "$id" "$last"
assert_absent b "$ID"
log "restore failed at edge-b: rolled back in $(json_get "$out" .rollback_ms) ms, connection $id carried on"
pass
