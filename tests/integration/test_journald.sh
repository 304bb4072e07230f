#!/usr/bin/env bash
# The journald log sink: after a migration between daemons logging to
# journald, the journal holds several entries for that migration, found by
# its MIGRATION_ID field and carrying PHASE fields, and exactly one summary
# line (PHASE=finished) with CONTAINER, PEER, METHOD, RESULT and
# DOWNTIME_MS, found by those fields; a migration that fails has its
# summary at error priority.
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"

ID=mc-journal

phase_lines() {
  journalctl -o json "MIGRATION_ID=$1" 2>/dev/null | jq -c 'select(.PHASE != null)' | wc -l
}

enough_phase_lines() { [ "$(phase_lines "$1")" -ge 3 ]; }

require_root_tools
command -v journalctl >/dev/null 2>&1 || skip "journalctl is not installed"
ensure_journald || skip "systemd-journald cannot be started here"
on_exit stop_started_journald
setup_hosts_and_daemons journald
start_counter "$ID" --mib 16 --dirty-mib-s 2
rc=0
out=$(ctl_a migrate "$ID" --to edge-b --json) || rc=$?
[ "$rc" = 0 ] || fail "migrate exited $rc: $out"
mid=$(json_get "$out" '.id // empty')
[ -n "$mid" ] || fail "report has no id: $out"
journalctl --flush >/dev/null 2>&1 || true
wait_for enough_phase_lines "$mid" 10 \
  || fail "journal has $(phase_lines "$mid") entries with PHASE for MIGRATION_ID=$mid (want >= 3)"
log "journal: $(phase_lines "$mid") entries with PHASE for $mid"

# summaries QUERY...: the summary lines matching journalctl field matches.
summaries() { journalctl -o json PHASE=finished "$@" 2>/dev/null | jq -c .; }
one_summary() { [ "$(summaries "$@" | wc -l)" -ge 1 ]; }
wait_for one_summary MIGRATION_ID="$mid" 10 || fail "no summary line for $mid"
line=$(summaries MIGRATION_ID="$mid" CONTAINER="$ID" PEER=edge-b RESULT=ok)
assert_eq 1 "$(wc -l <<<"$line")" "summary lines found by CONTAINER, PEER and RESULT"
method=$(json_get "$out" '.method' | tr 'A-Z' 'a-z' | sed 's/^method_//')
assert_eq "$method" "$(jq -r .METHOD <<<"$line")" "METHOD of the summary"
downtime=$(json_get "$out" '.downtimeMs // .downtime_ms // 0')
assert_eq "$(printf '%.0f' "$downtime")" "$(jq -r .DOWNTIME_MS <<<"$line")" "DOWNTIME_MS of the summary"
assert_eq 6 "$(jq -r .PRIORITY <<<"$line")" "priority of a successful migration's summary"
log "summary: $(jq -r .MESSAGE <<<"$line")"

# A migration that fails: its summary is an error.
rc=0
bad=$(ctl_a migrate no-such-container --to edge-b --json 2>&1) || rc=$?
[ "$rc" != 0 ] || fail "migrating a missing container succeeded: $bad"
wait_for one_summary CONTAINER=no-such-container 10 || fail "no summary line for the failed migration: $bad"
line=$(summaries CONTAINER=no-such-container | tail -n 1)
assert_eq failed "$(jq -r .RESULT <<<"$line")" "RESULT of the failed migration's summary"
assert_eq 3 "$(jq -r .PRIORITY <<<"$line")" "priority of the failed migration's summary"
log "failed summary: $(jq -r .MESSAGE <<<"$line")"
pass
