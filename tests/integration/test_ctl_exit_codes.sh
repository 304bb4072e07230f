#!/usr/bin/env bash
# migratectl's exit status tells a script what happened, each outcome
# brought about for real between two daemons, and --json prints errors as
# JSON too:
#   0 ok (a migration, --version, --help)
#   1 failed before anything changed (a container the source does not have)
#   2 usage (a value of the wrong type, an option the command does not take,
#     an unknown method or command, a missing --to): nothing is sent
#   3 rolled back (the restore fails at the destination): the container runs
#     on at the source
#   4 unreachable or refused: the destination's daemon down (the container
#     never stopped), the daemon asked down, a controller of another fleet
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"

ID=mc-exit

# expect_exit CODE WHAT CMD...: CMD exits CODE; its stdout in OUT.
expect_exit() {
  local want=$1 what=$2 rc=0
  shift 2
  OUT=$("$@" 2>"$TEST_WORK/stderr") || rc=$?
  [ "$rc" = "$want" ] || fail "$what: exit $rc, expected $want (stdout: $OUT; stderr: $(cat "$TEST_WORK/stderr"))"
  log "$what: exit $rc"
}

# json_failure CODE EXIT: OUT is migratectl's JSON error with these.
json_failure() {
  jq -e --arg code "$1" --argjson exit "$2" '.ok == false and .code == $code and .exit_code == $exit
                                             and (.error | length > 0)' <<<"$OUT" >/dev/null \
    || fail "not a JSON error with code $1 and exit_code $2: $OUT"
}

require_root_tools
setup_hosts_and_daemons
start_counter "$ID" --mib 8
boot=$(field a "$ID" boot)

# 2: the command line is wrong.
expect_exit 2 "--timeout-ms abc" ctl a --timeout-ms abc status
assert_contains "$(cat "$TEST_WORK/stderr")" "timeout-ms" "the error names the option"
expect_exit 2 "--timeout-ms 0" ctl a --timeout-ms 0 status
expect_exit 2 "status --limit (an option of history)" ctl a status --limit 3
expect_exit 2 "an unknown method" ctl a migrate "$ID" --to edge-b --method teleport
expect_exit 2 "an unknown command" ctl a teleport "$ID"
assert_contains "$(cat "$TEST_WORK/stderr")" "teleport" "the error names the command"
expect_exit 2 "--psk-file, an option of old" ctl a --psk-file /etc/migrated/psk status
assert_contains "$(cat "$TEST_WORK/stderr")" "--psk-file: links use certificates now" "the error names what replaces it"
expect_exit 2 "migrate without --to, --json" ctl a migrate "$ID" --json
json_failure invalid_argument 2
assert_running a "$ID"
assert_absent b "$ID"

# 0: asking for the version or a command's help.
expect_exit 0 "--version" ctl a --version
assert_contains "$OUT" "migratectl " "--version"
expect_exit 0 "migrate --help" ctl a migrate --help
assert_contains "$OUT" "--method" "migrate --help"
assert_contains "$OUT" "=cold" "migrate --help shows the default method"

# 1: failed before anything changed.
expect_exit 1 "a container edge-a does not have" ctl a migrate no-such-container --to edge-b --json
jq -e '.ok == false or .result == "failed"' <<<"$OUT" >/dev/null || fail "not a failure: $OUT"

# 0: moved.
last=$(field a "$ID" counter)
expect_exit 0 "a cold move a -> b" ctl a migrate "$ID" --to edge-b --json
assert_eq ok "$(json_get "$OUT" .result)" "result"
assert_alive_on b "$ID" "$boot" "$last"

# 3: the restore fails at the destination, the container runs on at the source.
daemon_stop a || true
daemon_start a MIGRATED_FAULT=dest.restore.fail || fail "edge-a did not restart with dest.restore.fail"
last=$(field b "$ID" counter)
expect_exit 3 "the restore failing at edge-a" ctl b migrate "$ID" --to edge-a --json
assert_eq rolled_back "$(json_get "$OUT" .result)" "result"
assert_running b "$ID"
assert_alive_on b "$ID" "$boot" "$last"
daemon_stop a || true

# 4: the destination's daemon is down: refused at the connection, before
# the container stopped.
last=$(field b "$ID" counter)
expect_exit 4 "edge-a's daemon down" ctl b migrate "$ID" --to edge-a --json
assert_eq failed "$(json_get "$OUT" .result)" "result"
assert_eq refused "$(json_get "$OUT" .code)" "code"
assert_running b "$ID"
assert_alive_on b "$ID" "$boot" "$last"

# 4: the daemon asked is down.
expect_exit 4 "asking edge-a's daemon, which is down" ctl a status --json
json_failure refused 4

# 4: authentication refused (a controller of another fleet).
make_fleet "$TEST_WORK/other" edge-b
MIG_CTL_ID=$TEST_WORK/other/controller expect_exit 4 "a controller of another fleet" ctl b status --json
json_failure auth 4
pass
