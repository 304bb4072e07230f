#!/usr/bin/env bash
# Configuration checks: --check-config accepts a good file and names the key
# path of an unknown key and names the replacement of psk_file; the daemon
# refuses a private key (tls.key) that group or others can read, exiting
# non-zero with a message about its mode, and a certificate of another node;
# and an `images` directory that others may use (/dev/shm itself), while one
# it makes itself gets mode 0700.
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

old_psk_key() {
  local bad=$MIG_WORK/old.yaml out rc=0
  cp "$MIG_WORK/a.yaml" "$bad"
  printf 'psk_file: /etc/migrated/psk\n' >>"$bad"
  out=$(check_config "$bad") || rc=$?
  [ "$rc" != 0 ] || fail "--check-config accepts psk_file"
  assert_contains "$out" tls.cert "error for psk_file"
}

# start_a: the daemon of edge-a with a.yaml in the foreground; must refuse.
refused_start() {
  local what=$1 out rc=0
  out=$(timeout 20 nsenter --net="/run/netns/$MIG_NS_A" "$MIGRATED_BUILD_DIR/migrated" \
          --config "$MIG_WORK/a.yaml" </dev/null 2>&1) || rc=$?
  [ "$rc" != 0 ] || fail "daemon ran with $what"
  [ "$rc" != 124 ] || fail "daemon did not refuse $what (still running after 20 s)"
  printf '%s\n' "$out"
}

# readable_key MODE: the daemon must refuse to start.
readable_key() {
  local mode=$1 out key=$MIG_TLS/edge-a.key
  chmod "$mode" "$key"
  out=$(refused_start "a key of mode $mode")
  chmod 600 "$key"
  grep -qiE "mode|$mode" <<<"$out" || fail "error for key mode $mode does not mention the mode: $out"
}

# The certificate of edge-b in edge-a's config: refused, naming both.
someone_elses_certificate() {
  local out
  write_config a "$MIG_TLS/edge-b" stderr
  out=$(refused_start "the certificate of edge-b")
  assert_contains "$out" edge-b "error"
  assert_contains "$out" edge-a "error"
  write_config a "$MIG_TLS/controller" stderr
  out=$(refused_start "a controller's certificate")
  assert_contains "$out" controller "error"
  write_config a "" stderr
}

# images: a shared directory is refused, naming it; a missing one is made 0700.
images_dir() {
  local out shared=/dev/shm own
  own=$(mktemp -d /dev/shm/migrated-test-images.XXXXXX)
  on_exit rm -rf "$own"
  write_config a "" stderr
  printf 'images: %s\n' "$shared" >>"$MIG_WORK/a.yaml"
  out=$(refused_start "images: $shared")
  assert_contains "$out" "images $shared" "error"
  assert_contains "$out" "others may read it" "error"
  MIG_IMAGES_ROOT=$own
  write_config a "" stderr
  # (started for a moment, then stopped: the directory is made at start-up)
  daemon_start a || fail "edge-a did not start with images in $own/a"
  assert_eq 700 "$(stat -c %a "$own/a")" "mode of the images directory the daemon made"
  daemon_stop a
  unset MIG_IMAGES_ROOT
  write_config a "" stderr
}

require_root_tools
TEST_WORK=$(mktemp -d "/tmp/migrated-$TEST_NAME.XXXXXX")
on_exit rm -rf "$TEST_WORK"
on_exit hosts_down
hosts_up
daemons_init "$TEST_WORK"
write_config a "" stderr
good_config
unknown_key
old_psk_key
readable_key 640
readable_key 604
someone_elses_certificate
images_dir
pass
