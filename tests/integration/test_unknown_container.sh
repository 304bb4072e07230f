#!/usr/bin/env bash
# Migrating a container the source does not have fails with an error that
# names it, and leaves the real container on edge-a alone.
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"

ID=mc-real
GHOST=no-such-container

require_root_tools
setup_hosts_and_daemons
start_counter "$ID" --mib 16 --dirty-mib-s 2
boot=$(field a "$ID" boot)
before=$(field a "$ID" counter)
rc=0
out=$(ctl_a migrate "$GHOST" --to edge-b 2>&1) || rc=$?
[ "$rc" != 0 ] || fail "migrating $GHOST succeeded: $out"
assert_contains "$out" "$GHOST" "error"
assert_running a "$ID"
assert_alive_on a "$ID" "$boot" "$before"
assert_absent b "$GHOST"
assert_absent b "$ID"
pass
