#!/usr/bin/env bash
# Post-copy of a live runc container on one host through the daemon's own
# pieces (tests/tools/postcopy_here): runc_runtime's lazy checkpoint hands
# CRIU a socketpair through runc (ps-socket in the CRIU configuration file,
# the descriptor inherited by `criu swrk`), the frozen container keeps its
# memory, pages/dump_page_client fetches every page from the dump's page
# server for the source's end of the page link (transport/page_link, TLS on
# loopback between two nodes of a fleet), whose destination end pulls
# every page in the background (pages/page_pull, in push_order) into the
# destination's pages/page_store and fetches a fault's pages as urgent,
# and pages/serve_lazy_pages answers `criu lazy-pages` from the store for
# `runc restore --lazy-pages` of a copy from the same images.
#  1. moved: the copy is the same process (boot id), counts on, keeps its
#     TCP connection over loopback, verifies every page after the last one
#     arrived; every page lazy-pages took was either brought ahead or
#     fetched for a fault, every one of them crossed the link, and the
#     store holds nothing at the end; the images hold no memory; the frozen
#     original is gone; one copy runs.
#  2. cut after 2 000 pages: the copy is removed and the original, frozen
#     whole all along, runs on with its state (the same boot, counting on
#     from where it stopped, no page corrupt).
# docs/design.md, "Post-copy".
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"

require_root_tools
criu check --feature uffd-noncoop >/dev/null 2>&1 || skip "this kernel has no non-cooperative userfaultfd"
[ -x "$MIGRATED_BUILD_DIR/postcopy_here" ] || fail "$MIGRATED_BUILD_DIR/postcopy_here is not built"

MIB=64
TEST_WORK=$(mktemp -d "/tmp/migrated-$TEST_NAME.XXXXXX")
on_exit rm -rf "$TEST_WORK"
ROOT=$TEST_WORK/runc
CGROUP_PARENT=migrated-postcopy-$$
mkdir -p "$ROOT"
make_fleet "$TEST_WORK/tls" edge-a edge-b
cleanup_containers() {
  local id
  pkill -9 -f "postcopy_here --root $ROOT" 2>/dev/null || true
  for id in pc-src pc-copy; do
    remove_container "$ROOT" "$id"
    remove_cgroups "$CGROUP_PARENT" "$id"
  done
}
on_exit cleanup_containers
show_logs() {
  [ "${TEST_FAILED:-1}" = 1 ] || return 0
  local f
  for f in "$TEST_WORK"/work/dump/dump.log "$TEST_WORK"/work/restore/lazy-pages.log "$TEST_WORK"/work/restore/restore.log; do
    [ -f "$f" ] && { echo "--- $f (errors)"; grep -i 'error\|warn' "$f" | tail -n 15; }
  done
  [ -f "$TEST_WORK/tool.err" ] && { echo "--- postcopy_here"; cat "$TEST_WORK/tool.err"; }
  return 0
}
on_exit show_logs

field_of() { status_field "$TEST_WORK/$1" "$2"; }
state_of() { container_state "$ROOT" "$1"; }

# postcopy FAIL_AFTER PUSH_MIB_S: starts pc-src, moves it to pc-copy
# through the tool (FAIL_AFTER 0: never cut), the push paced at
# PUSH_MIB_S. Sets boot, before, tool_out, tool_rc.
postcopy() {
  local fail_after=$1 push_rate=$2
  cleanup_containers
  rm -rf "$TEST_WORK/src" "$TEST_WORK/copy" "$TEST_WORK/img" "$TEST_WORK/work"
  mkdir -p "$TEST_WORK/img" "$TEST_WORK/work"
  make_bundle "$TEST_WORK/src" pc-src "$CGROUP_PARENT" -- /bin/memcounter --mib "$MIB" --state /data \
    --tick-ms 50 --dirty-mib-s 16
  start_container "$ROOT" "$TEST_WORK/src" pc-src || fail "pc-src did not start"
  reached() { [ "$(field_of src counter 2>/dev/null || echo 0)" -ge "$1" ]; }
  wait_for reached 10 20 || fail "pc-src never counted"
  boot=$(field_of src boot)
  log "pc-src counting: boot $boot, counter $(field_of src counter)"

  coproc TOOL { "$MIGRATED_BUILD_DIR/postcopy_here" --root "$ROOT" --storage "$TEST_WORK/storage" \
    --container pc-src --as pc-copy --bundle "$TEST_WORK/copy" --images "$TEST_WORK/img" \
    --work "$TEST_WORK/work" --tls "$TEST_WORK/tls" --fail-after-pages "$fail_after" --push-mib-s "$push_rate" 2>"$TEST_WORK/tool.err"; }
  # Our own copies of its pipes and pid: bash drops the coproc's once it exits.
  local tool_pid=$TOOL_PID from_tool to_tool line=""
  exec {from_tool}<&"${TOOL[0]}" {to_tool}>&"${TOOL[1]}"
  read -r -t 60 line <&"$from_tool" || true
  [ "$line" = ready ] || fail "the lazy checkpoint did not get ready: $(cat "$TEST_WORK/tool.err")"
  # Frozen while its pages are served (CRIU holds its tasks stopped).
  before=$(field_of src counter)
  sleep 0.5
  assert_eq "$before" "$(field_of src counter)" "pc-src's counter while its pages are served"
  local images_kib
  images_kib=$(du -sk "$TEST_WORK/img" | awk '{print $1}')
  log "lazy checkpoint ready: images $images_kib KiB for $MIB MiB, counter frozen at $before"
  [ "$images_kib" -lt $((MIB * 1024 / 8)) ] || fail "the lazy dump wrote memory: $images_kib KiB of images"
  # The copy's bundle: the frozen rootfs (the files its process has open), its own cgroup.
  cp -a "$TEST_WORK/src" "$TEST_WORK/copy"
  jq --arg cg "/$CGROUP_PARENT/pc-copy" '.linux.cgroupsPath = $cg' "$TEST_WORK/src/config.json" \
    >"$TEST_WORK/copy/config.json"
  echo go >&"$to_tool"
  tool_out=""
  read -r -t 120 tool_out <&"$from_tool" || log "no outcome line (read: $?)"
  tool_rc=0
  wait "$tool_pid" || tool_rc=$?
  exec {from_tool}<&- {to_tool}>&-
  log "postcopy_here: rc $tool_rc: $tool_out"
}

