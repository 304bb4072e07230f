#!/usr/bin/env bash
# runc with the filesystem methods and auto. The counter's bundle carries
# OCI annotations: a readiness probe run inside the container and a replay
# hook. `diff` moves the rootfs changes and starts a fresh process there
# (new boot id, the file written on the source present); `replay` starts
# fresh while the source still serves and runs the hook; `full` copies the
# whole bundle; `auto` sees that a live checkpoint works and keeps the
# process (same boot id), saying why.
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"

ID=mc-fs

require_root_tools
setup_hosts_and_daemons
bundle=$(counter_bundle a "$ID")
on_exit remove_counter "$ID"
make_bundle "$bundle" "$ID" "$(host_cgroup_parent a)" -- /bin/memcounter --mib 8 --state /data
tmp=$(mktemp "$bundle/config.json.XXXXXX")
jq '.annotations = {"migrated.ready.exec": "test -f /data/status", "migrated.replay": "echo replayed > /data/replayed"}' \
  "$bundle/config.json" >"$tmp" && mv "$tmp" "$bundle/config.json"
start_container "$(host_runc_root a)" "$bundle" "$ID"
wait_for counter_at_least a "$ID" 2 10 || fail "the counter never started on A"
echo note >"$bundle/rootfs/data/note.txt"

# move FROM TO METHOD: migrates; checks the report and where it runs.
move() {
  local from=$1 to=$2 method=$3 out
  out=$(migrate_ok "$from" "$to" "$ID" "$method")
  assert_absent "$from" "$ID"
  assert_running "$to" "$ID"
  wait_for counter_at_least "$to" "$ID" 2 10 || fail "the counter does not run on $to after $method"
  REPORT=$out
}

boot=$(field a "$ID" boot)
move a b diff
assert_contains "$(json_get "$REPORT" .ready_probe)" "exec sh -c" "ready probe"
[ "$(field b "$ID" boot)" != "$boot" ] || fail "diff kept the process: it must start fresh"
assert_eq note "$(cat "$(counter_bundle b "$ID")/rootfs/data/note.txt")" "file moved by diff"

move b a replay
jq -e '.downtime_ms == 0' <<<"$REPORT" >/dev/null || fail "replay: the source stopped before Ready: $REPORT"
assert_eq replayed "$(cat "$(counter_bundle a "$ID")/rootfs/data/replayed")" "replay hook output"

move a b full
assert_eq note "$(cat "$(counter_bundle b "$ID")/rootfs/data/note.txt")" "file moved by full"

boot=$(field b "$ID" boot)
move b a auto
assert_contains "$(json_get "$REPORT" .method_reason)" "live checkpoint works" "auto's reason"
assert_eq auto "$(json_get "$REPORT" .requested_method)" "requested method"
case "$(json_get "$REPORT" .method)" in cold | precopy) ;; *) fail "auto chose $(json_get "$REPORT" .method)" ;; esac
assert_eq "$boot" "$(field a "$ID" boot)" "auto keeps the process"
log "auto: $(json_get "$REPORT" .method) because $(json_get "$REPORT" .method_reason)"
pass
