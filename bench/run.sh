#!/usr/bin/env bash
# Benchmark of migrated against the seeds' way of moving a live container
# between two emulated edge hosts. For each scenario (workload size, how it
# dirties memory, link rate) and each method, a fresh memcounter container
# starts on host A and is moved once:
#   seeds-cold  runc checkpoint + rsync -a over ssh + runc restore on B (seed C)
#   seeds-warm  checkpoint --leave-running + rsync, then final checkpoint +
#               rsync delta against the warm copy + restore on B (seed D)
#   cold        migratectl migrate --method cold
#   precopy     migratectl migrate --method precopy
#   postcopy    migratectl migrate --method postcopy
#   hybrid      migratectl migrate --method hybrid
#   auto        migratectl migrate --method auto (the row says what it chose)
#   floor       runc checkpoint + runc restore on A, nothing sent
# It measures downtime, total time, bytes on the wire (veth counters of both
# ends; migrated's own bytes_wire too), the workload's longest pause seen
# from inside (max_gap_ms), and checks the container continued (same boot
# id, counter rising, two clean verification passes). Tables go to stdout
# and are appended to bench/RESULTS.md. With --sizes, every scenario runs
# at each size, and bench/plot.sh draws downtime against memory size for
# every method, one panel per scenario, into bench/downtime-vs-size.png
# (its numbers beside it in bench/downtime-vs-size.tsv).
set -euo pipefail
export LC_ALL=C

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SOURCE_DIR=$(cd "$BENCH_DIR/.." && pwd)
COMMAND_LINE="bench/run.sh$(if (($# > 0)); then printf ' %q' "$@"; fi)"

# The emulated hosts of the benchmark never share names, addresses' netns or
# cgroup parents with the integration tests (prefix "mig").
export MIG_NS_PREFIX=bench

# shellcheck source=scripts/lib/hosts.sh
source "$SOURCE_DIR/scripts/lib/hosts.sh"
# shellcheck source=scripts/lib/bundle.sh
source "$SOURCE_DIR/scripts/lib/bundle.sh"
# shellcheck source=scripts/lib/daemons.sh
source "$SOURCE_DIR/scripts/lib/daemons.sh"
# shellcheck source=bench/lib/common.sh
source "$BENCH_DIR/lib/common.sh"
# shellcheck source=bench/lib/setup.sh
source "$BENCH_DIR/lib/setup.sh"
# shellcheck source=bench/lib/seeds.sh
source "$BENCH_DIR/lib/seeds.sh"

ALL_METHODS=seeds-cold,seeds-warm,cold,precopy,postcopy,hybrid,auto,floor
BENCH_MIB=256
SIZES=
BENCH_DIRTY=8
BENCH_SETTLE_S=3
SCENARIOS=a,b,c
METHODS=$ALL_METHODS
LINK_OVERRIDE=
RESULTS_FILE=$BENCH_DIR/RESULTS.md
APPEND=1
KEEP_WORK=0
IMAGES_TMPFS=0
BUILD_DIR=${MIGRATED_BUILD_DIR:-$SOURCE_DIR/build}
WORK=

usage() {
  cat <<EOF
usage: bench/run.sh [options]     (as root)
  --quick              64 MiB workloads (all scenarios and methods): a few minutes
  --mib N              workload size in MiB (default $BENCH_MIB)
  --sizes LIST         a size sweep: every scenario at each size in MiB (e.g. 64,256,1024,2048),
                       then downtime against size as bench/downtime-vs-size.png
  --dirty-mib-s R      MiB/s the workload rewrites (default $BENCH_DIRTY)
  --scenarios LIST     any of a,b,c (default $SCENARIOS):
                         a  random content, whole pages rewritten, 1gbit
                         b  random content, whole pages rewritten, 100mbit
                         c  random content, a few bytes per page changed, 100mbit
  --link RATE          use RATE (tc syntax: 20mbit, 1gbit) for every scenario
  --methods LIST       any of $ALL_METHODS (default all)
  --cap-s S            the seeds' downtime cap in seconds (default $SEEDS_CAP_S)
  --settle-s S         seconds the workload runs before it is moved (default $BENCH_SETTLE_S)
  --results FILE       append the tables to FILE (default bench/RESULTS.md)
  --no-append          print only
  --keep-work          keep the work directory (logs, reports) after the run
  --images-tmpfs       every checkpoint image on a tmpfs under /dev/shm: the daemons'
                       (their 'images' key), the seeds' and the floor's
EOF
}

