#!/usr/bin/env bash
# Post-copy's two ends with real CRIU on this machine, each with a live
# 64 MiB memcounter in its own PID namespace restored at once with
# `criu restore --lazy-pages` while `criu lazy-pages` fetches every page on
# demand and in the background:
#  1. from CRIU's own page server: dumped without its memory
#     (`criu dump --lazy-pages`; pages stay in the frozen process and CRIU
#     serves them), which works only with the project's CRIU
#     (scripts/criu/0003: the page server needed CAP_SYS_RESOURCE);
#  2. from the daemon's page server (daemon/pages/image_page_server, run by
#     tests/tools/serve_images) answering lazy-pages over a socketpair
#     (`--ps-socket`) from images on disk, as a destination will for the
#     pages it already holds.
# Each time: the restored process is the same one (boot id), counts on,
# verifies every page after the last one arrived, no page is corrupt, every
# page lazy-pages had to fetch arrived, and only one copy is left.
# docs/design.md, "Post-copy".
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"

[ "$(id -u)" = 0 ] || skip "needs root (CRIU)"
for tool in criu unshare python3; do
  command -v "$tool" >/dev/null 2>&1 || skip "$tool is not installed"
done
criu check --feature uffd-noncoop >/dev/null 2>&1 || skip "this kernel has no non-cooperative userfaultfd"
for bin in memcounter serve_images; do
  [ -x "$MIGRATED_BUILD_DIR/$bin" ] || fail "$MIGRATED_BUILD_DIR/$bin is not built"
done

MIB=64
PORT=$((27000 + $$ % 2000))
TEST_WORK=$(mktemp -d "/tmp/migrated-$TEST_NAME.XXXXXX")
on_exit rm -rf "$TEST_WORK"
STATE=$TEST_WORK/state
IMG=$TEST_WORK/img
status() { cat "$STATE/status"; }
value() { status | tr ' ' '\n' | awk -F= -v k="$1" '$1 == k { print $2 }'; }
pids_of_counter() { pgrep -f "^$MIGRATED_BUILD_DIR/memcounter --mib $MIB --state $STATE" || true; }
stop_all() {
  local p
  for p in $(pids_of_counter); do kill -9 "$p" 2>/dev/null || true; done
  pkill -9 -f "criu .*-D $IMG" 2>/dev/null || true
  pkill -9 -f "serve_images $IMG" 2>/dev/null || true
}
on_exit stop_all
show_logs() {
  [ "${TEST_FAILED:-1}" = 1 ] || return 0
  local f
  for f in dump lazy restore; do
    [ -f "$IMG/$f.log" ] && { echo "--- $f.log (errors)"; grep -i 'error\|warn' "$IMG/$f.log" | tail -n 15; }
  done
  [ -f "$TEST_WORK/serve.out" ] && { echo "--- serve_images"; cat "$TEST_WORK/serve.out"; }
  return 0
}
on_exit show_logs
ended() { ! kill -0 "$1" 2>/dev/null; }

# start_workload: a fresh memcounter, PID 1 of its own PID namespace (the
# restore recreates the namespace, so a copy cannot collide with a frozen
# original's PIDs). It inherits no descriptor beyond 0-2: a lock file a test
# runner holds (flock) would be held by the frozen original too, and the
# restored copy would wait for it forever. Sets pid, boot, before.
start_workload() {
  rm -rf "$STATE" "$IMG"
  mkdir "$STATE" "$IMG"
  (
    for fd in $(ls /proc/$BASHPID/fd); do
      [ "$fd" -gt 2 ] && eval "exec $fd>&-"
    done
    exec unshare --pid --fork setsid "$MIGRATED_BUILD_DIR/memcounter" --mib "$MIB" --state "$STATE" \
      --tick-ms 50 --dirty-mib-s 16 --no-net </dev/null >"$TEST_WORK/counter.out" 2>&1
  ) &
  wait_for test -s "$STATE/status" 10 || fail "memcounter did not start: $(cat "$TEST_WORK/counter.out")"
  sleep 1
  pid=$(pids_of_counter | tail -n 1)
  boot=$(value boot)
  before=$(value counter)
  log "counting: pid $pid, boot $boot, counter $before"
}

