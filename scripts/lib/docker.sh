# Two Docker engines on one machine, one per emulated edge host: engine X
# runs inside host X's network namespace (its published ports, bridges and
# user-defined networks live there, as on a real edge host), with its own
# data root, exec root and socket. Because each engine is in its own network
# namespace, a checkpoint taken by one restores in the other without CRIU's
# mntns-compat-mode (docs/operations.md, "Docker").
#
# The test image migrated-test:1 (busybox-static + memcounter, no registry)
# is imported from a local rootfs. Sourced after hosts.sh, bundle.sh and
# daemons.sh (terminate).

MIG_DOCKER_ROOT=${MIG_DOCKER_ROOT:-/var/lib/migrated-test}
MIG_DOCKER_RUN=${MIG_DOCKER_RUN:-/run/migrated-test}
MIG_DOCKER_IMAGE=migrated-test:1
MIG_DOCKER_NET=edge
MIG_DOCKER_SUBNET=172.30.0.0/24
declare -A MIG_DOCKERD_PID=()

docker_name() { printf '%s-docker-%s\n' "$MIG_NS_PREFIX" "$1"; }
docker_sock() { printf '%s/%s.sock\n' "$MIG_DOCKER_RUN" "$(docker_name "$1")"; }
docker_runc_root() { printf '%s/%s/runtime-runc/moby\n' "$MIG_DOCKER_RUN" "$(docker_name "$1")"; }
docker_data_root() { printf '%s/%s\n' "$MIG_DOCKER_ROOT" "$(docker_name "$1")"; }

# dk X ARGS...: the docker CLI against host X's engine (tests only: the
# product talks to the Engine API itself).
dk() {
  local x=$1; shift
  docker -H "unix://$(docker_sock "$x")" "$@"
}

# docker_engine_start X [--no-experimental]: the second form starts an
# engine without checkpoint support (for the tests of that error).
docker_engine_start() {
  local x=$1 name experimental=--experimental
  [ "${2:-}" != --no-experimental ] || experimental=
  name=$(docker_name "$x")
  mkdir -p "$MIG_DOCKER_RUN" "$(docker_data_root "$x")"
  printf '{}\n' >"$MIG_DOCKER_RUN/$name.json"
  # An engine left by an earlier run lives in a namespace that is gone.
  docker_engine_stop "$x"
  # nsenter execs dockerd: $! is the engine itself (a function in the
  # background would be a subshell whose death leaves the engine running).
  # The engine's own restores (start --checkpoint) take CRIU's options from
  # the file host X's daemon writes (docs/operations.md, "Docker").
  CRIU_CONFIG_FILE=$MIG_WORK/$x/storage/criu/engine.conf \
    nsenter --net="/run/netns/$(host_ns "$x")" dockerd --config-file "$MIG_DOCKER_RUN/$name.json" --data-root "$(docker_data_root "$x")" \
    --exec-root "$MIG_DOCKER_RUN/$name" -H "unix://$(docker_sock "$x")" --pidfile "$MIG_DOCKER_RUN/$name.pid" \
    --bridge=none --iptables=false $experimental </dev/null >>"$MIG_DOCKER_RUN/$name.log" 2>&1 &
  MIG_DOCKERD_PID[$x]=$!
  local i
  for ((i = 0; i < 150; i++)); do
    dk "$x" version >/dev/null 2>&1 && return 0
    kill -0 "${MIG_DOCKERD_PID[$x]}" 2>/dev/null || break
    sleep 0.2
  done
  printf 'dockerd for host %s did not start:\n' "$x" >&2
  tail -n 20 "$MIG_DOCKER_RUN/$name.log" >&2
  return 1
}

# Stops host X's engine: the one this shell started, or one a previous run
# left behind (found by its pid file).
docker_engine_stop() {
  local x=$1 pid pidfile
  pidfile=$MIG_DOCKER_RUN/$(docker_name "$x").pid
  pid=$(cat "$pidfile" 2>/dev/null || true)
  [ -n "$pid" ] || pid=${MIG_DOCKERD_PID[$x]:-}
  unset "MIG_DOCKERD_PID[$x]"
  [ -n "$pid" ] || return 0
  terminate "$pid" 30 "dockerd of host $x" || true
  rm -f "$pidfile"
}

# Removes every container of host X's engine (the image cache stays).
docker_clear() {
  local x=$1 ids
  ids=$(dk "$x" ps -aq 2>/dev/null || true)
  [ -z "$ids" ] || dk "$x" rm -f -v $ids >/dev/null 2>&1 || true
  dk "$x" volume prune -f >/dev/null 2>&1 || true
  dk "$x" images --format '{{.Repository}}:{{.Tag}}' 2>/dev/null | grep '^migrated-full/' |
    xargs -r docker -H "unix://$(docker_sock "$x")" rmi -f >/dev/null 2>&1 || true
}

# docker_engines_up: both engines, cleared, with the user-defined network
# MIG_DOCKER_NET on both (same subnet: a container keeps its address).
docker_engines_up() {
  local x
  for x in a b; do
    docker_engine_start "$x" || return 1
    docker_clear "$x"
    dk "$x" network inspect "$MIG_DOCKER_NET" >/dev/null 2>&1 ||
      dk "$x" network create --subnet "$MIG_DOCKER_SUBNET" "$MIG_DOCKER_NET" >/dev/null
  done
}

docker_engines_down() {
  local x
  for x in a b; do
    docker_clear "$x"
    docker_engine_stop "$x"
  done
}

# docker_image X: imports the test image on host X's engine unless it is
# there with the memcounter of this build (a label says which).
docker_image() {
  local x=$1 rootfs want have
  want=$(sha256sum "$(bundle_build_dir)/memcounter" | cut -c1-16)
  have=$(dk "$x" image inspect "$MIG_DOCKER_IMAGE" \
           --format '{{index .Config.Labels "migrated.test.memcounter"}}' 2>/dev/null || true)
  [ "$have" != "$want" ] || return 0
  dk "$x" rmi -f "$MIG_DOCKER_IMAGE" >/dev/null 2>&1 || true
  rootfs=$(mktemp -d)
  make_rootfs "$rootfs" "$(bundle_build_dir)/memcounter"
  mkdir -p "$rootfs/www"
  printf 'hello from the edge\n' >"$rootfs/www/index.html"
  ln -sf busybox "$rootfs/bin/httpd"
  ln -sf busybox "$rootfs/bin/rm"
  tar -C "$rootfs" -c . | dk "$x" import --change 'CMD ["/bin/memcounter","--state","/data"]' \
    --change "LABEL migrated.test.memcounter=$want" - "$MIG_DOCKER_IMAGE" >/dev/null
  rm -rf "$rootfs"
}

# docker_image_copy FROM TO: the same image (same id) on TO's engine.
docker_image_copy() {
  dk "$1" save "$MIG_DOCKER_IMAGE" | dk "$2" load >/dev/null
}

docker_no_image() {
  dk "$1" rmi -f "$MIG_DOCKER_IMAGE" >/dev/null 2>&1 || true
}

# docker_merged X NAME: the container's root filesystem as its engine sees it.
docker_merged() { dk "$1" inspect "$2" --format '{{.GraphDriver.Data.MergedDir}}'; }

docker_state() { dk "$1" inspect "$2" --format '{{.State.Status}}' 2>/dev/null || true; }
