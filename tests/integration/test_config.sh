#!/usr/bin/env bash
# Configuration checks: --check-config accepts a good file and names the key
# path of an unknown key; the daemon refuses a psk file that group or others
# can read, exiting non-zero with a message about its mode.
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"

check_config() { "$MIGRATED_BUILD_DIR/migrated" --config "$1" --check-config 2>&1; }

good_config() {
  local out
  out=$(check_config "$MIG_WORK/a.yaml") || fail "--check-config rejects a good file: $out"
}

unknown_key() {
  local bad=$MIG_WORK/bad.yaml out rc=0
  cp "$MIG_WORK/a.yaml" "$bad"
  sed -i 's/runtime: {runc: {/runtime: {runc: {colour: blue, /' "$bad"
  grep -q 'colour: blue' "$bad" || fail "could not write the bad config"
  out=$(check_config "$bad") || rc=$?
  [ "$rc" != 0 ] || fail "--check-config accepts an unknown key"
  assert_contains "$out" runtime.runc.colour "error"
}

# readable_psk MODE: the daemon must refuse to start.
readable_psk() {
  local mode=$1 out rc=0
  chmod "$mode" "$MIG_PSK"
  out=$(timeout 20 nsenter --net="/run/netns/$MIG_NS_A" "$MIGRATED_BUILD_DIR/migrated" \
          --config "$MIG_WORK/a.yaml" </dev/null 2>&1) || rc=$?
  chmod 600 "$MIG_PSK"
  [ "$rc" != 0 ] || fail "daemon ran with a psk of mode $mode"
  [ "$rc" != 124 ] || fail "daemon did not refuse a psk of mode $mode (still running after 20 s)"
  grep -qiE "mode|$mode" <<<"$out" || fail "error for psk mode $mode does not mention the mode: $out"
}

require_root_tools
TEST_WORK=$(mktemp -d "/tmp/migrated-$TEST_NAME.XXXXXX")
on_exit rm -rf "$TEST_WORK"
on_exit hosts_down
hosts_up
daemons_init "$TEST_WORK"
write_config a "$MIG_PSK" stderr
good_config
unknown_key
readable_psk 640
readable_psk 604
pass
