#!/usr/bin/env bash
# Benchmark of migrated's Docker backend against the seeds' way of moving a
# Docker container between two emulated edge hosts, each with its own
# engine (scripts/lib/docker.sh). For each method a fresh memcounter
# container starts on engine A and is moved (or checkpointed and started
# again) once:
#   seeds-docker  docker checkpoint create + rsync over ssh + docker create
#                 on B + checkpoint placed + docker start --checkpoint (seed E)
#   cold          migratectl migrate --method cold
#   precopy       migratectl migrate --method precopy
#   floor-api     docker checkpoint create + docker start --checkpoint on A
#   floor-runc    runc checkpoint under A's runc root + docker start
#                 --checkpoint on A (migrated's dump path), nothing sent
# It measures downtime, total time, bytes on the wire (veth counters; the
# report's bytes_wire too), the workload's longest pause (max_gap_ms), and
# checks the container continued (same boot id, counter rising, two clean
# verification passes). The table goes to stdout and bench/RESULTS.md.
set -euo pipefail
export LC_ALL=C

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SOURCE_DIR=$(cd "$BENCH_DIR/.." && pwd)
COMMAND_LINE="bench/docker.sh$(if (($# > 0)); then printf ' %q' "$@"; fi)"

# Own hosts, engines, data roots and cgroup parents: never the tests' (mig)
# nor bench/run.sh's (bench).
export MIG_NS_PREFIX=benchd

# shellcheck source=scripts/lib/hosts.sh
source "$SOURCE_DIR/scripts/lib/hosts.sh"
# shellcheck source=scripts/lib/bundle.sh
source "$SOURCE_DIR/scripts/lib/bundle.sh"
# shellcheck source=scripts/lib/daemons.sh
source "$SOURCE_DIR/scripts/lib/daemons.sh"
# shellcheck source=scripts/lib/docker.sh
source "$SOURCE_DIR/scripts/lib/docker.sh"
# shellcheck source=bench/lib/common.sh
source "$BENCH_DIR/lib/common.sh"
# shellcheck source=bench/lib/setup.sh
source "$BENCH_DIR/lib/setup.sh"
# shellcheck source=bench/lib/seeds.sh
source "$BENCH_DIR/lib/seeds.sh"
# shellcheck source=bench/lib/docker_methods.sh
source "$BENCH_DIR/lib/docker_methods.sh"

ALL_METHODS=seeds-docker,cold,precopy,floor-api,floor-runc
BENCH_MIB=256
BENCH_DIRTY=8
BENCH_SETTLE_S=3
LINK=1gbit
METHODS=$ALL_METHODS
RESULTS_FILE=$BENCH_DIR/RESULTS.md
APPEND=1
KEEP_WORK=0
WAIT_IDLE=1
BUILD_DIR=${MIGRATED_BUILD_DIR:-$SOURCE_DIR/build}
WORK=
# The Docker backend in both daemons' configurations (write_config).
MIG_DOCKER=1

usage() {
  cat <<EOF
usage: bench/docker.sh [options]     (as root)
  --mib N              workload size in MiB (default $BENCH_MIB)
  --dirty-mib-s R      MiB/s the workload rewrites (default $BENCH_DIRTY)
  --link RATE          link rate (tc syntax: 100mbit, 1gbit; default $LINK)
  --no-image           engine B lacks the image before each move (migrated
                       streams it; the seeds' way sends docker save over ssh)
  --methods LIST       any of $ALL_METHODS (default all)
  --cap-s S            the seeds' downtime cap in seconds (default $SEEDS_CAP_S)
  --settle-s S         seconds the workload runs before it is moved (default $BENCH_SETTLE_S)
  --results FILE       append the table to FILE (default bench/RESULTS.md)
  --no-append          print only
  --no-wait            do not wait for a running test suite or compiler
                       (ctest, scripts/test.sh, cc1plus) to end before each method
  --keep-work          keep the work directory (logs, reports) after the run
EOF
}

parse_args() {
  while [ $# -gt 0 ]; do
    case "$1" in
      --mib) BENCH_MIB=$2; shift ;;
      --dirty-mib-s) BENCH_DIRTY=$2; shift ;;
      --link) LINK=$2; shift ;;
      --no-image) DK_IMAGE_ON_B=0 ;;
      --methods) METHODS=$2; shift ;;
      --cap-s) SEEDS_CAP_S=$2; shift ;;
      --settle-s) BENCH_SETTLE_S=$2; shift ;;
      --results) RESULTS_FILE=$2; shift ;;
      --no-append) APPEND=0 ;;
      --no-wait) WAIT_IDLE=0 ;;
      --keep-work) KEEP_WORK=1 ;;
      -h | --help) usage; exit 0 ;;
      *) usage >&2; exit 2 ;;
    esac
    shift
  done
  local m
  for m in ${METHODS//,/ }; do
    [[ ",$ALL_METHODS," == *",$m,"* ]] || { printf 'bench: unknown method %s\n' "$m" >&2; exit 2; }
  done
  [[ "$BENCH_MIB" =~ ^[0-9]+$ && "$BENCH_DIRTY" =~ ^[0-9]+$ && "$SEEDS_CAP_S" =~ ^[0-9]+$ ]] \
    || { printf 'bench: --mib, --dirty-mib-s and --cap-s take whole numbers\n' >&2; exit 2; }
  tbf_burst "$LINK" >/dev/null || exit 2
}

