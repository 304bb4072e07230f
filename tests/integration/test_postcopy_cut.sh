#!/usr/bin/env bash
# The link between the hosts cut in the middle of a post-copy (iptables
# DROP both ways: no reset, only silence), while the process already runs
# at the destination and its pages still come over a 20 Mbit link. Both
# daemons notice within their I/O timeout; the source thaws its frozen
# copy, which runs on with its state (the same process, counting on from
# where it froze, every page intact): result rolled_back. The destination
# removes its copy, which never got all its pages, and lazy-pages with it.
# Once the link is back the same container moves again with post-copy.
# docs/design.md, "Post-copy".
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"

ID=mc-postcut

require_root_tools
criu check --feature uffd-noncoop >/dev/null 2>&1 || skip "this kernel has no non-cooperative userfaultfd"
command -v iptables >/dev/null 2>&1 || skip "iptables is not installed (cuts the link between the hosts)"
setup_hosts
for x in a b; do
  write_config "$x" ""
  # A cut link is noticed in seconds.
  printf 'timeouts: {connect_ms: 2000, io_ms: 4000, commit_ms: 5000}\n' >>"$MIG_WORK/$x.yaml"
done
on_exit link_up
on_exit daemons_stop
daemon_start a || fail "the daemon of edge-a did not start"
daemon_start b || fail "the daemon of edge-b did not start"
start_counter "$ID" --mib 32 --dirty-mib-s 4
hosts_shape 20mbit

phase_on_a() { ctl_a status --json 2>/dev/null | jq -r --arg c "$ID" '[.migrations[] | select(.container == $c)][-1].phase // ""'; }
in_postcopy() { [ "$(phase_on_a)" = postcopy ]; }
copy_on_b() { [ -n "$(container_state "$(host_runc_root b)" "$ID")" ]; }

boot=$(field a "$ID" boot)
ctl_a migrate "$ID" --to edge-b --method postcopy --json >"$MIG_WORK/cut.json" 2>"$MIG_WORK/cut.err" &
ctl_pid=$!
wait_for in_postcopy 60 || fail "the migration never reached post-copy (phase '$(phase_on_a)')"
copy_on_b || fail "no copy of $ID runs on edge-b during post-copy"
before=$(field b "$ID" counter)  # the copy there counts (the status file is its own)
log "post-copy under way (the copy on edge-b at $before): cutting the link"
link_down
rc=0
wait "$ctl_pid" || rc=$?
out=$(cat "$MIG_WORK/cut.json")
[ "$rc" != 0 ] || fail "post-copy succeeded across a cut link: $out"
assert_eq rolled_back "$(json_get "$out" .result)" "result with the link cut mid-post-copy"
log "reported error: $(json_get "$out" .error)"
assert_running a "$ID"
frozen_at=$(field a "$ID" counter)
assert_alive_on a "$ID" "$boot" "$frozen_at"
gone_from_b() { ! copy_on_b; }
wait_for gone_from_b 30 || fail "edge-b kept its copy of $ID after the cut"
lazy_left=$(pgrep -fc "criu lazy-pages.*$MIG_WORK/b/" || true)
assert_eq 0 "$lazy_left" "criu lazy-pages processes left on edge-b"

link_up
hosts_shape 1gbit
last=$(field a "$ID" counter)
migrate_ok a b "$ID" postcopy >/dev/null
assert_running b "$ID"
assert_alive_on b "$ID" "$boot" "$last"
assert_absent a "$ID"
pass
