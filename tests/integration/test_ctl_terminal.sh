#!/usr/bin/env bash
# `migratectl migrate` on a terminal (a pty from util-linux's script): it
# names the migration first, then shows each phase and, while the images
# cross a link shaped to 20 Mbit, the bytes sent of the total, the rate and
# the time left. Ctrl-C asks what to do:
#   Enter: it follows on; then Ctrl-C and d: it detaches (exit 0) while the
#          migration goes on, and the container arrives at edge-b, counting;
#   a:     the daemon aborts the migration: exit 3, the report says
#          rolled_back, and the container counts on at the source.
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"

ID=mc-term

require_root_tools
command -v script >/dev/null 2>&1 || skip "script is not installed (Debian package bsdutils)"

# on_terminal X NAME ARGS...: runs migratectl ARGS against X's daemon on a
# pty in the background; what the pty shows goes to WORK/NAME.out, what is
# written to fd 7 reaches it as typed, and WORK/NAME.rc gets its status.
on_terminal() {
  local x=$1 name=$2; shift 2
  local id=$MIG_TLS/controller cmd
  # exec: whatever shell script runs ($SHELL, dash when unset) must not stay
  # in the pty's foreground group, where Ctrl-C would kill it instead.
  cmd=exec\ $(printf '%q ' nsenter --net="/run/netns/$(host_ns "$x")" "$MIG_BUILD/migratectl" \
    --daemon "$(host_addr "$x"):$MIG_TCP_PORT" --ca "$MIG_TLS/ca.crt" --cert "$id.crt" --key "$id.key" "$@")
  rm -f "$TEST_WORK/$name.in" "$TEST_WORK/$name.rc"
  mkfifo "$TEST_WORK/$name.in"
  (
    rc=0
    script -qfec "$cmd" /dev/null <"$TEST_WORK/$name.in" >"$TEST_WORK/$name.out" 2>&1 || rc=$?
    echo "$rc" >"$TEST_WORK/$name.rc"
  ) &
  exec 7>"$TEST_WORK/$name.in"
}
shows() { grep -qF -- "$2" "$TEST_WORK/$1.out"; }
# The in-place line of the final transfer: bytes of the total, rate, time left.
transfer_line() {
  tr '\r' '\n' <"$TEST_WORK/$1.out" |
    grep -E 'transfer +[0-9.]+ [KMG]?i?B of [0-9.]+ [KMG]iB \([0-9]+%\), [0-9.]+ [KMG]?i?B/s, [0-9]+ s left' | tail -n 1
}
transferring() { [ -n "$(transfer_line "$1")" ]; }
ended() { [ -s "$TEST_WORK/$1.rc" ]; }
type_keys() { printf "$1" >&7; }  # printf's escapes: \003 is Ctrl-C
report_of() { ctl "$1" status "$2" --json | jq -c '.migrations[0] // empty'; }
done_on() { [ "$(json_get "$(report_of "$1" "$2")" .result)" != running ]; }
screen() { tr '\r' '\n' <"$TEST_WORK/$1.out" | tail -n "${2:-15}"; }

setup_hosts_and_daemons
start_counter "$ID" --mib 32 --dirty-mib-s 1
on_exit hosts_unshape
hosts_shape 20mbit

# --- Enter follows on, then d detaches ---------------------------------------------
on_terminal a detach migrate "$ID" --to edge-b
wait_for transferring detach 30 || fail "no transfer line with bytes of the total, rate and time left: $(screen detach)"
mid=$(sed -n 's/^migration \(m-[0-9a-f]*\): .*/\1/p' "$TEST_WORK/detach.out" | head -n 1)
[ -n "$mid" ] || fail "the migration's id was not shown first: $(screen detach)"
shows detach "migration $mid: $ID to edge-b, cold (Ctrl-C: abort or detach)" || fail "first line: $(screen detach)"
line=$(transfer_line detach | sed 's/\x1b\[K//; s/.*transfer *//')
type_keys '\003'
wait_for shows detach "[a]bort it" 10 || fail "Ctrl-C asked nothing: $(screen detach)"
type_keys '\n'
wait_for shows detach "following on" 10 || fail "Enter did not follow on: $(screen detach)"
! ended detach || fail "migratectl ended after Enter: $(screen detach)"
type_keys '\003'
sleep 0.5
type_keys 'd\n'
wait_for ended detach 10 || fail "migratectl did not detach: $(screen detach)"
assert_eq 0 "$(cat "$TEST_WORK/detach.rc")" "exit status after detaching"
shows detach "detached: $mid goes on" || fail "no word of the detach: $(screen detach)"
assert_eq running "$(json_get "$(report_of a "$mid")" .result)" "the migration right after the detach"
exec 7>&-
wait_for done_on a "$mid" 60 || fail "the detached migration never finished"
assert_eq ok "$(json_get "$(report_of a "$mid")" .result)" "the detached migration's result"
assert_running b "$ID"
log "detached from $mid during the transfer ($line); it finished ok"

# --- a aborts --------------------------------------------------------------------
boot=$(field b "$ID" boot)
last=$(field b "$ID" counter)
on_terminal b abort migrate "$ID" --to edge-a
wait_for transferring abort 30 || fail "no transfer progress: $(screen abort)"
type_keys '\003'
wait_for shows abort "[a]bort it" 10 || fail "Ctrl-C asked nothing: $(screen abort)"
type_keys 'a\n'
wait_for ended abort 60 || fail "migratectl did not end after the abort: $(screen abort)"
exec 7>&-
assert_eq 3 "$(cat "$TEST_WORK/abort.rc")" "exit status of the aborted migration"
shows abort "asking the daemon to abort" || fail "no word of the abort: $(screen abort)"
shows abort "rolled_back" || fail "the report does not say rolled_back: $(screen abort)"
assert_absent a "$ID"
assert_alive_on b "$ID" "$boot" "$last"
log "aborted with Ctrl-C, a: rolled back, the counter goes on at edge-b"
pass
