#!/usr/bin/env bash
# Docker, bad input: each a clear error, the source container untouched and
# running as the same process:
#  - an unknown container;
#  - post-copy, which Docker's restore cannot take: refused before anything
#    stops;
#  - the destination lacks the image and refuses images from peers;
#  - the container's readiness probe never answers at the destination (the
#    restored copy there is removed, the source restores its own);
#  - the destination's engine is down (and a daemon cannot start without it,
#    nor with an engine lacking checkpoint support).
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"

NAME=dk-err

require_root_tools
setup_docker_hosts
docker_no_image b

# migrate_fails ARGS...: migrate must exit non-zero; prints the report/error.
migrate_fails() {
  local out rc=0
  out=$(ctl a migrate "$@" --to edge-b --json 2>&1) || rc=$?
  [ "$rc" != 0 ] || fail "migrate $* succeeded: $out"
  printf '%s\n' "$out"
}

# still_here BOOT COUNTER: the container runs on A, the same process, and B has none.
still_here() {
  assert_eq running "$(docker_state a "$NAME")" "state of $NAME on A"
  assert_docker_alive_on a "$NAME" "$1" "$2"
  [ -z "$(docker_state b "$NAME")" ] || fail "$NAME exists on B: $(docker_state b "$NAME")"
}

out=$(migrate_fails nosuch --runtime docker)
assert_contains "$out" "container nosuch does not exist" "unknown container error"

dk a run -d --name "$NAME" --network "$MIG_DOCKER_NET" --label migrated.ready.tcp=19999 \
  --label migrated.ready.timeout_ms=1500 --restart always "$MIG_DOCKER_IMAGE" \
  /bin/memcounter --mib 8 --state /data >/dev/null
wait_for docker_counter_at_least a "$NAME" 2 10 || fail "the counter never started on A"

log "post-copy is refused up front"
boot=$(docker_field a "$NAME" boot)
before=$(docker_field a "$NAME" counter)
out=$(migrate_fails "$NAME" --method postcopy)
assert_eq failed "$(json_get "$out" .result)" "result of post-copy on Docker"
assert_contains "$(json_get "$out" .error)" "takes no lazy pages" "post-copy refusal"
assert_eq 0 "$(json_get "$out" .downtime_ms)" "downtime of a refused post-copy"
still_here "$boot" "$before"

log "the destination refuses images from peers"
daemon_stop b
sed -i 's/accept_images: true/accept_images: false/' "$MIG_WORK/b.yaml"
daemon_start b || fail "edge-b did not restart"
boot=$(docker_field a "$NAME" boot)
before=$(docker_field a "$NAME" counter)
out=$(migrate_fails "$NAME")
assert_eq failed "$(json_get "$out" .result)" "result when the image is refused"
assert_contains "$(json_get "$out" .error)" "does not accept images from peers" "refused image error"
still_here "$boot" "$before"

log "the readiness probe never answers"
daemon_stop b
sed -i 's/accept_images: false/accept_images: true/' "$MIG_WORK/b.yaml"
daemon_start b || fail "edge-b did not restart"
before=$(docker_field a "$NAME" counter)
out=$(migrate_fails "$NAME")
assert_eq rolled_back "$(json_get "$out" .result)" "result when never ready"
assert_contains "$(json_get "$out" .error)" "tcp 127.0.0.1:19999 did not answer" "readiness error"
still_here "$boot" "$before"
assert_eq always "$(dk a inspect "$NAME" --format '{{.HostConfig.RestartPolicy.Name}}')" "restart policy given back"

log "the destination's engine is down"
docker_engine_stop b
before=$(docker_field a "$NAME" counter)
out=$(migrate_fails "$NAME")
assert_contains "$(json_get "$out" .error)" "unreachable" "engine down error"
still_here_no_b() {
  assert_eq running "$(docker_state a "$NAME")" "state of $NAME on A"
  assert_docker_alive_on a "$NAME" "$boot" "$before"
}
still_here_no_b
daemon_stop b
! daemon_start b 2>/dev/null || fail "edge-b's daemon started without its Docker engine"
assert_contains "$(cat "$MIG_WORK/b.log" "$MIG_WORK/b.out" 2>/dev/null)" "is unreachable" "daemon start-up error"

log "an engine without checkpoint support"
docker_engine_start b --no-experimental || fail "engine B did not start"
: >"$MIG_WORK/b.out"
! daemon_start b 2>/dev/null || fail "edge-b's daemon started with an engine lacking checkpoint support"
assert_contains "$(cat "$MIG_WORK/b.log" "$MIG_WORK/b.out" 2>/dev/null)" "lacks checkpoint support" "daemon start-up error"
pass