parse_args() {
  while [ $# -gt 0 ]; do
    case "$1" in
      --quick) BENCH_MIB=64 ;;
      --mib) BENCH_MIB=$2; shift ;;
      --sizes) SIZES=$2; shift ;;
      --dirty-mib-s) BENCH_DIRTY=$2; shift ;;
      --scenarios) SCENARIOS=$2; shift ;;
      --link) LINK_OVERRIDE=$2; shift ;;
      --methods) METHODS=$2; shift ;;
      --cap-s) SEEDS_CAP_S=$2; shift ;;
      --settle-s) BENCH_SETTLE_S=$2; shift ;;
      --results) RESULTS_FILE=$2; shift ;;
      --no-append) APPEND=0 ;;
      --keep-work) KEEP_WORK=1 ;;
      --images-tmpfs) IMAGES_TMPFS=1 ;;
      -h | --help) usage; exit 0 ;;
      *) usage >&2; exit 2 ;;
    esac
    shift
  done
  local s m
  for s in ${SCENARIOS//,/ }; do
    scenario_mode "$s" >/dev/null || { printf 'bench: unknown scenario %s\n' "$s" >&2; exit 2; }
  done
  for m in ${METHODS//,/ }; do
    [[ ",$ALL_METHODS," == *",$m,"* ]] || { printf 'bench: unknown method %s\n' "$m" >&2; exit 2; }
  done
  [[ "$BENCH_MIB" =~ ^[0-9]+$ && "$BENCH_DIRTY" =~ ^[0-9]+$ && "$SEEDS_CAP_S" =~ ^[0-9]+$ ]] \
    || { printf 'bench: --mib, --dirty-mib-s and --cap-s take whole numbers\n' >&2; exit 2; }
  [ -n "$SIZES" ] || SIZES=$BENCH_MIB
  [[ "$SIZES" =~ ^[0-9]+(,[0-9]+)*$ ]] || { printf 'bench: --sizes takes MiB as whole numbers, comma-separated\n' >&2; exit 2; }
  if [ -n "$LINK_OVERRIDE" ]; then tbf_burst "$LINK_OVERRIDE" >/dev/null || exit 2; fi
}

scenario_mode() {
  case "$1" in a | b) echo pages ;; c) echo bytes ;; *) return 1 ;; esac
}

scenario_link() {
  if [ -n "$LINK_OVERRIDE" ]; then echo "$LINK_OVERRIDE"; return; fi
  case "$1" in a) echo 1gbit ;; b | c) echo 100mbit ;; esac
}

scenario_title() {
  local what
  case "$(scenario_mode "$1")" in
    pages) what="whole pages rewritten" ;;
    bytes) what="a few bytes changed per page (--dirty-mode bytes)" ;;
  esac
  printf 'Scenario %s: %s MiB random content, %s MiB/s %s, link %s (tbf)\n' \
    "$1" "$BENCH_MIB" "$BENCH_DIRTY" "$what" "$(scenario_link "$1")"
}

# --- machine ------------------------------------------------------------------------

preflight() {
  [ "$(id -u)" = 0 ] || { printf 'bench: run as root (namespaces, runc, CRIU)\n' >&2; exit 1; }
  ensure_packages
  local tool
  for tool in ip nsenter runc criu jq tc rsync ssh ssh-keygen timeout; do
    command -v "$tool" >/dev/null 2>&1 || { printf 'bench: %s is not installed\n' "$tool" >&2; exit 1; }
  done
  [ -x "$BUSYBOX" ] || { printf 'bench: %s is missing (busybox-static)\n' "$BUSYBOX" >&2; exit 1; }
  criu check >/dev/null 2>&1 || {
    printf 'bench: criu check fails (%s); scripts/setup.sh installs a CRIU that works\n' \
      "$(criu check 2>&1 | tail -n 1)" >&2
    exit 1
  }
}

