#!/usr/bin/env bash
# Commands over UDP datagrams: `status` answers, and `migrate` answers with
# the migration id at once; the migration then completes and its report is
# read over TCP.
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"

ID=mc-udp

migration_result() {
  local out
  out=$(ctl_a status "$1" --json 2>/dev/null) || return 1
  jq -r '.result // .migrations[0].result // empty' <<<"$out"
}

migration_finished() {
  case "$(migration_result "$1")" in ok | failed | rolled_back) return 0 ;; *) return 1 ;; esac
}

require_root_tools
setup_hosts_and_daemons
start_counter "$ID" --mib 16 --dirty-mib-s 2
ctl_a --udp status >/dev/null || fail "status over UDP failed"
boot=$(field a "$ID" boot)
last=$(field a "$ID" counter)
rc=0
out=$(ctl_a --udp migrate "$ID" --to edge-b --json) || rc=$?
[ "$rc" = 0 ] || fail "migrate over UDP exited $rc: $out"
mid=$(json_get "$out" '.id // .migration_id // empty') || fail "reply is not JSON: $out"
[ -n "$mid" ] || fail "reply carries no migration id: $out"
log "migration $mid accepted over UDP"
wait_for migration_finished "$mid" 60 \
  || fail "migration $mid did not finish: $(ctl_a status "$mid" --json 2>&1)"
[ "$(migration_result "$mid")" = ok ] \
  || fail "migration $mid did not succeed: $(ctl_a status "$mid" --json 2>&1)"
assert_absent a "$ID"
assert_running b "$ID"
assert_alive_on b "$ID" "$boot" "$last"
pass
