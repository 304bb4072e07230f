#!/usr/bin/env bash
# CRIU's own post-copy works on this machine with the project's CRIU
# (scripts/criu/0003: its page server needed CAP_SYS_RESOURCE, which
# containers and sandboxes drop): a live 64 MiB memcounter in its own PID
# namespace is dumped without its memory (`criu dump --lazy-pages`, pages
# stay in the frozen process and CRIU serves them), restored at once with
# `criu restore --lazy-pages`, and `criu lazy-pages` fetches every page on
# demand and in the background. The images hold no memory; the restored
# process is the same one (boot id), counts on, and verifies every page
# after the last one arrived; the frozen original is gone. This is the
# path post-copy builds on (docs/design.md, "Post-copy").
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"

[ "$(id -u)" = 0 ] || skip "needs root (CRIU)"
command -v criu >/dev/null 2>&1 || skip "criu is not installed"
command -v unshare >/dev/null 2>&1 || skip "unshare is not installed"
criu check --feature uffd-noncoop >/dev/null 2>&1 || skip "this kernel has no non-cooperative userfaultfd"
[ -x "$MIGRATED_BUILD_DIR/memcounter" ] || fail "$MIGRATED_BUILD_DIR/memcounter is not built"

MIB=64
PORT=$((27000 + $$ % 2000))
TEST_WORK=$(mktemp -d "/tmp/migrated-$TEST_NAME.XXXXXX")
on_exit rm -rf "$TEST_WORK"
mkdir "$TEST_WORK/state" "$TEST_WORK/img"
status() { cat "$TEST_WORK/state/status"; }
value() { status | tr ' ' '\n' | awk -F= -v k="$1" '$1 == k { print $2 }'; }
pids_of_counter() { pgrep -f "^$MIGRATED_BUILD_DIR/memcounter --mib $MIB --state $TEST_WORK/state" || true; }
stop_all() {
  local p
  for p in $(pids_of_counter); do kill -9 "$p" 2>/dev/null || true; done
  pkill -9 -f "criu .*-D $TEST_WORK/img" 2>/dev/null || true
}
on_exit stop_all
show_logs() {
  [ "${TEST_FAILED:-1}" = 1 ] || return 0
  local f
  for f in dump lazy restore; do
    [ -f "$TEST_WORK/img/$f.log" ] && { echo "--- $f.log (errors)"; grep -i 'error\|warn' "$TEST_WORK/img/$f.log" | tail -n 15; }
  done
  return 0
}
on_exit show_logs

# The workload: PID 1 of its own PID namespace (the restore recreates the
# namespace, so the new copy cannot collide with the frozen one's PIDs).
# It inherits no descriptor beyond 0-2: a lock file a test runner holds
# (flock) would be held by the frozen original too, and the restored copy
# would wait for it forever.
(
  for fd in $(ls /proc/$BASHPID/fd); do
    [ "$fd" -gt 2 ] && eval "exec $fd>&-"
  done
  exec unshare --pid --fork setsid "$MIGRATED_BUILD_DIR/memcounter" --mib "$MIB" --state "$TEST_WORK/state" \
    --tick-ms 50 --dirty-mib-s 16 --no-net </dev/null >"$TEST_WORK/counter.out" 2>&1
) &
wait_for test -s "$TEST_WORK/state/status" 10 || fail "memcounter did not start: $(cat "$TEST_WORK/counter.out")"
sleep 1
pid=$(pids_of_counter | tail -n 1)
boot=$(value boot)
before=$(value counter)
log "counting: pid $pid, boot $boot, counter $before"

criu dump -t "$pid" -D "$TEST_WORK/img" --lazy-pages --address 127.0.0.1 --port "$PORT" \
  -v4 -o dump.log &
DUMP=$!
serving() { grep -qs 'Starting lazy pages server' "$TEST_WORK/img/dump.log"; }
wait_for serving 10 || fail "the dump's page server did not start"
images_kib=$(du -sk "$TEST_WORK/img" | awk '{print $1}')
log "images without memory: $images_kib KiB for $MIB MiB"
[ "$images_kib" -lt $((MIB * 1024 / 8)) ] || fail "the lazy dump wrote memory: $images_kib KiB of images"

criu lazy-pages --page-server --address 127.0.0.1 --port "$PORT" -D "$TEST_WORK/img" -v4 -o lazy.log &
LAZY=$!
wait_for test -S "$TEST_WORK/img/lazy-pages.socket" 10 || fail "criu lazy-pages did not start"
timeout 60 criu restore -D "$TEST_WORK/img" --lazy-pages -d -v4 -o restore.log || fail "restore --lazy-pages failed"

# Both CRIU processes end once every page has arrived.
ended() { ! kill -0 "$1" 2>/dev/null; }
wait_for ended "$LAZY" 60 || fail "criu lazy-pages still running after 60 s"
wait_for ended "$DUMP" 60 || fail "criu dump's page server still running after 60 s"
rc=0
wait "$LAZY" || rc=$?
assert_eq 0 "$rc" "criu lazy-pages exit code"
rc=0
wait "$DUMP" || rc=$?
assert_eq 0 "$rc" "criu dump --lazy-pages exit code (its page server)"
transferred=$(grep -o 'UFFD transferred pages: ([0-9]*/[0-9]*)' "$TEST_WORK/img/lazy.log" | tail -n 1)
log "lazy-pages: $transferred"
done_pages=$(sed -E 's/.*\(([0-9]+)\/([0-9]+)\)/\1/' <<<"$transferred")
all_pages=$(sed -E 's/.*\(([0-9]+)\/([0-9]+)\)/\2/' <<<"$transferred")
[ -n "$all_pages" ] || fail "lazy-pages reported no transfer"
assert_eq "$all_pages" "$done_pages" "pages transferred of those to transfer"
assert_ge "$all_pages" $((MIB * 256)) "pages transferred (at least the workload's memory)"

# Every page verified after the last page arrived: two more full passes.
passes=$(value verified_passes)
passes_reach() { [ "$(value verified_passes)" -ge "$1" ]; }
wait_for passes_reach $((passes + 2)) 20 || fail "no two verified passes after the transfer: $(status)"
assert_eq "$boot" "$(value boot)" "boot id (the same process)"
assert_eq 0 "$(value corrupt)" "corrupt pages"
assert_ge "$(value counter)" $((before + 1)) "counter after the restore"
assert_eq 1 "$(pids_of_counter | wc -l)" "memcounter processes (the frozen original is gone)"
log "restored: $(status)"
pass