CONTAINERS=()
cleanup() {
  local rc=$? id
  trap - EXIT INT TERM
  set +e
  say "cleaning up"
  for id in "${CONTAINERS[@]}"; do drop_workload "$id"; done
  daemons_stop
  seeds_stop
  hosts_down
  [ -z "${MIG_IMAGES_ROOT:-}" ] || rm -rf "$MIG_IMAGES_ROOT"
  [ -z "${MIG_LAZY_ROOT:-}" ] || rm -rf "$MIG_LAZY_ROOT"
  if [ -n "$WORK" ]; then
    if [ "$KEEP_WORK" = 1 ]; then say "work directory kept: $WORK"; else rm -rf "$WORK"; fi
  fi
  exit "$rc"
}

# --- one measurement ------------------------------------------------------------------

# measure SCENARIO METHOD: one fresh workload moved once; appends a row.
measure() {
  local scen=$1 method=$2 id="bench-$1-$2" mode boot last ab0 ba0 ab1 ba1 t_end moved=0
  mode=$(scenario_mode "$scen")
  RES_STATUS=ok RES_DOWN='' RES_TOTAL='' RES_GAP='' RES_GAP_BEFORE='' RES_PHASES='{}' RES_REPORT=null
  RES_WIRE_AB='' RES_WIRE_BA='' RES_SWITCH_GAP='' RES_CAPPED=0 FAIL_REASON=''
  # Where the container runs after the move (the seeds' methods say).
  RES_DEST_ROOT=$(host_runc_root b)
  RES_DEST_BUNDLE=$(bench_bundle b "$id")
  CONTAINERS+=("$id")
  say "scenario $scen, $method: $BENCH_MIB MiB container $id on edge-a"
  if ! start_workload "$id" "$mode"; then
    RES_STATUS="FAILED: the workload did not start"
  else
    boot=$(bench_field a "$id" boot) || boot=
    last=$(bench_field a "$id" counter) || last=0
    RES_GAP_BEFORE=$(bench_field a "$id" max_gap_ms) || RES_GAP_BEFORE=
    wire_read ab0 ba0
    case "$method" in
      seeds-cold) seeds_cold "$id" && moved=1 ;;
      seeds-warm) seeds_warm "$id" && moved=1 ;;
      cold | precopy | postcopy | hybrid | auto) migrated_move "$id" "$method" && moved=1 ;;
      floor) seeds_floor "$id" && moved=1 ;;
    esac
    now_us t_end
    wire_read ab1 ba1
    RES_WIRE_AB=$((ab1 - ab0))
    RES_WIRE_BA=$((ba1 - ba0))
    if [ "$moved" = 1 ] &&
      verify_continued "$RES_DEST_ROOT" "$id" "$RES_DEST_BUNDLE" "$boot" "$last"; then
      RES_GAP=$(bundle_field "$RES_DEST_BUNDLE" max_gap_ms) || RES_GAP=
      RES_SWITCH_GAP=$(switch_gap "$RES_DEST_BUNDLE" "$t_end")
    elif [ "$RES_CAPPED" = 1 ]; then
      RES_STATUS="> cap (${SEEDS_CAP_S} s)"
    else
      RES_STATUS="FAILED: ${FAIL_REASON:-$method ended early (see the log above)}"
      RES_GAP=$(bundle_field "$RES_DEST_BUNDLE" max_gap_ms) || RES_GAP=
    fi
  fi
  say "  $RES_STATUS; downtime ${RES_DOWN:-?} ms, total ${RES_TOTAL:-?} ms, wire $((RES_WIRE_AB + RES_WIRE_BA)) B, max_gap ${RES_GAP:-?} ms (switch-over ${RES_SWITCH_GAP:-?} ms)"
  emit_row "$ROWS" "$scen" "$method"
  drop_workload "$id"
  seeds_clean "$id"
}

# --- output -----------------------------------------------------------------------------

render_scenario() {
  local scen=$1
  printf '### %s\n\n' "$(scenario_title "$scen")"
  jq -rs --arg s "$scen" --argjson cap_s "$SEEDS_CAP_S" \
    -f "$BENCH_DIR/lib/report.jq" \
    <(jq -c --arg s "$scen" --argjson mib "$BENCH_MIB" 'select(.scenario == $s and .mib == $mib)' "$ROWS")
  printf '\n'
}

