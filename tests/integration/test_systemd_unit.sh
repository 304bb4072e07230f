#!/usr/bin/env bash
# systemd/migrated.service passes `systemd-analyze verify`. Its Exec lines
# name the binary's directory as a placeholder the install fills in; verify
# checks that the commands exist, so they are pointed at the build tree in a
# temporary copy of the unit first. (test_package checks the installed one.)
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"

UNIT=$MIGRATED_SOURCE_DIR/systemd/migrated.service

command -v systemd-analyze >/dev/null 2>&1 || skip "systemd-analyze is not installed"
[ -f "$UNIT" ] || fail "$UNIT is missing"
[ -x "$MIGRATED_BUILD_DIR/migrated" ] || fail "$MIGRATED_BUILD_DIR/migrated is not built"
TEST_WORK=$(mktemp -d "/tmp/migrated-$TEST_NAME.XXXXXX")
on_exit rm -rf "$TEST_WORK"
sed -E "s#^(Exec[A-Za-z]*=[-@:+!]*)[^ ]*/migrated( |\$)#\\1$MIGRATED_BUILD_DIR/migrated\\2#" \
  "$UNIT" >"$TEST_WORK/migrated.service"
grep -q "^ExecStart=.*$MIGRATED_BUILD_DIR/migrated" "$TEST_WORK/migrated.service" \
  || fail "no ExecStart= running migrated in $UNIT"
rc=0
out=$(systemd-analyze verify --man=no "$TEST_WORK/migrated.service" 2>&1) || rc=$?
[ "$rc" = 0 ] || fail "systemd-analyze verify: $out"
[ -z "$out" ] || fail "systemd-analyze verify warns: $out"
pass
