#!/usr/bin/env bash
# The journald log sink: after a migration between daemons logging to
# journald, the journal holds several entries for that migration, found by
# its MIGRATION_ID field and carrying PHASE fields.
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
pass