run_header() {
  printf '## Run of %s\n\n' "$(date -u '+%Y-%m-%d %H:%M UTC')"
  printf -- '- command: %s\n' "\`$COMMAND_LINE\`"
  printf -- '- machine: %s cores (nproc), kernel %s, CRIU %s, %s, rsync %s, %s\n' \
    "$(nproc)" "$(uname -r)" "$(criu --version | awk '/^Version/ {print $2}')" \
    "$(runc --version | head -n 1)" "$(rsync --version | awk 'NR == 1 {print $3}')" \
    "$(ssh -V 2>&1 | cut -d, -f1)"
  printf -- '- binaries (build dir mtime): %s\n' "$BINARIES_INFO"
  printf -- '- fs.pipe-max-size %s; checkpoint images %s; lazy dumps on a tmpfs (lazy_images, as under systemd'"'"'s /run)\n' \
    "$(cat /proc/sys/fs/pipe-max-size)" \
    "$([ "$IMAGES_TMPFS" = 1 ] && echo "on a tmpfs (--images-tmpfs), as are the seeds' and the floor's" || echo "on disk")"
  printf -- '- load average (1 min) at the start %s, at the end %s: other work on the machine shares its cores\n' \
    "$LOAD_START" "$(cut -d' ' -f1 /proc/loadavg)"
  printf -- '- workload: memcounter --mib %s --dirty-mib-s %s --content random; moved %s s after its first ticks; seeds'"'"' downtime cap %s s\n\n' \
    "${SIZES//,/, }" "$BENCH_DIRTY" "$BENCH_SETTLE_S" "$SEEDS_CAP_S"
}

main() {
  parse_args "$@"
  preflight
  LOAD_START=$(cut -d' ' -f1 /proc/loadavg)
  WORK=$(mktemp -d /tmp/migrated-bench.XXXXXX)
  trap cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  mkdir -p "$WORK/reports"
  if [ "$IMAGES_TMPFS" = 1 ]; then
    MIG_IMAGES_ROOT=$(mktemp -d /dev/shm/migrated-bench-images.XXXXXX)
    export MIG_IMAGES_ROOT
  fi
  # The daemon's default lazy_images is under /run/migrated, a tmpfs where
  # systemd runs it; this machine's /run may be on its disk.
  MIG_LAZY_ROOT=$(mktemp -d /dev/shm/migrated-bench-lazy.XXXXXX)
  export MIG_LAZY_ROOT
  ROWS=$WORK/rows.jsonl
  : >"$ROWS"
  say "hosts $MIG_NS_A ($MIG_ADDR_A) and $MIG_NS_B ($MIG_ADDR_B); work dir $WORK"
  hosts_up
  start_daemons
  seeds_init "$WORK"
  local scen method out size
  for size in ${SIZES//,/ }; do
    BENCH_MIB=$size
    for scen in ${SCENARIOS//,/ }; do
      hosts_shape "$(scenario_link "$scen")"
      say "$(scenario_title "$scen")"
      for method in ${METHODS//,/ }; do
        measure "$scen" "$method"
      done
    done
  done
  out=$WORK/results.md
  {
    run_header
    for size in ${SIZES//,/ }; do
      BENCH_MIB=$size
      for scen in ${SCENARIOS//,/ }; do render_scenario "$scen"; done
    done
    if [[ "$SIZES" == *,* ]]; then
      SCENARIO_LINKS=$(for scen in ${SCENARIOS//,/ }; do printf '%s=%s\n' "$scen" "$(scenario_link "$scen")"; done) \
        bash "$BENCH_DIR/plot.sh" "$ROWS" "$BENCH_DIR/downtime-vs-size"
    fi
  } >"$out"
  printf '\n'
  cat "$out"
  if [ "$APPEND" = 1 ]; then
    [ -s "$RESULTS_FILE" ] || printf '# Benchmark results\n\nAppended by %s; see bench/README.md for what is measured.\n\n' "\`bench/run.sh\`" >"$RESULTS_FILE"
    cat "$out" >>"$RESULTS_FILE"
    say "appended to $RESULTS_FILE"
  fi
}

main "$@"
