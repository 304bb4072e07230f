# Shared setup for the integration tests: two emulated hosts, two real
# daemons, real runc containers running the memcounter workload, and the
# assertions and cleanup registry the test scripts use. Each test sources
# this file, calls require_root_tools, then builds what it needs; everything
# registered with on_exit is undone in reverse order however the test ends.
set -euo pipefail

MIGRATED_SOURCE_DIR=${MIGRATED_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
MIGRATED_BUILD_DIR=${MIGRATED_BUILD_DIR:-$MIGRATED_SOURCE_DIR/build}
export MIGRATED_SOURCE_DIR MIGRATED_BUILD_DIR

# shellcheck source=scripts/lib/hosts.sh
source "$MIGRATED_SOURCE_DIR/scripts/lib/hosts.sh"
# shellcheck source=scripts/lib/bundle.sh
source "$MIGRATED_SOURCE_DIR/scripts/lib/bundle.sh"
# shellcheck source=scripts/lib/daemons.sh
source "$MIGRATED_SOURCE_DIR/scripts/lib/daemons.sh"
# shellcheck source=scripts/lib/journald.sh
source "$MIGRATED_SOURCE_DIR/scripts/lib/journald.sh"
# shellcheck source=scripts/lib/docker.sh
source "$MIGRATED_SOURCE_DIR/scripts/lib/docker.sh"

TEST_NAME=$(basename "${0%.sh}")

log() { printf '%s: %s\n' "$TEST_NAME" "$*" >&2; }
fail() { printf '%s: FAIL: %s\n' "$TEST_NAME" "$*" >&2; exit 1; }
skip() { printf 'SKIP: %s\n' "$*"; exit 77; }

assert_eq() {
  local expected=$1 actual=$2 what=${3:-value}
  [ "$expected" = "$actual" ] || fail "$what: expected '$expected', got '$actual'"
}

assert_ge() {
  local actual=$1 min=$2 what=${3:-value}
  [[ "$actual" =~ ^[0-9]+$ ]] || fail "$what: '$actual' is not a number"
  [ "$actual" -ge "$min" ] || fail "$what: $actual < $min"
}

assert_contains() {
  local haystack=$1 needle=$2 what=${3:-output}
  grep -qiF -- "$needle" <<<"$haystack" || fail "$what does not mention '$needle': $haystack"
}

# wait_for CMD [ARGS...] TIMEOUT_S: retries CMD every 0.2 s until it succeeds.
wait_for() {
  local timeout=${*: -1}
  local cmd=("${@:1:$#-1}")
  local deadline=$((SECONDS + timeout))
  until "${cmd[@]}"; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.2
  done
}

# daemon_gone X: X's daemon no longer runs. A daemon that kills itself (a
# fault point) closes its sockets while it exits, so its controller can hear
# the end before the shell has reaped it: callers wait_for it.
daemon_gone() { ! daemon_running "$1"; }

# wait_log X TEXT TIMEOUT_S: waits until host X's daemon log holds TEXT.
wait_log() {
  local x=$1 text=$2 timeout=$3
  wait_for grep -qF -- "$text" "$MIG_WORK/$x.log" "$timeout"
}

# --- cleanup registry -------------------------------------------------------

CLEANUP=()
# on_exit CMD [ARGS...]: run CMD when the test exits, latest first.
on_exit() { CLEANUP+=("$(printf '%q ' "$@")"); }

run_cleanup() {
  local rc=$? i
  trap - EXIT INT TERM ERR
  set +e
  for ((i = ${#CLEANUP[@]} - 1; i >= 0; i--)); do
    eval "${CLEANUP[$i]}"
  done
  exit "$rc"
}
trap run_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
# A command failing outside an assertion ends the test too (set -e): say where.
set -E
trap 'on_error $? "$LINENO" "$BASH_COMMAND"' ERR
on_error() {
  [ "$BASH_SUBSHELL" = 0 ] || return 0  # once, from the test's own shell
  log "unexpected failure (exit $1) at line $2: $3"
}

# --- preconditions ------------------------------------------------------------

# Skips (exit 77) when the machine cannot run the tests at all; fails when
# the build is incomplete, since that is the project's fault.
require_root_tools() {
  [ "$(id -u)" = 0 ] || skip "needs root (network namespaces, runc, CRIU)"
  local tool
  for tool in ip nsenter runc criu jq tc; do
    command -v "$tool" >/dev/null 2>&1 || skip "$tool is not installed"
  done
  [ -x "$BUSYBOX" ] || skip "$BUSYBOX is missing (Debian package busybox-static)"
  criu check >/dev/null 2>&1 || skip "criu check fails on this kernel: $(criu check 2>&1 | tail -n 1)"
  ip netns add "mig-probe-$$" 2>/dev/null || skip "cannot create network namespaces"
  ip netns delete "mig-probe-$$"
  local bin
  for bin in migrated migratectl memcounter; do
    [ -x "$MIGRATED_BUILD_DIR/$bin" ] || fail "$MIGRATED_BUILD_DIR/$bin is not built"
  done
}

# --- standard fixture ----------------------------------------------------------

# Work dir, both hosts, configs (optional LOG_SINK, default file) and both
# daemons, all torn down on exit.
# shellcheck disable=SC2120 # test scripts pass the sink
setup_hosts_and_daemons() {
  local sink=${1:-file}
  setup_hosts
  write_config a "" "$sink"
  write_config b "" "$sink"
  on_exit daemons_stop
  daemon_start a || fail "the daemon of edge-a did not start"
  daemon_start b || fail "the daemon of edge-b did not start"
}

# A work dir and both hosts, torn down on exit; daemon logs shown on failure.
setup_hosts() {
  TEST_WORK=$(mktemp -d "/tmp/migrated-$TEST_NAME.XXXXXX")
  on_exit rm -rf "$TEST_WORK"
  on_exit hosts_down
  hosts_up
  daemons_init "$TEST_WORK"
  on_exit dump_logs_on_failure
}

# The Docker fixture: both engines (docker.sh) and daemons with the Docker
# backend enabled; the test image on A only.
setup_docker_hosts() {
  command -v dockerd >/dev/null 2>&1 || skip "dockerd is not installed (Debian package docker.io)"
  command -v docker >/dev/null 2>&1 || skip "the docker CLI is not installed (Debian package docker.io)"
  MIG_DOCKER=1
  setup_hosts
  on_exit docker_engines_down
  docker_engines_up || fail "the Docker engines did not start"
  docker_image a
  write_config a ""
  write_config b ""
  on_exit daemons_stop
  daemon_start a || fail "the daemon of edge-a did not start"
  daemon_start b || fail "the daemon of edge-b did not start"
}

# docker_field X NAME KEY: a field of memcounter's status in container NAME.
docker_field() {
  local file
  file=$(docker_merged "$1" "$2" 2>/dev/null)/data/status
  [ -r "$file" ] || return 1
  tr ' ' '\n' <"$file" | awk -F= -v k="$3" '$1 == k { print $2; found = 1 } END { exit !found }'
}

docker_counter_at_least() {
  local n
  n=$(docker_field "$1" "$2" counter 2>/dev/null) || return 1
  [ "$n" -ge "$3" ]
}

# assert_docker_alive_on X NAME BOOT MIN: as assert_alive_on, for Docker.
assert_docker_alive_on() {
  local x=$1 name=$2 boot=$3 min=$4
  wait_for docker_counter_at_least "$x" "$name" "$((min + 1))" 10 \
    || fail "counter of $name on $x did not pass $min"
  assert_eq "$boot" "$(docker_field "$x" "$name" boot)" "boot id of $name on $x"
  local c1
  c1=$(docker_field "$x" "$name" counter)
  sleep 1
  assert_ge "$(docker_field "$x" "$name" counter)" "$((c1 + 1))" "counter of $name on $x a second later"
  assert_eq 0 "$(docker_field "$x" "$name" corrupt)" "corrupt pages of $name on $x"
  if [ "$(docker_field "$x" "$name" net_port)" != 0 ]; then
    assert_eq 1 "$(docker_field "$x" "$name" net_alive)" "TCP connection of $name on $x alive"
    assert_eq 0 "$(docker_field "$x" "$name" net_errors)" "breaks in the TCP streams of $name on $x"
    local e1
    e1=$(docker_field "$x" "$name" net_echoed)
    sleep 0.5
    assert_ge "$(docker_field "$x" "$name" net_echoed)" "$((e1 + 1))" "TCP echoes of $name on $x"
  fi
}

# Prints the daemons' log tails when the test is failing (runs from cleanup).
dump_logs_on_failure() {
  [ "${TEST_FAILED:-1}" = 1 ] || return 0
  daemon_log_tail a 2>&1 | sed 's/^/  /' >&2 || true
  daemon_log_tail b 2>&1 | sed 's/^/  /' >&2 || true
}

# start_counter ID [MEMCOUNTER ARGS...]: a memcounter container on host A,
# waited for until it has ticked; removed from both hosts on exit.
start_counter() {
  local id=$1; shift
  local bundle
  bundle=$(host_bundles a)/$id
  on_exit remove_counter "$id"
  make_bundle "$bundle" "$id" "$(host_cgroup_parent a)" -- /bin/memcounter "$@"
  start_container "$(host_runc_root a)" "$bundle" "$id"
  wait_for counter_at_least a "$id" 2 10 || fail "container $id on A never reported a status"
}

remove_counter() {
  local id=$1 x
  # A daemon still running might restore the container (a rollback) after
  # it was removed: the daemons stop first (once; later calls do nothing).
  daemons_stop
  for x in a b; do
    remove_container "$(host_runc_root "$x")" "$id"
    remove_cgroups "$(host_cgroup_parent "$x")" "$id"
  done
}

counter_bundle() { printf '%s/%s\n' "$(host_bundles "$1")" "$2"; }

# field X ID KEY: a field of container ID's status on host X.
field() { status_field "$(counter_bundle "$1" "$2")" "$3"; }

counter_at_least() {
  local n
  n=$(field "$1" "$2" counter 2>/dev/null) || return 1
  [ "$n" -ge "$3" ]
}

# assert_running X ID: runc on host X reports ID running.
assert_running() {
  assert_eq running "$(container_state "$(host_runc_root "$1")" "$2")" "runc state of $2 on $1"
}

# assert_absent X ID: runc on host X does not know ID.
assert_absent() {
  local state
  state=$(container_state "$(host_runc_root "$1")" "$2")
  [ -z "$state" ] || fail "container $2 is still known to runc on $1 (state '$state')"
}

# assert_alive_on X ID BOOT MIN_COUNTER: the workload on X is the same
# process (boot id), has moved past MIN_COUNTER, keeps counting and
# verifying (a full pass takes up to ~2 s above 64 MiB), and has seen no
# corrupt page.
assert_alive_on() {
  local x=$1 id=$2 boot=$3 min=$4
  wait_for counter_at_least "$x" "$id" "$((min + 1))" 10 \
    || fail "counter of $id on $x did not pass $min (status: $(cat "$(counter_bundle "$x" "$id")/rootfs/data/status" 2>&1))"
  assert_eq "$boot" "$(field "$x" "$id" boot)" "boot id of $id on $x"
  local c1 p1
  c1=$(field "$x" "$id" counter)
  p1=$(field "$x" "$id" verified_passes)
  sleep 1
  assert_ge "$(field "$x" "$id" counter)" "$((c1 + 1))" "counter of $id on $x a second later"
  wait_for passes_above "$x" "$id" "$p1" 5 \
    || fail "verified passes of $id on $x stuck at $p1"
  assert_eq 0 "$(field "$x" "$id" corrupt)" "corrupt pages of $id on $x"
  assert_net_alive "$x" "$id"
}

# assert_net_alive X ID: memcounter's TCP connection over the container's
# loopback (unless it runs --no-net) is the one it opened at start — it has
# no code to reconnect — and carries on: no break, no lost or repeated
# number, echoes still coming.
assert_net_alive() {
  local x=$1 id=$2 e1
  [ "$(field "$x" "$id" net_port)" != 0 ] || return 0
  assert_eq 1 "$(field "$x" "$id" net_alive)" "TCP connection of $id on $x alive"
  assert_eq 0 "$(field "$x" "$id" net_errors)" "breaks in the TCP streams of $id on $x"
  e1=$(field "$x" "$id" net_echoed)
  wait_for net_echoes_above "$x" "$id" "$e1" 5 || fail "TCP echoes of $id on $x stuck at $e1"
}

net_echoes_above() { [ "$(field "$1" "$2" net_echoed)" -gt "$3" ]; }

passes_above() { [ "$(field "$1" "$2" verified_passes)" -gt "$3" ]; }

# migrate_ok FROM TO NAME METHOD: migrates NAME with METHOD, prints the JSON
# report; the test fails (set -e) unless the migration succeeded.
migrate_ok() {
  local from=$1 to=$2 name=$3 method=$4 out rc=0
  log "$method: $name from $(host_node "$from") to $(host_node "$to")"
  out=$(ctl "$from" migrate "$name" --to "$(host_node "$to")" --method "$method" --json) || rc=$?
  [ "$rc" = 0 ] || fail "migrate $name --method $method exited $rc: $out"
  assert_eq ok "$(json_get "$out" .result)" "$method result"
  printf '%s\n' "$out"
}

# json_get JSON FILTER: one value from a report (jq -r).
json_get() { jq -r "$2" <<<"$1"; }

# Marks the test passed so cleanup stays quiet; call as the last line.
pass() {
  TEST_FAILED=0
  log "PASS"
}

# --- fault cases ------------------------------------------------------------------

# killed_mid_postcopy X POINT [METHOD [FROM TO]]: restarts X's daemon with
# POINT.die armed and moves the counter $ID FROM → TO (b → a) with METHOD
# (postcopy, hybrid), which must fail with X's daemon gone; sets boot,
# before (the counter at the start) and out (the report).
killed_mid_postcopy() {
  local x=$1 point=$2 method=${3:-postcopy} from=${4:-b} to=${5:-a} rc=0
  daemon_stop "$x" || true
  daemon_start "$x" "MIGRATED_FAULT=$point.die" || fail "$(host_node "$x") did not restart with its fault"
  boot=$(field "$from" "$ID" boot)
  before=$(field "$from" "$ID" counter)
  out=$(ctl "$from" migrate "$ID" --to "$(host_node "$to")" --method "$method" --json) || rc=$?
  [ "$rc" != 0 ] || fail "$method succeeded although $(host_node "$x")'s daemon died at $point: $out"
  wait_for daemon_gone "$x" 5 || fail "$(host_node "$x")'s daemon survived $point.die: the fault did not fire"
}

# last_report X ID: the newest report of container ID in X's status (empty
# when X knows none); finished_on X ID: that report is no longer running.
last_report() {
  ctl "$1" status --json 2>/dev/null | jq -c --arg c "$2" '[.migrations[] | select(.container == $c)][-1] // empty'
}
finished_on() { local r; r=$(last_report "$1" "$2"); [ -n "$r" ] && [ "$(jq -r .result <<<"$r")" != running ]; }

# The link between the hosts cut both ways (iptables DROP in A, so that
# A keeps its address and a daemon restarting there can still listen), and
# back. TCP sees nothing: no reset, only silence.
CUT=0
link_down() {
  in_host a iptables -I INPUT -s "$MIG_ADDR_B" -j DROP
  in_host a iptables -I OUTPUT -d "$MIG_ADDR_B" -j DROP
  CUT=1
}
link_up() {
  [ "$CUT" = 1 ] || return 0
  in_host a iptables -D INPUT -s "$MIG_ADDR_B" -j DROP
  in_host a iptables -D OUTPUT -d "$MIG_ADDR_B" -j DROP
  CUT=0
  wait_for hosts_ping 10 || fail "the link between the hosts did not come back"
}

# fault_case POINT HOST: restarts HOST's daemon with the fault point armed,
# migrates a live counter from A to B and checks that it is rolled back:
# still running on A as the same process, counting on, nothing left on B.
# Only dest.transfer.die takes a daemon down (that proves it fired); after
# every other fault both daemons must still serve.
fault_case() {
  local point=$1 host=$2 id=mc-fault
  require_root_tools
  setup_hosts_and_daemons
  start_counter "$id" --mib 16 --dirty-mib-s 2
  daemon_stop "$host" || true
  daemon_start "$host" "MIGRATED_FAULT=$point" || fail "the daemon of $host did not restart with fault $point"
  local boot before out rc=0
  boot=$(field a "$id" boot)
  before=$(field a "$id" counter)
  log "migrating $id with fault $point armed on $host"
  out=$(ctl_a migrate "$id" --to edge-b --json) || rc=$?
  [ "$rc" != 0 ] || fail "migrate succeeded despite fault $point: $out"
  assert_eq rolled_back "$(json_get "$out" .result)" "result with fault $point"
  log "reported error: $(json_get "$out" .error)"
  assert_running a "$id"
  assert_alive_on a "$id" "$boot" "$before"
  assert_absent b "$id"
  check_daemons_after_fault "$point"
  pass
}

check_daemons_after_fault() {
  if [ "$1" = dest.transfer.die ]; then
    wait_for daemon_gone b 5 || fail "edge-b's daemon survived dest.transfer.die: the fault did not fire"
    daemon_running a || fail "edge-a's daemon died"
    return 0
  fi
  local x
  for x in a b; do
    daemon_running "$x" || fail "$(host_node "$x")'s daemon died during fault $1"
    ctl "$x" status >/dev/null || fail "$(host_node "$x")'s daemon does not answer after fault $1"
  done
}
