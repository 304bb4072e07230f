# Running migrated on the emulated hosts: a fleet CA with a certificate per
# host and one for the controller, one YAML config and one directory tree
# (storage, runc root, bundles) per host under a work dir, daemons started
# inside their host's network namespace with nsenter, and migratectl
# wrappers. Sourced after hosts.sh and bundle.sh.
#
# Call daemons_init WORK_DIR first. Layout:
#   WORK/tls/{ca,edge-a,edge-b,controller}.{crt,key}  (scripts/migrated-ca)
#   WORK/X.yaml  WORK/X.log (daemon log)  WORK/X.out (stdout/stderr)
#   WORK/X/storage  WORK/X/runc  WORK/X/bundles      (X = a | b)
#
# An identity is a path prefix P: P.crt and P.key, with the CA in
# $(dirname P)/ca.crt.

MIG_TCP_PORT=${MIG_TCP_PORT:-7450}
MIG_UDP_PORT=${MIG_UDP_PORT:-7451}
MIG_DAEMON_TIMEOUT_S=${MIG_DAEMON_TIMEOUT_S:-20}
declare -A MIG_DAEMON_PID=()

daemons_init() {
  MIG_WORK=$1
  MIG_BUILD=$(bundle_build_dir)
  MIG_TLS=$MIG_WORK/tls
  local x
  for x in a b; do
    mkdir -p "$MIG_WORK/$x/storage" "$MIG_WORK/$x/runc" "$MIG_WORK/$x/bundles"
  done
  make_fleet "$MIG_TLS" edge-a edge-b
}

MIG_CA=${MIG_CA:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/migrated-ca}

# make_fleet DIR NODE...: a new CA in DIR, a peer certificate for each NODE
# and a controller certificate (DIR/controller).
make_fleet() {
  local dir=$1 node
  shift
  "$MIG_CA" init "$dir" >/dev/null
  for node in "$@"; do "$MIG_CA" issue "$dir" "$node" >/dev/null; done
  "$MIG_CA" issue "$dir" controller --role controller >/dev/null
}

host_node() { printf 'edge-%s\n' "$1"; }
other_host() { if [ "$1" = a ]; then echo b; else echo a; fi; }
host_runc_root() { printf '%s\n' "$MIG_WORK/$1/runc"; }
host_bundles() { printf '%s\n' "$MIG_WORK/$1/bundles"; }
# migrated-a / migrated-b; a run with its own MIG_NS_PREFIX gets its own
# cgroup parents too, so two runs side by side never share a cgroup path.
host_cgroup_parent() {
  if [ "$MIG_NS_PREFIX" = mig ]; then
    printf 'migrated-%s\n' "$1"
  else
    printf 'migrated-%s-%s\n' "$MIG_NS_PREFIX" "$1"
  fi
}

# write_config X [IDENTITY] [LOG_SINK]: WORK/X.yaml for host X, whose
# certificate is IDENTITY (default WORK/tls/edge-X).
write_config() {
  local x=$1 id=${2:-$MIG_TLS/$(host_node "$1")} sink=${3:-file}
  local peer addr peer_addr log_file= docker= images=
  [ "$sink" != file ] || log_file=", file: $MIG_WORK/$x.log"
  # MIG_DOCKER=1: the Docker backend too, on host X's engine (docker.sh).
  [ -z "${MIG_DOCKER:-}" ] || docker=", docker: {enabled: true, socket: $(docker_sock "$x"), runc_root: $(docker_runc_root "$x"), accept_images: true}"
  # The CNI networks of host X (cni_conf in hosts.sh) live in WORK/X/cni.
  local cni=", cni: {conf_dir: $MIG_WORK/$x/cni}"
  # MIG_IMAGES_ROOT=DIR: checkpoint images in DIR/X (the `images` key), e.g. on a tmpfs.
  [ -z "${MIG_IMAGES_ROOT:-}" ] || images="images: $MIG_IMAGES_ROOT/$x"
  # MIG_LAZY_ROOT=DIR: lazy dumps in DIR/X (the `lazy_images` key, a tmpfs
  # where systemd runs the daemon); else under WORK/X.
  local lazy=${MIG_LAZY_ROOT:-$MIG_WORK}/$x/lazy
  peer=$(other_host "$x")
  addr=$(host_addr "$x")
  peer_addr=$(host_addr "$peer")
  cat >"$MIG_WORK/$x.yaml" <<YAML
# Emulated host $x, written by scripts/lib/daemons.sh.
node: $(host_node "$x")
listen: {tcp: "$addr:$MIG_TCP_PORT", udp: "$addr:$MIG_UDP_PORT"}
peers: {$(host_node "$peer"): "$peer_addr:$MIG_TCP_PORT"}
tls: {ca: $(dirname "$id")/ca.crt, cert: $id.crt, key: $id.key}
storage: $MIG_WORK/$x/storage
$images
lazy_images: $lazy
runtime: {runc: {root: $(host_runc_root "$x"), bundles: $(host_bundles "$x"), cgroup_parent: $(host_cgroup_parent "$x")$cni}$docker}
log: {sink: $sink, level: debug$log_file}
YAML
}