preflight() {
  [ "$(id -u)" = 0 ] || { printf 'bench: run as root (namespaces, Docker, runc, CRIU)\n' >&2; exit 1; }
  ensure_packages
  local tool
  for tool in ip nsenter runc criu jq tc rsync ssh ssh-keygen timeout docker dockerd; do
    command -v "$tool" >/dev/null 2>&1 || { printf 'bench: %s is not installed\n' "$tool" >&2; exit 1; }
  done
  [ -x "$BUSYBOX" ] || { printf 'bench: %s is missing (busybox-static)\n' "$BUSYBOX" >&2; exit 1; }
  criu check >/dev/null 2>&1 || {
    printf 'bench: criu check fails (%s); scripts/setup.sh installs a CRIU that works\n' \
      "$(criu check 2>&1 | tail -n 1)" >&2
    exit 1
  }
}

ENGINES_UP=0
cleanup() {
  local rc=$? x
  trap - EXIT INT TERM
  set +e
  say "cleaning up"
  busy_stop
  daemons_stop
  if [ "$ENGINES_UP" = 1 ]; then
    if [ -n "$WORK" ] && [ "$KEEP_WORK" = 1 ]; then
      for x in a b; do cp "$MIG_DOCKER_RUN/$(docker_name "$x").log" "$WORK/dockerd-$x.log" 2>/dev/null; done
    fi
    docker_engines_down
    # The engines' trees are this run's own (prefix benchd); nothing of them
    # stays mounted once the engines are gone.
    for x in a b; do
      if ! grep -qF " $(docker_data_root "$x")/" /proc/self/mountinfo; then rm -rf "$(docker_data_root "$x")"; fi
      if ! grep -qF " $MIG_DOCKER_RUN/$(docker_name "$x")/" /proc/self/mountinfo; then
        rm -rf "${MIG_DOCKER_RUN:?}/$(docker_name "$x")"
      fi
      rm -f "$MIG_DOCKER_RUN/$(docker_name "$x")".{json,log,sock}
    done
  fi
  rm -rf "$DK_STAGE"
  seeds_stop
  hosts_down
  if [ -n "$WORK" ]; then
    if [ "$KEEP_WORK" = 1 ]; then say "work directory kept: $WORK"; else rm -rf "$WORK"; fi
  fi
  exit "$rc"
}

# --- one measurement ------------------------------------------------------------------

# measure METHOD INDEX: one fresh container moved once; appends a row.
measure() {
  local method=$1 name="benchd-$1" boot last ab0 ba0 ab1 ba1 t_end moved=0 data
  RES_STATUS=ok RES_DOWN='' RES_TOTAL='' RES_GAP='' RES_GAP_BEFORE='' RES_PHASES='{}' RES_REPORT=null
  RES_WIRE_AB='' RES_WIRE_BA='' RES_SWITCH_GAP='' RES_CAPPED=0 FAIL_REASON='' RES_HOST=b
  DK_OPTS=(--network "$MIG_DOCKER_NET" --ip "172.30.0.$((20 + $2))")
  DK_CMD=(/bin/memcounter --mib "$BENCH_MIB" --dirty-mib-s "$BENCH_DIRTY" --content random --state /data)
  [ "$WAIT_IDLE" = 0 ] || wait_idle
  say "$method: $BENCH_MIB MiB container $name on engine A"
  if ! dk_start_workload "$name"; then
    RES_STATUS="FAILED: the workload did not start ($FAIL_REASON)"
  else
    boot=$(dk_field a "$name" boot) || boot=
    last=$(dk_field a "$name" counter) || last=0
    RES_GAP_BEFORE=$(dk_field a "$name" max_gap_ms) || RES_GAP_BEFORE=
    wire_read ab0 ba0
    case "$method" in
      seeds-docker) dk_seeds "$name" && moved=1 ;;
      cold | precopy) RES_HOST=b; migrated_move "$name" "$method" && moved=1 ;;
      floor-api) dk_floor_api "$name" && moved=1 ;;
      floor-runc) dk_floor_runc "$name" && moved=1 ;;
    esac
    now_us t_end
    wire_read ab1 ba1
    RES_WIRE_AB=$((ab1 - ab0))
    RES_WIRE_BA=$((ba1 - ba0))
    if [ "$moved" = 1 ] && dk_verify "$RES_HOST" "$name" "$boot" "$last"; then
      data=$(dk_data "$RES_HOST" "$name")
      RES_GAP=$(data_field "$data" max_gap_ms) || RES_GAP=
      RES_SWITCH_GAP=$(ticks_gap "$data" "$t_end")
    elif [ "$RES_CAPPED" = 1 ]; then
      RES_STATUS="> cap (${SEEDS_CAP_S} s)"
    else
      RES_STATUS="FAILED: ${FAIL_REASON:-$method ended early (see the log above)}"
      RES_GAP=$(dk_field "$RES_HOST" "$name" max_gap_ms) || RES_GAP=
    fi
  fi
  say "  $RES_STATUS; downtime ${RES_DOWN:-?} ms, total ${RES_TOTAL:-?} ms, wire $((RES_WIRE_AB + RES_WIRE_BA)) B, max_gap ${RES_GAP:-?} ms (switch-over ${RES_SWITCH_GAP:-?} ms)"
  emit_row "$ROWS" docker "$method"
  dk_drop "$name"
}