# check_restored HOW: lazy-pages fetched every page it had to, and the
# restored copy is the original, counting on, every page verified after.
check_restored() {
  local how=$1 transferred done_pages all_pages passes
  transferred=$(grep -o 'UFFD transferred pages: ([0-9]*/[0-9]*)' "$IMG/lazy.log" | tail -n 1)
  log "$how: lazy-pages $transferred"
  done_pages=$(sed -E 's/.*\(([0-9]+)\/([0-9]+)\)/\1/' <<<"$transferred")
  all_pages=$(sed -E 's/.*\(([0-9]+)\/([0-9]+)\)/\2/' <<<"$transferred")
  [ -n "$all_pages" ] || fail "$how: lazy-pages reported no transfer"
  assert_eq "$all_pages" "$done_pages" "$how: pages transferred of those to transfer"
  transferred_pages=$all_pages
  assert_ge "$all_pages" $((MIB * 256)) "$how: pages transferred (at least the workload's memory)"
  passes=$(value verified_passes)
  passes_reach() { [ "$(value verified_passes)" -ge "$1" ]; }
  wait_for passes_reach $((passes + 2)) 20 || fail "$how: no two verified passes after the transfer: $(status)"
  assert_eq "$boot" "$(value boot)" "$how: boot id (the same process)"
  assert_eq 0 "$(value corrupt)" "$how: corrupt pages"
  assert_ge "$(value counter)" $((before + 1)) "$how: counter after the restore"
  wait_for ended "$pid" 10 || fail "$how: the original (pid $pid) still runs"
  assert_eq 1 "$(pids_of_counter | wc -l)" "$how: memcounter processes"
  log "$how: restored: $(status)"
}

restore_lazily() {
  timeout 60 criu restore -D "$IMG" --lazy-pages -d -v4 -o restore.log || fail "$1: restore --lazy-pages failed"
}

# --- 1. CRIU's own page server, pages straight from the frozen process ---------
start_workload
criu dump -t "$pid" -D "$IMG" --lazy-pages --address 127.0.0.1 --port "$PORT" -v4 -o dump.log &
DUMP=$!
serving() { grep -qs 'Starting lazy pages server' "$IMG/dump.log"; }
wait_for serving 10 || fail "the dump's page server did not start"
images_kib=$(du -sk "$IMG" | awk '{print $1}')
log "criu page server: images without memory: $images_kib KiB for $MIB MiB"
[ "$images_kib" -lt $((MIB * 1024 / 8)) ] || fail "the lazy dump wrote memory: $images_kib KiB of images"
criu lazy-pages --page-server --address 127.0.0.1 --port "$PORT" -D "$IMG" -v4 -o lazy.log &
LAZY=$!
wait_for test -S "$IMG/lazy-pages.socket" 10 || fail "criu lazy-pages did not start"
restore_lazily "criu page server"
# Both CRIU processes end once every page has arrived.
wait_for ended "$LAZY" 60 || fail "criu lazy-pages still running after 60 s"
wait_for ended "$DUMP" 60 || fail "criu dump's page server still running after 60 s"
rc=0
wait "$LAZY" || rc=$?
assert_eq 0 "$rc" "criu lazy-pages exit code"
rc=0
wait "$DUMP" || rc=$?
assert_eq 0 "$rc" "criu dump --lazy-pages exit code (its page server)"
check_restored "criu page server"
stop_all

# --- 2. the daemon's page server, pages from images on disk ----------------------
start_workload
criu dump -t "$pid" -D "$IMG" -v4 -o dump.log || fail "dump failed"
wait_for ended "$pid" 10 || fail "the dumped original still runs"
# lazy-pages and serve_images on the two ends of one socketpair; the
# driver waits for both and records their exit codes.
cat >"$TEST_WORK/pair.py" <<'PY'
import socket, subprocess, sys
img, tool, work = sys.argv[1:4]
a, b = socket.socketpair()
lazy = subprocess.Popen(["criu", "lazy-pages", "--page-server", "--ps-socket", str(a.fileno()),
                         "-D", img, "-v4", "-o", "lazy.log"], pass_fds=[a.fileno()])
with open(work + "/serve.out", "w") as out:
    serve = subprocess.Popen([tool, img, str(b.fileno())], pass_fds=[b.fileno()], stdout=out, stderr=out)
a.close()
b.close()
codes = {"lazy": lazy.wait(timeout=120), "serve": serve.wait(timeout=120)}
with open(work + "/pair.rc", "w") as f:
    f.write("%d %d\n" % (codes["lazy"], codes["serve"]))
PY
python3 "$TEST_WORK/pair.py" "$IMG" "$MIGRATED_BUILD_DIR/serve_images" "$TEST_WORK" &
PAIR=$!
wait_for test -S "$IMG/lazy-pages.socket" 10 || fail "criu lazy-pages did not start"
restore_lazily "daemon page server"
wait_for ended "$PAIR" 60 || fail "lazy-pages and serve_images still running after 60 s"
wait "$PAIR" || fail "the socketpair driver failed"
read -r lazy_rc serve_rc <"$TEST_WORK/pair.rc"
assert_eq 0 "$lazy_rc" "criu lazy-pages exit code"
assert_eq 0 "$serve_rc" "serve_images exit code ($(cat "$TEST_WORK/serve.out"))"
served=$(cat "$TEST_WORK/serve.out")
log "daemon page server: $served"
check_restored "daemon page server"
served_pages=$(awk '{print $4}' <<<"$served")
assert_eq "$transferred_pages" "$served_pages" "pages the daemon's server sent (= pages lazy-pages transferred)"
pass