# ctl X ARGS...: migratectl against host X's daemon, run from inside X's
# namespace, as the controller identity MIG_CTL_ID (default WORK/tls/controller).
ctl() {
  local x=$1; shift
  local id=${MIG_CTL_ID:-$MIG_TLS/controller}
  in_host "$x" "$MIG_BUILD/migratectl" --daemon "$(host_addr "$x"):$MIG_TCP_PORT" \
    --ca "$(dirname "$id")/ca.crt" --cert "$id.crt" --key "$id.key" "$@"
}
ctl_a() { ctl a "$@"; }
ctl_b() { ctl b "$@"; }

# daemon_start X [VAR=VALUE...]: starts migrated for host X (config from
# write_config) with extra environment (e.g. MIGRATED_FAULT=...), and waits
# until it answers `migratectl status`. The controller used for that check
# is the one of the CA named in X.yaml.
daemon_start() {
  local x=$1; shift
  local ns
  ns=$(host_ns "$x")
  env "$@" nsenter --net="/run/netns/$ns" "$MIG_BUILD/migrated" --config "$MIG_WORK/$x.yaml" \
    </dev/null >>"$MIG_WORK/$x.out" 2>&1 &
  MIG_DAEMON_PID[$x]=$!
  daemon_wait_ready "$x"
}

config_ca_dir() { sed -n 's/^tls: {ca: \([^,]*\)\/ca.crt,.*/\1/p; s/^  ca: \(.*\)\/ca.crt$/\1/p' "$MIG_WORK/$1.yaml"; }

daemon_wait_ready() {
  local x=$1 pid=${MIG_DAEMON_PID[$1]} deadline=$((SECONDS + MIG_DAEMON_TIMEOUT_S))
  while [ "$SECONDS" -lt "$deadline" ]; do
    if ! kill -0 "$pid" 2>/dev/null; then
      local rc=0
      wait "$pid" 2>/dev/null || rc=$?
      unset "MIG_DAEMON_PID[$x]"
      printf 'daemon %s exited during start-up (status %s)\n' "$x" "$rc" >&2
      daemon_log_tail "$x"
      return 1
    fi
    MIG_CTL_ID=$(config_ca_dir "$x")/controller ctl "$x" status >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  printf 'daemon %s did not answer status within %ss\n' "$x" "$MIG_DAEMON_TIMEOUT_S" >&2
  daemon_log_tail "$x"
  return 1
}

daemon_log_tail() {
  local f
  for f in "$MIG_WORK/$1.out" "$MIG_WORK/$1.log"; do
    [ -s "$f" ] || continue
    printf -- '--- last lines of %s\n' "$f" >&2
    tail -n 20 "$f" >&2
  done
}

# terminate PID SECONDS WHAT: SIGTERM, then SIGKILL (saying so) when PID
# still runs after SECONDS; returns its exit status when it is our child.
terminate() {
  local pid=$1 seconds=$2 what=$3 i rc=0
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < seconds * 10; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    printf '%s ignored SIGTERM; killing it\n' "$what" >&2
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || rc=$?
  return "$rc"
}

# daemon_stop X: SIGTERM, then SIGKILL after MIG_DAEMON_TIMEOUT_S; returns
# the daemon's exit status (0 when it was not running).
daemon_stop() {
  local x=$1 pid=${MIG_DAEMON_PID[$1]:-}
  [ -n "$pid" ] || return 0
  unset "MIG_DAEMON_PID[$x]"
  terminate "$pid" "$MIG_DAEMON_TIMEOUT_S" "daemon $x"
}

daemon_running() {
  local pid=${MIG_DAEMON_PID[$1]:-}
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}

daemons_stop() {
  daemon_stop a || true
  daemon_stop b || true
}