# --- output -----------------------------------------------------------------------------

run_header() {
  printf '## Docker run of %s\n\n' "$(date -u '+%Y-%m-%d %H:%M UTC')"
  printf -- '- command: %s\n' "\`$COMMAND_LINE\`"
  printf -- '- machine: %s cores (nproc), kernel %s, CRIU %s, dockerd %s (containerd %s), %s, rsync %s, %s\n' \
    "$(nproc)" "$(uname -r)" "$(criu --version | awk '/^Version/ {print $2}')" \
    "$(dk a version --format '{{.Server.Version}}' 2>/dev/null)" \
    "$(dk a version --format '{{range .Server.Components}}{{if eq .Name "containerd"}}{{.Version}}{{end}}{{end}}' 2>/dev/null)" \
    "$(runc --version | head -n 1)" "$(rsync --version | awk 'NR == 1 {print $3}')" \
    "$(ssh -V 2>&1 | cut -d, -f1)"
  printf -- '- binaries (build dir mtime): %s\n' "$BINARIES_INFO"
  printf -- '- load average (1 min) at the start %s, at the end %s; other heavy jobs seen during the run (sampled each second): %s\n' \
    "$LOAD_START" "$(cut -d' ' -f1 /proc/loadavg)" "$(busy_summary "$WORK/busy")"
  # shellcheck disable=SC2016 # backquotes for Markdown
  printf -- '- workload: container of %s, `memcounter --mib %s --dirty-mib-s %s --content random --state /data`, on the user-defined network %s with a fixed address; moved %s s after its first ticks; seeds'"'"' downtime cap %s s\n' \
    "$MIG_DOCKER_IMAGE" "$BENCH_MIB" "$BENCH_DIRTY" "$MIG_DOCKER_NET" "$BENCH_SETTLE_S" "$SEEDS_CAP_S"
  printf -- '- link %s (tbf); image %s\n\n' "$LINK" \
    "$(if [ "$DK_IMAGE_ON_B" = 1 ]; then echo "already on engine B"; else echo "not on engine B (sent with each move)"; fi)"
}

render() {
  printf '### Docker: %s MiB random content, %s MiB/s whole pages rewritten, link %s (tbf), image %s\n\n' \
    "$BENCH_MIB" "$BENCH_DIRTY" "$LINK" "$(if [ "$DK_IMAGE_ON_B" = 1 ]; then echo "on B"; else echo "not on B"; fi)"
  jq -rs --argjson cap_s "$SEEDS_CAP_S" --arg refs floor-api,seeds-docker -f "$BENCH_DIR/lib/report.jq" "$ROWS"
  printf '\n'
}

main() {
  parse_args "$@"
  preflight
  LOAD_START=$(cut -d' ' -f1 /proc/loadavg)
  WORK=$(mktemp -d /tmp/migrated-bench-docker.XXXXXX)
  trap cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  mkdir -p "$WORK/reports" "$WORK/dkwork"
  ROWS=$WORK/rows.jsonl
  : >"$ROWS"
  say "hosts $MIG_NS_A ($MIG_ADDR_A) and $MIG_NS_B ($MIG_ADDR_B), engines $(docker_name a) and $(docker_name b); work dir $WORK"
  hosts_up
  ENGINES_UP=1
  docker_engines_up || { printf 'bench: the Docker engines did not start\n' >&2; exit 1; }
  start_daemons
  docker_no_image a
  docker_image a
  [ "$DK_IMAGE_ON_B" = 0 ] || docker_image_copy a b
  seeds_init "$WORK"
  hosts_shape "$LINK"
  busy_start "$WORK/busy"
  local method i=0 out
  for method in ${METHODS//,/ }; do
    measure "$method" "$i"
    i=$((i + 1))
  done
  busy_stop
  out=$WORK/results.md
  {
    run_header
    render
  } >"$out"
  printf '\n'
  cat "$out"
  if [ "$APPEND" = 1 ]; then
    [ -s "$RESULTS_FILE" ] || printf '# Benchmark results\n\nAppended by %s; see bench/README.md for what is measured.\n\n' "\`bench/run.sh\` and \`bench/docker.sh\`" >"$RESULTS_FILE"
    cat "$out" >>"$RESULTS_FILE"
    say "appended to $RESULTS_FILE"
  fi
}

main "$@"
