#!/usr/bin/env bash
# Identities and roles, against two real daemons. A controller of another
# fleet is refused at TLS; a peer's certificate cannot start, abort or read
# anything; a controller's certificate cannot push a container; a Hello
# that claims another name or role than the certificate is refused; a
# daemon that peers: does not list cannot send a container; an address that
# answers with another name is refused; host:port destinations that peers:
# does not list are refused unless allow_unlisted_destinations; UDP
# commands signed by a peer are refused. In every case the container keeps
# running untouched on edge-a and edge-b gets nothing.
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"

ID=mc-identity
RAW=$MIGRATED_SOURCE_DIR/tests/integration/tools/raw_client.py
# Debian's python3 (python3-protobuf), not one a user put first in PATH.
PY=/usr/bin/python3

# assert_untouched BOOT COUNTER: same process on A, still counting, not on B.
assert_untouched() {
  assert_running a "$ID"
  assert_alive_on a "$ID" "$1" "$2"
  assert_absent b "$ID"
  [ -z "$(ls -A "$(host_bundles b)")" ] || fail "edge-b received something: $(ls -A "$(host_bundles b)")"
}

# raw HOST IDENTITY REQUEST [ARGS...]: the hand-driven client against HOST's
# daemon as IDENTITY (a path prefix), printing its JSON verdict. It trusts
# RAW_CA (default IDENTITY's own CA).
raw() {
  local x=$1 id=$2 req=$3
  shift 3
  in_host "$x" "$PY" "$RAW" "$TEST_WORK/pb" "$(host_addr "$x")" "$MIG_TCP_PORT" \
    "${RAW_CA:-$(dirname "$id")/ca.crt}" "$id.crt" "$id.key" "$req" "$@"
}

# refused VERDICT STAGE CODE WHAT: the raw client's verdict is a refusal at
# STAGE with protocol code CODE (6 AUTH, 18 DENIED).
refused() {
  local verdict=$1 stage=$2 code=$3 what=$4
  log "$what: $verdict"
  assert_eq false "$(json_get "$verdict" .ok)" "$what: ok"
  assert_eq "$stage" "$(json_get "$verdict" .stage)" "$what: refused at"
  [ -z "$code" ] || assert_eq "$code" "$(json_get "$verdict" .code)" "$what: code"
}

another_fleet() {
  local out rc=0
  make_fleet "$TEST_WORK/other" edge-b
  out=$(MIG_CTL_ID=$TEST_WORK/other/controller ctl_a migrate "$ID" --to edge-b 2>&1) || rc=$?
  [ "$rc" != 0 ] || fail "a controller of another fleet was accepted: $out"
  assert_contains "$out" authenticat "controller error"
  log "controller of another fleet: $out"
  refused "$(raw a "$TEST_WORK/other/controller" status)" tls 6 "raw client of another fleet"
  # Trusting edge-a's CA, so that only edge-a's check can refuse it.
  local verdict
  verdict=$(RAW_CA=$MIG_TLS/ca.crt raw a "$TEST_WORK/other/controller" status)
  assert_eq false "$(json_get "$verdict" .ok)" "a certificate of another fleet, server trusted: $verdict"
  log "certificate of another fleet, server trusted: $verdict"
  wait_log a "certificate verify failed" 5 || fail "edge-a did not log the certificate it refused"
}

roles() {
  # The daemons' own certificates, used by hand against edge-a.
  refused "$(raw a "$MIG_TLS/edge-b" migrate)" request 18 "a peer starting a migration"
  refused "$(raw a "$MIG_TLS/edge-b" status)" request 18 "a peer reading status"
  refused "$(raw a "$MIG_TLS/controller" pull)" request 18 "a controller pushing a container"
  refused "$(raw a "$MIG_TLS/edge-b" status --hello-role controller)" hello 6 "a peer claiming the controller role"
  refused "$(raw a "$MIG_TLS/controller" status --hello-node edge-b --hello-role daemon)" hello 6 \
    "a controller claiming to be edge-b"
  local ok
  ok=$(raw a "$MIG_TLS/controller" status)
  assert_eq true "$(json_get "$ok" .ok)" "the controller's status (control case): $ok"
  # migratectl itself refuses to act as a controller with a peer's certificate.
  local out rc=0
  out=$(MIG_CTL_ID=$MIG_TLS/edge-b ctl_a status 2>&1) || rc=$?
  [ "$rc" != 0 ] || fail "migratectl ran with a peer's certificate: $out"
  assert_contains "$out" "not a controller" "migratectl error"
  # UDP: the controller's signed datagram is answered (permissions are shared with TCP).
  out=$(MIG_CTL_ID=$MIG_TLS/controller ctl_a --udp status --json) || fail "udp status: $out"
  assert_eq edge-a "$(json_get "$out" .node)" "udp status node"
}

