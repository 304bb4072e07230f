#!/usr/bin/env bash
# --method auto when CRIU cannot take the process state: memcounter holds an
# io_uring instance, which CRIU cannot checkpoint. auto's measurement fails
# (the container keeps running, untouched), and it falls back to replay for
# a container with a replay hook, to diff for one without, saying why.
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"

require_root_tools
setup_hosts_and_daemons

# start ID ANNOTATIONS_JSON: an io_uring-holding counter on A.
start() {
  local id=$1 annotations=$2 bundle tmp
  bundle=$(counter_bundle a "$id")
  on_exit remove_counter "$id"
  make_bundle "$bundle" "$id" "$(host_cgroup_parent a)" -- /bin/memcounter --hold-io-uring --mib 4 --state /data
  tmp=$(mktemp "$bundle/config.json.XXXXXX")
  jq --argjson a "$annotations" '.annotations = $a' "$bundle/config.json" >"$tmp" && mv "$tmp" "$bundle/config.json"
  start_container "$(host_runc_root a)" "$bundle" "$id"
  wait_for counter_at_least a "$id" 2 10 || fail "$id never started on A"
}

start mc-hook '{"migrated.replay": "echo replayed > /data/replayed"}'
start mc-plain '{}'

out=$(ctl a measure mc-plain --json 2>&1) && fail "measure succeeded on an io_uring holder: $out"
assert_contains "$out" "criu" "measure error"
assert_running a mc-plain

out=$(migrate_ok a b mc-hook auto)
assert_eq replay "$(json_get "$out" .method)" "auto's choice with a replay hook"
assert_contains "$(json_get "$out" .method_reason)" "no live checkpoint" "auto's reason"
assert_contains "$(json_get "$out" .method_reason)" "replay hook" "auto's reason"
assert_eq replayed "$(cat "$(counter_bundle b mc-hook)/rootfs/data/replayed")" "replay hook output"
assert_running b mc-hook
assert_absent a mc-hook

out=$(migrate_ok a b mc-plain auto)
assert_eq diff "$(json_get "$out" .method)" "auto's choice without a hook"
assert_contains "$(json_get "$out" .method_reason)" "no live checkpoint" "auto's reason"
assert_running b mc-plain
assert_absent a mc-plain
wait_for counter_at_least b mc-plain 2 10 || fail "mc-plain does not count on B"
pass
