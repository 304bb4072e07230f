#!/usr/bin/env bash
# `migratectl history`: the finished migrations a node took part in, on
# disk, newest first, across daemon restarts. A live counter moves a → b
# (cold), back (precopy), and once more with its restore made to fail at b
# (rolled back). After both daemons restart, each lists those migrations,
# newest first, with container, peers, method, result and downtime as the
# reports said; the table shows them too, --limit 1 only the newest, and a
# --limit that is no number is a usage error (exit 2).
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"

ID=mc-past

require_root_tools
setup_hosts_and_daemons
start_counter "$ID" --mib 8 --dirty-mib-s 1

first=$(migrate_ok a b "$ID" cold)
second=$(migrate_ok b a "$ID" precopy)
daemon_stop b || true
daemon_start b MIGRATED_FAULT=dest.restore.fail || fail "edge-b did not restart with dest.restore.fail"
third=$(ctl_a migrate "$ID" --to edge-b --json) && fail "migrate succeeded despite dest.restore.fail: $third"
assert_eq rolled_back "$(json_get "$third" .result)" "result with the restore failing at edge-b"

daemons_restart() {
  local x
  for x in a b; do
    daemon_stop "$x" || true
    daemon_start "$x" || fail "$(host_node "$x") did not restart"
  done
}
daemons_restart

past=$(ctl_a history --json) || fail "history on edge-a failed: $past"
log "edge-a's history: $(jq -c '[.migrations[] | {id, source, method, result, downtime_ms}]' <<<"$past")"
# Each node keeps its own report: the downtime is the source's to measure.
fields='{id, container, source, destination, method, result, downtime_ms: (if .source == "edge-a" then .downtime_ms else null end)}'
want=$(jq -n -c --argjson r1 "$first" --argjson r2 "$second" --argjson r3 "$third" "[\$r3, \$r2, \$r1] | map($fields)")
got=$(jq -c "[.migrations[] | $fields]" <<<"$past")
assert_eq "$want" "$got" "edge-a's history after a restart (newest first, as the reports said)"
assert_eq edge-a "$(jq -r .node <<<"$past")" "node of edge-a's history"

# edge-b took part in the same three: as destination, source, destination.
got_b=$(ctl_b history --json | jq -c '[.migrations[] | {id, source, destination}]')
want_b=$(jq -n -c --argjson r1 "$first" --argjson r2 "$second" --argjson r3 "$third" \
  '[$r3, $r2, $r1] | map({id, source, destination})')
assert_eq "$want_b" "$got_b" "edge-b's history after a restart"

table=$(ctl_a history) || fail "history table failed"
log "table: $(head -n 2 <<<"$table" | tr '\n' '|')"
assert_eq 4 "$(wc -l <<<"$table")" "lines of the history table (a header and three migrations)"
assert_contains "$(sed -n 2p <<<"$table")" "$(json_get "$third" .id)" "the table's first line"
assert_contains "$(sed -n 2p <<<"$table")" rolled_back "the table's first line"

newest=$(ctl_a history --limit 1 --json | jq -c '[.migrations[].id]')
assert_eq "[\"$(json_get "$third" .id)\"]" "$newest" "history --limit 1"
rc=0
ctl_a history --limit abc >/dev/null 2>&1 || rc=$?
assert_eq 2 "$rc" "exit code of history --limit abc"
pass
