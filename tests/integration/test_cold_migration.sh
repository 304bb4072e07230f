#!/usr/bin/env bash
# Cold migration of a live memcounter container from edge-a to edge-b and
# back: the same process (boot id) must continue counting on the other host
# with every page intact, the source must forget the container, and the
# report must be complete and self-consistent, CRIU's own statistics in it.
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"

ID=mc-cold

# check_report JSON SOURCE DEST: fields present and consistent.
check_report() {
  local r=$1 src=$2 dst=$3
  assert_eq ok "$(json_get "$r" .result)" "result"
  assert_eq "$ID" "$(json_get "$r" .container)" "report container"
  assert_eq "$src" "$(json_get "$r" .source)" "report source"
  assert_eq "$dst" "$(json_get "$r" .destination)" "report destination"
  assert_eq cold "$(json_get "$r" .method)" "report method"
  assert_eq runc "$(json_get "$r" .runtime)" "report runtime"
  [ -n "$(json_get "$r" '.id // empty')" ] || fail "report has no id: $r"
  jq -e '
      .downtime_ms > 0 and .downtime_ms <= .total_ms
    and .checkpoint_ms > 0 and .transfer_ms > 0 and .restore_ms > 0
    and (.checkpoint_ms + .transfer_ms + .restore_ms) <= .total_ms + 1
    and .bytes_image > 0 and .bytes_wire > 0
    and (.rounds | type == "array" and length > 0)
  ' <<<"$r" >/dev/null || fail "report timings or sizes inconsistent: $r"
  # CRIU's own statistics of the final dump and the restore: the pages it
  # says it wrote are the pages the images' pagemaps hold, and the restore
  # put back every one of them.
  jq -e '
      .criu_dump.freezing_ms > 0 and .criu_dump.frozen_ms > 0 and .criu_dump.memdump_ms > 0
    and .pages_image > 0 and .criu_dump.pages_written == .pages_image
    and .criu_dump.pages_scanned >= .criu_dump.pages_written and .criu_dump.pages_lazy == 0
    and .criu_restore.restore_ms > 0 and .criu_restore.pages_restored == .pages_image
  ' <<<"$r" >/dev/null || fail "CRIU statistics missing or implausible: $(jq -c '{pages_image, criu_dump, criu_restore}' <<<"$r")"
}

# migrate_and_check FROM TO: moves the counter and checks both hosts.
migrate_and_check() {
  local from=$1 to=$2 boot last out rc=0
  boot=$(field "$from" "$ID" boot)
  last=$(field "$from" "$ID" counter)
  log "migrating $ID from $(host_node "$from") to $(host_node "$to") (counter $last)"
  out=$(ctl "$from" migrate "$ID" --to "$(host_node "$to")" --json) || rc=$?
  [ "$rc" = 0 ] || fail "migrate exited $rc: $out"
  check_report "$out" "$(host_node "$from")" "$(host_node "$to")"
  assert_absent "$from" "$ID"
  assert_running "$to" "$ID"
  assert_alive_on "$to" "$ID" "$boot" "$last"
  log "downtime $(json_get "$out" .downtime_ms) ms, total $(json_get "$out" .total_ms) ms"
}

require_root_tools
setup_hosts_and_daemons
start_counter "$ID" --mib 16 --dirty-mib-s 4
migrate_and_check a b
migrate_and_check b a
pass
