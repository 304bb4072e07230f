#!/usr/bin/env bash
# Docker, cold then pre-copy: a memcounter container with a published port,
# a fixed address on a user-defined network, a named volume, environment,
# labels and a restart policy moves from engine A to engine B (which has
# never seen its image: it goes peer to peer) and back with precopy. The
# same process must continue (boot id, counter, no corrupt page), the
# configuration must be the same on the other engine, the volume's data and
# a file of the writable layer must have moved, and the source must be gone.
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"

NAME=dk-counter

require_root_tools
setup_docker_hosts
docker_no_image b
dk a volume create dk-vol >/dev/null
dk a run -d --name "$NAME" --network "$MIG_DOCKER_NET" --ip 172.30.0.20 -p 18081:8080 -v dk-vol:/vol \
  -e MODE=edge --label app=counter --restart unless-stopped "$MIG_DOCKER_IMAGE" \
  /bin/memcounter --mib 16 --dirty-mib-s 4 --state /data >/dev/null
wait_for docker_counter_at_least a "$NAME" 2 10 || fail "the counter never started on A"
dk a exec "$NAME" sh -c 'echo kept > /vol/v.txt; echo layer > /data/layer.txt'

# move FROM TO METHOD: migrates and checks the process continued.
move() {
  local from=$1 to=$2 method=$3 boot last out
  boot=$(docker_field "$from" "$NAME" boot)
  last=$(docker_field "$from" "$NAME" counter)
  out=$(migrate_ok "$from" "$to" "$NAME" "$method")
  assert_eq docker "$(json_get "$out" .runtime)" "runtime"
  assert_eq "$method" "$(json_get "$out" .method)" "method"
  jq -e '.downtime_ms > 0 and .restore_ms > 0 and .ready_ms >= .downtime_ms and .ready_probe != ""' <<<"$out" \
    >/dev/null || fail "report timings inconsistent: $out"
  assert_docker_alive_on "$to" "$NAME" "$boot" "$last"
  [ -z "$(docker_state "$from" "$NAME")" ] || fail "$NAME still exists on $from: $(docker_state "$from" "$NAME")"
  REPORT=$out
  log "downtime $(json_get "$out" .downtime_ms) ms, image sent $(json_get "$out" .bytes_engine_image) bytes"
}

move a b cold
assert_ge "$(json_get "$REPORT" .bytes_engine_image)" 1000000 "image bytes sent peer to peer"
dk b image inspect "$MIG_DOCKER_IMAGE" >/dev/null || fail "the image did not arrive on B"
assert_eq "172.30.0.20" "$(dk b inspect "$NAME" --format "{{(index .NetworkSettings.Networks \"$MIG_DOCKER_NET\").IPAddress}}")" "address on B"
assert_eq "18081" "$(dk b inspect "$NAME" --format '{{(index (index .HostConfig.PortBindings "8080/tcp") 0).HostPort}}')" "published port on B"
assert_eq "unless-stopped" "$(dk b inspect "$NAME" --format '{{.HostConfig.RestartPolicy.Name}}')" "restart policy on B"
assert_eq "counter" "$(dk b inspect "$NAME" --format '{{index .Config.Labels "app"}}')" "label on B"
assert_contains "$(dk b inspect "$NAME" --format '{{json .Config.Env}}')" "MODE=edge" "environment on B"
assert_eq kept "$(dk b exec "$NAME" cat /vol/v.txt)" "volume data on B"
assert_eq layer "$(dk b exec "$NAME" cat /data/layer.txt)" "writable layer file on B"

move b a precopy
assert_eq 0 "$(json_get "$REPORT" .bytes_engine_image)" "image bytes (A has it)"
assert_ge "$(json_get "$REPORT" '.rounds | map(select(.kind == "warmup")) | length')" 1 "warm-up rounds"
assert_eq kept "$(dk a exec "$NAME" cat /vol/v.txt)" "volume data back on A"
pass
