#!/usr/bin/env bash
# A runc container on a real network: its own named network namespace with
# eth0 on a bridge (CNI bridge + host-local from containernetworking-
# plugins), address 10.88.0.10, on one L2 segment that spans both hosts.
# Inside, Debian's redis-server; outside, at site A, redis-cli holds ONE
# connection to 10.88.0.10:6379 through the bridges and increments a
# counter every 100 ms. The container moves A→B (cold), back (precopy),
# once more with its restore made to fail at B, and once with A's daemon
# killed after the final dump (its restart thaws the copy from its
# journal). Each time the destination sets up a namespace with the same
# address and MAC, the outside client's connection carries on (redis keeps
# its client id, the counter goes on by one), and the host that gave the
# container up holds no namespace, lease or interface of it any more.
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"

ID=redis-lan
ADDR=$MIG_LAN_PREFIX.10
NETNS=${MIG_NS_PREFIX}-ctr-lan

cleanup_netns() {
  local ns
  for ns in "$NETNS" "migrated-edge-a-$ID" "migrated-edge-b-$ID"; do
    if [ -e "/run/netns/$ns" ]; then ip netns delete "$ns" 2>/dev/null || true; fi
  done
}

start_service() {
  local bundle tmp
  bundle=$(host_bundles a)/$ID
  on_exit remove_counter "$ID"
  on_exit cleanup_netns
  ip netns add "$NETNS"
  ip -n "$NETNS" link set lo up
  cni_add a "$MIG_WORK/a/cni" "$NETNS" "$ID" "$ADDR"
  make_bundle "$bundle" "$ID" "$(host_cgroup_parent a)" -- /bin/sh /start.sh
  tmp=$(mktemp "$bundle/config.json.XXXXXX")
  jq --arg ns "/run/netns/$NETNS" '
      .linux.namespaces |= map(if .type == "network" then .path = $ns else . end)
    | .annotations["migrated.network"] = "edge"' "$bundle/config.json" >"$tmp"
  mv "$tmp" "$bundle/config.json"
  add_binaries "$bundle/rootfs" redis-server redis-cli
  cat >"$bundle/rootfs/start.sh" <<'SH'
exec redis-server --bind 0.0.0.0 --port 6379 --protected-mode no --save '' --appendonly no \
  --enable-debug-command local --logfile /data/redis.log
SH
  start_container "$(host_runc_root a)" "$bundle" "$ID"
  wait_for service_answers a 30 || fail "redis in $ID does not answer"
  rcli a debug populate 50000 key 32 >/dev/null
  # The outside client: one connection through the bridges.
  nsenter --net="/run/netns/$MIG_NS_CLIENT" redis-cli -h "$ADDR" -r -1 -i 0.1 incr ticks >"$TEST_WORK/ticks" 2>"$TEST_WORK/cli.err" &
  CLIENT_PID=$!
  on_exit kill "$CLIENT_PID"
  wait_for ticks_at_least 5 30 || fail "the outside client never counted ($(cat "$TEST_WORK/cli.err"))"
}

rcli() { runc --root "$(host_runc_root "$1")" exec "$ID" redis-cli -h 127.0.0.1 "${@:2}"; }
service_answers() { [ "$(rcli "$1" ping 2>/dev/null)" = PONG ]; }
last_tick() { tail -n 1 "$TEST_WORK/ticks" 2>/dev/null | tr -dc 0-9; }
ticks_at_least() { local n; n=$(last_tick); [ -n "$n" ] && [ "$n" -ge "$1" ]; }
# The id of the outside client's connection, as redis numbers connections.
client_id() { rcli "$1" client list | awk -v a="addr=$MIG_LAN_CLIENT:" 'index($0, a) && /cmd=incr/ { sub("id=", "", $1); print $1 }'; }
mac_of() { nsenter --net="$1" ip -j link show dev eth0 | jq -r '.[0].address'; }
netns_of() { runc --root "$(host_runc_root "$1")" state "$ID" | jq -r .pid | xargs -I{} readlink "/proc/{}/ns/net"; }

# What the segment looks like when the client stalls: where each bridge
# sends the container's MAC, and the sockets and filter rules inside it.
lan_state() {
  local h ns
  for h in a b; do
    printf '  --- bridge fdb of %s\n' "$(host_node "$h")"
    in_host "$h" bridge fdb show br "$MIG_BRIDGE" 2>&1 | grep -v permanent | sed 's/^/  /'
  done
  for ns in "$NETNS" "migrated-edge-a-$ID" "migrated-edge-b-$ID" "$MIG_NS_CLIENT"; do
    [ -e "/run/netns/$ns" ] || continue
    printf '  --- %s: sockets, rules, neighbours\n' "$ns"
    { ip netns exec "$ns" ss -tni; ip netns exec "$ns" iptables -S; ip -n "$ns" neigh; ip -n "$ns" -br link; } 2>&1 | sed 's/^/  /'
  done
}

