#!/usr/bin/env bash
# Authentication: a controller with the wrong key is refused, and a
# destination daemon with a different key than the source makes the
# migration fail before any checkpoint. In both cases the container keeps
# running untouched on edge-a and edge-b gets nothing.
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"

ID=mc-psk

# assert_untouched BOOT COUNTER: same process on A, still counting, not on B.
assert_untouched() {
  assert_running a "$ID"
  assert_alive_on a "$ID" "$1" "$2"
  assert_absent b "$ID"
  [ -z "$(ls -A "$(host_bundles b)")" ] || fail "edge-b received something: $(ls -A "$(host_bundles b)")"
}

wrong_controller_key() {
  local boot before out rc=0
  boot=$(field a "$ID" boot)
  before=$(field a "$ID" counter)
  write_psk "$TEST_WORK/wrong-psk"
  out=$(MIG_CTL_PSK=$TEST_WORK/wrong-psk ctl_a migrate "$ID" --to edge-b 2>&1) || rc=$?
  [ "$rc" != 0 ] || fail "controller with a wrong key was accepted: $out"
  assert_contains "$out" authenticat "controller error"
  log "controller refused: $out"
  assert_untouched "$boot" "$before"
}

wrong_peer_key() {
  local boot before out rc=0
  daemon_stop b || true
  write_psk "$TEST_WORK/psk-b"
  write_config b "$TEST_WORK/psk-b"
  daemon_start b || fail "the daemon of edge-b did not restart with its own key"
  boot=$(field a "$ID" boot)
  before=$(field a "$ID" counter)
  out=$(ctl_a migrate "$ID" --to edge-b --json) || rc=$?
  [ "$rc" != 0 ] || fail "migration to a peer with another key succeeded: $out"
  # A report (.result, .error), or the daemon's refusal (.ok, .message).
  local result
  result=$(json_get "$out" '.result // "refused"') || fail "answer is not JSON: $out"
  [ "$result" != ok ] || fail "report says ok: $out"
  assert_contains "$(json_get "$out" '.error // .message')" auth "error"
  log "peer refused: $(json_get "$out" '.error // .message')"
  assert_eq 0 "$(json_get "$out" '.checkpoint_ms // 0 | floor')" "checkpoint_ms (must fail before checkpoint)"
  assert_untouched "$boot" "$before"
}

require_root_tools
setup_hosts_and_daemons
start_counter "$ID" --mib 16 --dirty-mib-s 2
wrong_controller_key
wrong_peer_key
pass
