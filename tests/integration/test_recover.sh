#!/usr/bin/env bash
# A rollback that fails: the restore fails at edge-b, and at edge-a neither
# the thaw nor the images bring the container back (fault point
# source.rollback.fail). The report says in one sentence that it runs
# nowhere, where its images are, and the command that retries; so does the
# journal (the daemon's log). After edge-a's daemon restarts without the
# fault, `migratectl recover ID` restores it from the kept images: the same
# process counts on, its connection alive, and the images are gone.
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"

ID=mc-lost

require_root_tools
setup_hosts_and_daemons
start_counter "$ID" --mib 8
daemon_stop a || true
daemon_start a MIGRATED_FAULT=source.rollback.fail || fail "edge-a did not restart with source.rollback.fail"
daemon_stop b || true
daemon_start b MIGRATED_FAULT=dest.restore.fail || fail "edge-b did not restart with dest.restore.fail"
boot=$(field a "$ID" boot)
before=$(field a "$ID" counter)

out=$(ctl_a migrate "$ID" --to edge-b --json) && fail "migrate succeeded: $out"
mid=$(json_get "$out" .id)
err=$(json_get "$out" .error)
assert_eq failed "$(json_get "$out" .result)" "result"
assert_contains "$err" "$ID runs nowhere: its rollback failed" "error"
assert_contains "$err" "migratectl recover $mid" "error"
assert_contains "$(cat "$MIG_WORK/a.log")" "$ID runs nowhere" "edge-a's log"
assert_absent a "$ID"
assert_absent b "$ID"
[ -f "$MIG_WORK/a/storage/outgoing/$mid/lost.json" ] || fail "no record of the lost container"

# The daemon restarts (the record is on disk), without the fault.
daemon_stop a || true
daemon_start a || fail "edge-a did not restart"
ctl_a recover "$mid" || fail "recover $mid failed"
assert_running a "$ID"
assert_alive_on a "$ID" "$boot" "$before"
[ ! -e "$MIG_WORK/a/storage/outgoing/$mid" ] || fail "the images of $mid were not removed after the recovery"
out=$(ctl_a recover "$mid" 2>&1) && fail "a second recover succeeded: $out"
assert_contains "$out" "no lost container recorded" "second recover"
pass
