#!/usr/bin/env bash
# A live migration to watch: two emulated edge hosts, a memcounter container
# with 64 MiB of self-checking memory on edge-a, moved to edge-b with
# migratectl while it counts (cold), then back to edge-a with pre-copy. The
# same process (boot id) keeps counting throughout. Then the same with
# Docker: a counter container with a published port on engine A moves to
# engine B, which has never seen its image. Everything is removed on exit.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
export MIGRATED_BUILD_DIR=${MIGRATED_BUILD_DIR:-$here/build}
ID=demo-counter

# shellcheck source=scripts/lib/hosts.sh
source "$here/scripts/lib/hosts.sh"
# shellcheck source=scripts/lib/bundle.sh
source "$here/scripts/lib/bundle.sh"
# shellcheck source=scripts/lib/daemons.sh
source "$here/scripts/lib/daemons.sh"
# shellcheck source=scripts/lib/docker.sh
source "$here/scripts/lib/docker.sh"
MIG_DOCKER=1
DK=demo-docker

say() { printf '\n==> %s\n' "$*"; }

cleanup() {
  set +e
  say "cleaning up"
  local x
  for x in a b; do
    remove_container "$(host_runc_root "$x")" "$ID"
    remove_cgroups "$(host_cgroup_parent "$x")" "$ID"
  done
  daemons_stop
  docker_engines_down
  hosts_down
  rm -rf "$WORK"
}

# show_counter X SECONDS: prints the workload's status on host X twice a second.
show_counter() {
  local status i
  status=$(host_bundles "$1")/$ID/rootfs/data/status
  for ((i = 0; i < $2 * 2; i++)); do
    printf '   %s: %s\n' "$(host_node "$1")" "$(cut -d' ' -f1-5 "$status" 2>/dev/null)"
    sleep 0.5
  done
}

wait_status() {
  local i
  for ((i = 0; i < 100; i++)); do
    status_field "$(host_bundles a)/$ID" counter >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  printf 'the container never wrote its status\n' >&2
  return 1
}

main() {
  say "setting up this machine (packages, CRIU, build)"
  bash "$here/scripts/setup.sh"
  WORK=$(mktemp -d /tmp/migrated-demo.XXXXXX)
  trap cleanup EXIT
  say "creating hosts edge-a ($MIG_ADDR_A) and edge-b ($MIG_ADDR_B) as network namespaces"
  hosts_up
  say "starting migrated on both hosts (logs in $WORK)"
  daemons_init "$WORK"
  say "starting a Docker engine in each host"
  docker_engines_up
  write_config a
  write_config b
  daemon_start a
  daemon_start b
  say "starting container $ID on edge-a: memcounter with 64 MiB, 8 MiB/s rewritten"
  make_bundle "$(host_bundles a)/$ID" "$ID" "$(host_cgroup_parent a)" -- \
    /bin/memcounter --mib 64 --dirty-mib-s 8
  start_container "$(host_runc_root a)" "$(host_bundles a)/$ID" "$ID"
  wait_status
  say "the counter ticks on edge-a"
  show_counter a 2
  say "migratectl migrate $ID --to edge-b"
  ctl_a migrate "$ID" --to edge-b
  say "the same process (same boot id) keeps counting on edge-b, with no corrupt page"
  show_counter b 2
  say "runc on edge-a: $(runc --root "$(host_runc_root a)" list -q | tr '\n' ' ')(empty); on edge-b: $(container_state "$(host_runc_root b)" "$ID")"
  say "back to edge-a with pre-copy: warm-up rounds while it runs, only the last changes while it is stopped"
  ctl_b migrate "$ID" --to edge-a --method precopy
  say "still the same process, now on edge-a again"
  show_counter a 2
  docker_leg
}

# docker_field-like: the Docker counter's status on host X.
docker_status() { cut -d' ' -f1-5 "$(docker_merged "$1" "$DK")/data/status" 2>/dev/null; }

docker_leg() {
  say "Docker: engine A and engine B, one per host; the image only on A"
  docker_image a
  docker_no_image b
  dk a run -d --name "$DK" --network "$MIG_DOCKER_NET" --ip 172.30.0.50 -p 18090:8080 \
    --label migrated.ready.tcp=18090 "$MIG_DOCKER_IMAGE" \
    sh -c 'httpd -p 8080 -h /data; exec /bin/memcounter --mib 32 --dirty-mib-s 4 --state /data' >/dev/null
  sleep 2
  say "its service answers on edge-a: $(in_host a busybox wget -qO- "http://$MIG_ADDR_A:18090/status" | cut -d' ' -f1-3)"
  say "migratectl migrate $DK --to edge-b --method precopy (the image goes peer to peer)"
  ctl_a migrate "$DK" --to edge-b --method precopy
  say "the same process answers on edge-b now, same address 172.30.0.50: $(in_host b busybox wget -qO- "http://$MIG_ADDR_B:18090/status" | cut -d' ' -f1-3)"
  local i
  for ((i = 0; i < 4; i++)); do printf '   edge-b: %s\n' "$(docker_status b)"; sleep 0.5; done
}

main "$@"
