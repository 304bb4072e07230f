#!/usr/bin/env bash
# Docker, image from a registry: the destination's engine lacks the
# container's image and runtime.docker.registry is set.
#  - The registry has the image: the destination pulls it from there (same
#    image id), nothing goes peer to peer (bytes_engine_image 0), its log
#    says so, and the migrated process continues.
#  - The registry is reachable but does not have it: the image still
#    arrives peer to peer and the migration succeeds.
# The registry (Debian package docker-registry) runs inside host B's network
# namespace on 127.0.0.1:5000, which engine B may use over plain HTTP.
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"

REGISTRY=127.0.0.1:5000
REMOTE=$REGISTRY/$MIG_DOCKER_IMAGE
REGISTRY_PID=

require_root_tools
command -v docker-registry >/dev/null 2>&1 || skip "docker-registry is not installed (Debian package docker-registry)"
setup_docker_hosts

registry_up() { in_host b bash -c "exec 3<>/dev/tcp/${REGISTRY%:*}/${REGISTRY#*:}" 2>/dev/null; }

# registry_start STORAGE_DIR: a registry in B's namespace keeping its blobs
# in STORAGE_DIR; stopped on exit.
registry_start() {
  local dir=$1 cfg=$1.yml
  mkdir -p "$dir"
  cat >"$cfg" <<YAML
version: 0.1
log: {level: warn}
storage: {filesystem: {rootdirectory: $dir}, delete: {enabled: true}}
http: {addr: "$REGISTRY"}
YAML
  # nsenter execs the registry: $! is the registry itself.
  nsenter --net="/run/netns/$(host_ns b)" docker-registry serve "$cfg" </dev/null >>"$TEST_WORK/registry.log" 2>&1 &
  REGISTRY_PID=$!
  wait_for registry_up 10 || { tail -n 20 "$TEST_WORK/registry.log" >&2; skip "docker-registry does not serve"; }
}

registry_stop() {
  [ -n "$REGISTRY_PID" ] || return 0
  kill -TERM "$REGISTRY_PID" 2>/dev/null || true
  wait "$REGISTRY_PID" 2>/dev/null || true
  REGISTRY_PID=
}
on_exit registry_stop

# set_registry VALUE: restarts B's daemon with runtime.docker.registry VALUE.
set_registry() {
  daemon_stop b
  sed -i -E 's/accept_images: true(, registry: "[^"]*")?\}/accept_images: true, registry: "'"$1"'"}/' "$MIG_WORK/b.yaml"
  grep -qF "registry: \"$1\"" "$MIG_WORK/b.yaml" || fail "could not set the registry in b.yaml: $(cat "$MIG_WORK/b.yaml")"
  daemon_start b || fail "edge-b did not restart with registry $1"
}

# b_lacks_image: engine B has no image with the test image's id.
b_lacks_image() {
  dk b rmi -f "$IMAGE_ID" >/dev/null 2>&1 || true
  ! dk b image inspect "$IMAGE_ID" >/dev/null 2>&1 || fail "the test image is still on B"
}

# start NAME: a memcounter container on A, waited for until it ticks.
start() {
  dk a run -d --name "$1" --network "$MIG_DOCKER_NET" "$MIG_DOCKER_IMAGE" /bin/memcounter --mib 8 --state /data >/dev/null
  wait_for docker_counter_at_least a "$1" 2 10 || fail "the counter $1 never started on A"
}

# move NAME: cold migration A → B; the same process continues on B. Sets REPORT.
move() {
  local name=$1 boot last out rc=0
  boot=$(docker_field a "$name" boot)
  last=$(docker_field a "$name" counter)
  out=$(ctl a migrate "$name" --to edge-b --method cold --json) || rc=$?
  [ "$rc" = 0 ] || fail "migrate $name exited $rc: $out"
  assert_eq ok "$(json_get "$out" .result)" "result of $name"
  assert_eq docker "$(json_get "$out" .runtime)" "runtime of $name"
  assert_docker_alive_on b "$name" "$boot" "$last"
  [ -z "$(docker_state a "$name")" ] || fail "$name still exists on A: $(docker_state a "$name")"
  REPORT=$out
  log "$name: downtime $(json_get "$out" .downtime_ms) ms, image sent $(json_get "$out" .bytes_engine_image) bytes"
}

IMAGE_ID=$(dk a image inspect "$MIG_DOCKER_IMAGE" --format '{{.Id}}')
# Engine B's image cache outlives the test: a registry tag left there would
# keep the image id present after docker_no_image (other tests rely on that).
untag_remote() { dk b rmi -f "$REMOTE" >/dev/null 2>&1 || true; }
on_exit untag_remote

log "filling the registry from engine B"
registry_start "$TEST_WORK/registry-full"
docker_image_copy a b
assert_eq "$IMAGE_ID" "$(dk b image inspect "$MIG_DOCKER_IMAGE" --format '{{.Id}}')" "image id copied to B"
dk b tag "$MIG_DOCKER_IMAGE" "$REMOTE"
dk b push "$REMOTE" >/dev/null || fail "push to the registry failed"
b_lacks_image
set_registry "$REGISTRY"

log "the registry has the image"
start dk-reg
move dk-reg
assert_eq 0 "$(json_get "$REPORT" .bytes_engine_image)" "image bytes sent peer to peer"
assert_eq "$IMAGE_ID" "$(dk b image inspect "$MIG_DOCKER_IMAGE" --format '{{.Id}}')" "image id pulled on B"
assert_contains "$(cat "$MIG_WORK/b.log")" "pulled $MIG_DOCKER_IMAGE from registry $REGISTRY in" "edge-b's log"
log "edge-b: $(grep -F "pulled $MIG_DOCKER_IMAGE from registry" "$MIG_WORK/b.log")"
! grep -qF "loaded " "$MIG_WORK/b.log" || fail "edge-b also loaded an image from its peer: $(grep -F "loaded " "$MIG_WORK/b.log")"

log "the registry does not have the image"
dk b rm -f dk-reg >/dev/null
b_lacks_image
registry_stop
registry_start "$TEST_WORK/registry-empty"
set_registry "$REGISTRY"
start dk-reg2
move dk-reg2
assert_ge "$(json_get "$REPORT" .bytes_engine_image)" 1000000 "image bytes sent peer to peer"
assert_eq "$IMAGE_ID" "$(dk b image inspect "$MIG_DOCKER_IMAGE" --format '{{.Id}}')" "image id loaded on B"
assert_contains "$(cat "$MIG_WORK/b.log")" "registry $REGISTRY: pull $REMOTE" "edge-b's log"
log "edge-b: $(grep -F "registry $REGISTRY: pull $REMOTE" "$MIG_WORK/b.log")"
assert_eq 1 "$(grep -cF "pulled $MIG_DOCKER_IMAGE from registry" "$MIG_WORK/b.log")" "registry pulls logged by edge-b"
pass
