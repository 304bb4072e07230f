#!/usr/bin/env bash
# The link between the hosts cut in the middle of a post-copy (iptables
# DROP both ways: no reset, only silence), while the process already runs
# at the destination and its pages still come over a 20 Mbit link.
#
# 1. Cut for longer than the I/O timeout, and back within
#    postcopy.recover_timeout_ms: both daemons notice the page link is
#    lost, the destination's process waits on its faults, the source
#    connects again once the link is back, and the requests left
#    unanswered are asked again. The migration ends ok, with the recovery
#    in its report, and the same process counts on at the destination with
#    every page intact.
# 2. Cut for longer than the recovery window: both sides give up, the
#    source thaws its frozen copy, which runs on with its state (the same
#    process, counting on from where it froze): result rolled_back. The
#    destination removes its copy, which never got all its pages, and
#    lazy-pages with it. Once the link is back the container moves again.
# docs/design.md, "Post-copy" and "Recovery".
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"

ID=mc-postcut
RECOVER_MS=10000

require_root_tools
criu check --feature uffd-noncoop >/dev/null 2>&1 || skip "this kernel has no non-cooperative userfaultfd"
command -v iptables >/dev/null 2>&1 || skip "iptables is not installed (cuts the link between the hosts)"
setup_hosts
for x in a b; do
  write_config "$x" ""
  # A cut link is noticed in seconds, and may stay down for RECOVER_MS.
  printf 'timeouts: {connect_ms: 1000, io_ms: 3000, commit_ms: 5000}\npostcopy: {recover_timeout_ms: %s}\n' \
    "$RECOVER_MS" >>"$MIG_WORK/$x.yaml"
done
on_exit link_up
on_exit daemons_stop
daemon_start a || fail "the daemon of edge-a did not start"
daemon_start b || fail "the daemon of edge-b did not start"
start_counter "$ID" --mib 32 --dirty-mib-s 4
hosts_shape 20mbit

phase_on() { ctl "$1" status --json 2>/dev/null | jq -r --arg c "$ID" '[.migrations[] | select(.container == $c and .result == "running")][-1].phase // ""'; }
in_postcopy_on() { [ "$(phase_on "$1")" = postcopy ]; }
copy_on() { [ -n "$(container_state "$(host_runc_root "$1")" "$ID")" ]; }
# into_postcopy FROM TO NAME: starts a post-copy of ID from FROM to TO in the
# background (report in NAME.json, ctl's pid in ctl_pid) and returns once it
# is in post-copy, with a copy running at TO.
into_postcopy() {
  local from=$1 to=$2 name=$3
  ctl "$from" migrate "$ID" --to "$(host_node "$to")" --method postcopy --json \
    >"$MIG_WORK/$name.json" 2>"$MIG_WORK/$name.err" &
  ctl_pid=$!
  wait_for in_postcopy_on "$from" 60 || fail "the $name migration never reached post-copy (phase '$(phase_on "$from")')"
  copy_on "$to" || fail "no copy of $ID runs on $(host_node "$to") during post-copy"
}

# --- 1: cut, and back in time ---------------------------------------------
boot=$(field a "$ID" boot)
last=$(field a "$ID" counter)
into_postcopy a b recovered
log "post-copy under way: cutting the link for 7 s (I/O timeout 3 s, recovery window $((RECOVER_MS / 1000)) s)"
link_down
sleep 7
link_up
log "the link is back"
rc=0
wait "$ctl_pid" || rc=$?
out=$(cat "$MIG_WORK/recovered.json")
[ "$rc" = 0 ] || fail "post-copy did not recover from a cut shorter than its window (exit $rc): $out $(cat "$MIG_WORK/recovered.err")"
assert_eq ok "$(json_get "$out" .result)" "result with the link cut and back mid-post-copy"
log "recovered: $(jq -c '{downtime_ms, postcopy_ms, link_recoveries, link_down_ms, pages_faulted, pages_pushed, fault_max_ms}' <<<"$out")"
assert_ge "$(json_get "$out" .link_recoveries)" 1 "page links opened again, in the report"
# (Counted from when the source noticed, 3 s into the 7 s cut.)
jq -e '.link_down_ms >= 3000' <<<"$out" >/dev/null || fail "the report does not show the pages stopping for the cut: $out"
assert_running b "$ID"
assert_alive_on b "$ID" "$boot" "$last"
assert_absent a "$ID"

# --- 2: cut for longer than the window --------------------------------------
boot=$(field b "$ID" boot)
into_postcopy b a cut
log "post-copy under way: cutting the link until the migration gives up"
link_down
rc=0
wait "$ctl_pid" || rc=$?
out=$(cat "$MIG_WORK/cut.json")
[ "$rc" != 0 ] || fail "post-copy succeeded across a link cut for longer than its window: $out"
assert_eq rolled_back "$(json_get "$out" .result)" "result with the link cut past the recovery window"
log "reported error: $(json_get "$out" .error)"
assert_contains "$(json_get "$out" .error)" "did not come back within $RECOVER_MS ms" "the reported error"
assert_running b "$ID"
frozen_at=$(field b "$ID" counter)
assert_alive_on b "$ID" "$boot" "$frozen_at"
gone_from_a() { ! copy_on a; }
wait_for gone_from_a 30 || fail "edge-a kept its copy of $ID after the cut"
lazy_left=$(pgrep -fc "criu lazy-pages.*$MIG_WORK/a/" || true)
assert_eq 0 "$lazy_left" "criu lazy-pages processes left on edge-a"

link_up
hosts_shape 1gbit
last=$(field b "$ID" counter)
migrate_ok b a "$ID" postcopy >/dev/null
assert_running a "$ID"
assert_alive_on a "$ID" "$boot" "$last"
assert_absent b "$ID"
pass