# A listed name whose address answers with another certificate.
impostor_at_listed_address() {
  local boot before out rc=0
  "$MIG_CA" issue "$MIG_TLS" edge-c >/dev/null
  daemon_stop b || true
  write_config b "$MIG_TLS/edge-c"
  sed -i 's/^node: edge-b$/node: edge-c/' "$MIG_WORK/b.yaml"
  daemon_start b || fail "edge-c did not start at edge-b's address"
  boot=$(field a "$ID" boot)
  before=$(field a "$ID" counter)
  out=$(ctl_a migrate "$ID" --to edge-b --json) || rc=$?
  [ "$rc" != 0 ] || fail "migration to an impostor succeeded: $out"
  assert_contains "$(json_get "$out" '.error // .message')" "certificate names edge-c" "error"
  out=$(ctl_a migrate "$ID" --to "$(host_addr b):$MIG_TCP_PORT" --json) || true
  assert_contains "$(json_get "$out" '.error // .message')" "certificate names edge-c" "error (host:port)"
  assert_untouched "$boot" "$before"
  daemon_stop b || true
  write_config b ""
}

# edge-b does not list edge-a: it refuses the container.
unlisted_source() {
  local boot before out rc=0
  sed -i 's/^peers: .*/peers: {}/' "$MIG_WORK/b.yaml"
  daemon_start b || fail "edge-b did not start without peers"
  boot=$(field a "$ID" boot)
  before=$(field a "$ID" counter)
  out=$(ctl_a migrate "$ID" --to edge-b --json) || rc=$?
  [ "$rc" != 0 ] || fail "edge-b accepted a container from a daemon it does not list: $out"
  assert_contains "$(json_get "$out" '.error // .message')" "not one of edge-b's peers" "error"
  log "unlisted source: $(json_get "$out" '.error // .message')"
  assert_eq 0 "$(json_get "$out" '.checkpoint_ms // 0 | floor')" "checkpoint_ms (must fail before checkpoint)"
  assert_untouched "$boot" "$before"
  daemon_stop b || true
  write_config b ""
  daemon_start b || fail "edge-b did not restart"
}

# edge-a lists nobody: a host:port destination needs allow_unlisted_destinations.
unlisted_destination() {
  local boot before out rc=0 to
  to="$(host_addr b):$MIG_TCP_PORT"
  daemon_stop a || true
  sed -i 's/^peers: .*/peers: {}/' "$MIG_WORK/a.yaml"
  daemon_start a || fail "edge-a did not start without peers"
  boot=$(field a "$ID" boot)
  before=$(field a "$ID" counter)
  out=$(ctl_a migrate "$ID" --to "$to" --json) || rc=$?
  [ "$rc" != 0 ] || fail "migration to an unlisted host:port succeeded: $out"
  assert_contains "$(json_get "$out" '.error // .message')" allow_unlisted_destinations "error"
  assert_untouched "$boot" "$before"
  daemon_stop a || true
  printf 'allow_unlisted_destinations: true\n' >>"$MIG_WORK/a.yaml"
  daemon_start a || fail "edge-a did not start with allow_unlisted_destinations"
  out=$(ctl_a migrate "$ID" --to "$to" --json) || fail "migration with allow_unlisted_destinations failed: $out"
  assert_eq ok "$(json_get "$out" .result)" "result with allow_unlisted_destinations"
  assert_running b "$ID"
  assert_alive_on b "$ID" "$boot" "$before"
}

require_root_tools
"$PY" -c 'import google.protobuf' 2>/dev/null ||
  skip "python3 with protobuf (python3-protobuf) is needed for the hand-driven client"
setup_hosts_and_daemons
mkdir -p "$TEST_WORK/pb"
protoc -I "$MIGRATED_SOURCE_DIR/proto" --python_out="$TEST_WORK/pb" "$MIGRATED_SOURCE_DIR/proto/migrated.proto"
start_counter "$ID" --mib 16 --dirty-mib-s 2
another_fleet
roles
impostor_at_listed_address
unlisted_source
unlisted_destination
pass