check_on() {
  local x=$1 id=$2 last=$3
  wait_for ticks_at_least "$((last + 5))" 20 || { lan_state >&2; fail "the outside client stopped at $(last_tick) (after $last) on $x ($(cat "$TEST_WORK/cli.err"))"; }
  kill -0 "$CLIENT_PID" 2>/dev/null || fail "the outside client exited ($(cat "$TEST_WORK/cli.err"))"
  assert_eq "$id" "$(client_id "$x")" "id of the outside client's connection on $x"
  awk 'NR > 1 && $1 != prev + 1 { print "line " NR ": " prev " then " $1; bad = 1 } { prev = $1 } END { exit bad }' \
    "$TEST_WORK/ticks" || fail "the counter skipped or restarted"
  assert_eq 50001 "$(rcli "$x" dbsize)" "keys on $x"
}

move() {
  local from=$1 to=$2 method=$3 id last mac out
  id=$(client_id "$from")
  last=$(last_tick)
  [ -n "$id" ] || fail "the outside client is not connected on $from"
  out=$(migrate_ok "$from" "$to" "$ID" "$method")
  assert_absent "$from" "$ID"
  check_on "$to" "$id" "$last"
  log "$method $(host_node "$from") -> $(host_node "$to"): client $id carried on past $last, downtime $(json_get "$out" .downtime_ms) ms"
}

require_root_tools
command -v redis-server >/dev/null 2>&1 || skip "redis-server is not installed (Debian package redis-server)"
[ -x /usr/lib/cni/bridge ] || skip "the CNI plugins are not installed (Debian package containernetworking-plugins)"
setup_hosts
on_exit lan_down
lan_up
cni_conf "$MIG_WORK/a/cni"
cni_conf "$MIG_WORK/b/cni"
write_config a ""
write_config b ""
on_exit daemons_stop
daemon_start a || fail "the daemon of edge-a did not start"
daemon_start b || fail "the daemon of edge-b did not start"
start_service
mac=$(mac_of "/run/netns/$NETNS")

move a b cold
assert_eq "$mac" "$(mac_of "/run/netns/migrated-edge-b-$ID")" "MAC at edge-b"
[ ! -e "/run/netns/$NETNS" ] || fail "edge-a kept the container's network namespace"
[ -z "$(ls "$MIG_WORK/a/cni/ipam/edge" 2>/dev/null | grep -F "$ADDR")" ] || fail "edge-a kept the lease of $ADDR"

move b a precopy
[ ! -e "/run/netns/migrated-edge-b-$ID" ] || fail "edge-b kept the container's network namespace"

# The restore fails at edge-b: the frozen copy on edge-a goes back on its
# bridge and thaws; the client's connection carries on there.
daemon_stop b || true
daemon_start b MIGRATED_FAULT=dest.restore.fail || fail "edge-b did not restart with dest.restore.fail"
id=$(client_id a)
last=$(last_tick)
out=$(ctl_a migrate "$ID" --to edge-b --json) && fail "migrate succeeded despite dest.restore.fail: $out"
assert_eq rolled_back "$(json_get "$out" .result)" "result with the restore failing at edge-b"
check_on a "$id" "$last"
[ ! -e "/run/netns/migrated-edge-b-$ID" ] || fail "edge-b kept a namespace after its restore failed"
log "restore failed at edge-b: rolled back in $(json_get "$out" .rollback_ms) ms, client $id carried on"

# edge-a's daemon dies with the copy frozen, dumped and off its bridge; the
# restarted daemon, which never saw that dump, thaws it from its journal,
# and puts it back on its bridge: the client's connection carries on.
daemon_stop b || true
daemon_start b || fail "edge-b did not restart"
daemon_stop a || true
daemon_start a MIGRATED_FAULT=source.checkpointed.die || fail "edge-a did not restart with source.checkpointed.die"
id=$(client_id a)
last=$(last_tick)
out=$(ctl_a migrate "$ID" --to edge-b --json) && fail "migrate succeeded although edge-a's daemon died: $out"
wait_for daemon_gone a 5 || fail "edge-a's daemon survived source.checkpointed.die"
daemon_start a || fail "edge-a did not restart"
check_on a "$id" "$last"
assert_absent b "$ID"
log "edge-a's daemon killed after the final dump: thawed by its restart, client $id carried on past $last"
pass
