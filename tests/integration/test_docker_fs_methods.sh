#!/usr/bin/env bash
# Docker filesystem methods with a web container whose service takes a
# second to come up: `diff` moves the writable layer (a changed page, a new
# file, a deleted file), `full` carries the committed filesystem to an
# engine that has never seen the image, `replay` starts fresh and runs the
# container's replay hook while the source still serves. Each time the
# published port must answer on the destination host and the readiness
# probe (HTTP on that port) must have gated Ready: ready_ms covers the
# service's start-up second.
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"

NAME=dk-web

require_root_tools
setup_docker_hosts
dk a run -d --name "$NAME" --network "$MIG_DOCKER_NET" -p 18080:8080 \
  --label migrated.ready.http=18080/index.html --label 'migrated.replay=echo replayed >> /www/replay.log' \
  "$MIG_DOCKER_IMAGE" sh -c 'trap "exit 0" TERM; sleep 1; httpd -f -p 8080 -h /www & wait' >/dev/null

# page X PATH: the page as host X's published port serves it.
page() { in_host "$1" busybox wget -qO- "http://$(host_addr "$1"):18080/$2" 2>/dev/null; }
wait_for page a index.html 10 || fail "the web container never answered on A"
dk a exec "$NAME" sh -c 'echo changed > /www/index.html; echo note > /note.txt; rm /bin/ls'

# move FROM TO METHOD: migrates; the page answers at TO; Ready was gated.
move() {
  local from=$1 to=$2 method=$3 out
  out=$(migrate_ok "$from" "$to" "$NAME" "$method")
  assert_eq "$method" "$(json_get "$out" .method)" "method"
  assert_contains "$(json_get "$out" .ready_probe)" "http GET 127.0.0.1:18080/index.html" "ready probe"
  jq -e '.ready_ms >= 1000' <<<"$out" >/dev/null || fail "ready_ms does not cover the service's start-up: $out"
  assert_eq changed "$(page "$to" index.html)" "page served on $to after $method"
  [ -z "$(docker_state "$from" "$NAME")" ] || fail "$NAME still exists on $from after $method"
  assert_eq note "$(dk "$to" exec "$NAME" cat /note.txt)" "new file after $method"
  ! dk "$to" exec "$NAME" test -e /bin/ls || fail "a deleted file came back after $method"
  REPORT=$out
  log "$method: downtime $(json_get "$out" .downtime_ms) ms, ready $(json_get "$out" .ready_ms) ms"
}

docker_image_copy a b
move a b diff
assert_eq 0 "$(json_get "$REPORT" .bytes_engine_image)" "diff sends no image when B has it"

docker_no_image a
move b a full
assert_ge "$(json_get "$REPORT" .bytes_engine_image)" 1000000 "full: committed image bytes"
assert_contains "$(dk a inspect "$NAME" --format '{{.Config.Image}}')" "migrated-full/dk-web:" "image on A"

move a b replay
jq -e '.downtime_ms == 0' <<<"$REPORT" >/dev/null || fail "replay: the source stopped before Ready: $REPORT"
assert_eq replayed "$(dk b exec "$NAME" cat /www/replay.log)" "replay hook output"
pass