# --- 1. moved -------------------------------------------------------------------
# The background answers paced at 16 MiB/s, as over a slow link: the
# process faults on pages before they arrive (its verifier reads every
# page each pass).
postcopy 0 16
assert_eq 0 "$tool_rc" "postcopy_here exit code ($(cat "$TEST_WORK/tool.err"))"
assert_contains "$tool_out" "moved" "postcopy_here's outcome"
transferred=$(grep -o 'UFFD transferred pages: ([0-9]*/[0-9]*)' "$TEST_WORK/work/restore/lazy-pages.log" | tail -n 1)
log "lazy-pages $transferred"
done_pages=$(sed -E 's/.*\(([0-9]+)\/([0-9]+)\)/\1/' <<<"$transferred")
all_pages=$(sed -E 's/.*\(([0-9]+)\/([0-9]+)\)/\2/' <<<"$transferred")
assert_eq "$all_pages" "$done_pages" "pages transferred of those lazy-pages had to"
assert_ge "$all_pages" $((MIB * 256)) "pages transferred (at least the workload's memory)"
# "moved requests N pages N ... held N p50_ms X ...": the value after a key.
out_field() { awk -v k="$1" '{ for (i = 1; i < NF; i++) if ($i == k) print $(i + 1) }' <<<"$tool_out"; }
assert_eq "$all_pages" "$(out_field pages)" "pages the daemon served to lazy-pages"
assert_eq "$all_pages" $(($(out_field local) + $(out_field fetched))) \
  "pages served = pushed ahead and answered locally + fetched for faults"
assert_ge "$(out_field local)" 1 "pages pushed ahead and answered locally"
assert_ge "$(out_field faults)" 1 "faults fetched ahead of the background transfer"
assert_ge "$(out_field link_urgent)" "$(out_field fetches)" "urgent requests on the link (every fetch for lazy-pages)"
assert_eq "$(($(out_field pushed) + $(out_field fetched)))" "$(out_field link_pages)" \
  "pages that crossed the link = brought in the background + fetched"
assert_eq 0 "$(out_field held)" "pages still held by the destination's store at the end"
log "pushed $(out_field pushed) (stale $(out_field stale)), fetched $(out_field fetched) in $(out_field fetches) fetches, $(out_field faults) of them faults: p50 $(out_field p50_ms) ms, p99 $(out_field p99_ms) ms, max $(out_field max_ms) ms"
assert_eq running "$(state_of pc-copy)" "pc-copy"
assert_eq "" "$(state_of pc-src)" "pc-src after the move (removed)"
passes=$(field_of copy verified_passes)
passes_reach() { [ "$(field_of copy verified_passes)" -ge "$1" ]; }
wait_for passes_reach $((passes + 2)) 20 || fail "no two verified passes after the transfer"
assert_eq "$boot" "$(field_of copy boot)" "boot id of the copy (the same process)"
assert_eq 0 "$(field_of copy corrupt)" "corrupt pages in the copy"
assert_ge "$(field_of copy counter)" $((before + 1)) "the copy's counter after the move"
echoed=$(field_of copy net_echoed)
echoes_reach() { [ "$(field_of copy net_echoed)" -gt "$1" ]; }
wait_for echoes_reach "$echoed" 10 || fail "the copy's TCP connection over loopback is dead"
assert_eq 1 "$(field_of copy net_alive)" "the copy's connection"
log "moved: $(cat "$TEST_WORK/copy/rootfs/data/status")"

# --- 2. cut: the original runs on -------------------------------------------------
postcopy 2000 0
assert_eq 3 "$tool_rc" "postcopy_here exit code when cut ($(cat "$TEST_WORK/tool.err"))"
assert_contains "$tool_out" "rolled back" "postcopy_here's outcome"
assert_eq "" "$(state_of pc-copy)" "pc-copy after the cut (removed)"
assert_eq running "$(state_of pc-src)" "pc-src after the cut"
counts_on() { [ "$(field_of src counter)" -ge $((before + 3)) ]; }
wait_for counts_on 10 || fail "pc-src does not count on after the cut: $(cat "$TEST_WORK/src/rootfs/data/status")"
passes=$(field_of src verified_passes)
src_passes_reach() { [ "$(field_of src verified_passes)" -ge "$1" ]; }
wait_for src_passes_reach $((passes + 2)) 20 || fail "pc-src verifies no pages after the cut"
assert_eq "$boot" "$(field_of src boot)" "boot id of pc-src (the same process)"
assert_eq 0 "$(field_of src corrupt)" "corrupt pages in pc-src"
assert_eq 1 "$(field_of src net_alive)" "pc-src's connection"
log "rolled back: $(cat "$TEST_WORK/src/rootfs/data/status")"
pass
