#!/usr/bin/env bash
# Runs the libFuzzer targets (tests/fuzz/fuzz_<name>.cpp) for SECONDS each:
#   tests/fuzz/run.sh SECONDS [TARGET...]     (default: every target)
# Configures and builds build-fuzz with clang-16 when needed (incremental
# otherwise), copies each target's seeds to a temporary directory (the
# committed corpus is never written), and prints per target the runs
# executed, the seconds and the result. Exits non-zero when any target
# crashed, leaked, timed out or ran out of memory, naming the reproducer
# (kept with the log in the temporary directory); rerun one with
#   build-fuzz/tests/fuzz/fuzz_<name> REPRODUCER
# Environment: MIGRATED_FUZZ_BUILD_DIR (default build-fuzz),
# MIGRATED_FUZZ_ARGS (extra libFuzzer flags, e.g. "-jobs=1 -workers=1").
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build_dir=${MIGRATED_FUZZ_BUILD_DIR:-$root/build-fuzz}
all_targets=(wire hello datagram delta criu_image tree path chunk config tls page_request http)

usage() { echo "usage: $0 SECONDS [TARGET...] (targets: ${all_targets[*]})" >&2; exit 2; }
[ $# -ge 1 ] || usage
seconds=$1; shift
[[ $seconds =~ ^[0-9]+$ ]] && [ "$seconds" -gt 0 ] || usage
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${all_targets[@]}")
for t in "${targets[@]}"; do
  [ -d "$here/corpus/$t" ] || { echo "run.sh: unknown target $t" >&2; usage; }
done

log() { printf 'fuzz: %s\n' "$*" >&2; }

build() {
  command -v clang++-16 >/dev/null || { log "clang++-16 missing (scripts/setup.sh installs it)"; return 1; }
  if [ ! -f "$build_dir/CMakeCache.txt" ]; then
    log "configuring $build_dir"
    mkdir -p "$build_dir"
    CC=clang-16 CXX=clang++-16 cmake -S "$root" -B "$build_dir" -DMIGRATED_FUZZ=ON \
      -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBUILD_TESTING=OFF >"$build_dir/run-configure.log" 2>&1 ||
      { cat "$build_dir/run-configure.log" >&2; return 1; }
  fi
  local b=()
  for t in "${targets[@]}"; do b+=(--target "fuzz_$t"); done
  nice -n 5 cmake --build "$build_dir" -j2 "${b[@]}" >"$build_dir/run-build.log" 2>&1 ||
    { tail -n 40 "$build_dir/run-build.log" >&2; return 1; }
}

# Every sanitizer finding ends the run with a reproducer (UBSan's too: the
# targets are built with -fno-sanitize-recover); libFuzzer checks each new
# input for leaks with LeakSanitizer. Reports go to the log, whatever the
# caller's environment says.
export ASAN_OPTIONS=abort_on_error=1:detect_leaks=1:symbolize=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1

run_one() {
  local t=$1 work bin rc=0 runs secs start artifact
  bin=$build_dir/tests/fuzz/fuzz_$t
  work=$(mktemp -d "/tmp/migrated-fuzz-$t.XXXXXX")
  mkdir "$work/corpus"
  cp "$here/corpus/$t/"* "$work/corpus/"
  start=$(date +%s)
  # shellcheck disable=SC2086
  "$bin" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
    -artifact_prefix="$work/" ${MIGRATED_FUZZ_ARGS:-} "$work/corpus" >"$work/log" 2>&1 &
  local pid=$!
  wait "$pid" || rc=$?
  rm -rf "/dev/shm/migrated-fuzz-$t-$pid"  # the target's scratch (fuzz_support.hpp)
  secs=$(( $(date +%s) - start ))
  runs=$(awk '/^stat::number_of_executed_units:/ {print $NF}' "$work/log" | tail -n 1)
  artifact=$(find "$work" -maxdepth 1 -type f \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' \
              -o -name 'oom-*' \) | head -n 1)
  if [ "$rc" = 0 ] && [ -z "$artifact" ]; then
    printf 'fuzz: %-11s runs %-10s %4ss  ok (corpus %s -> %s inputs)\n' "$t" "${runs:-?}" "$secs" \
      "$(ls "$here/corpus/$t" | wc -l)" "$(ls "$work/corpus" | wc -l)"
    rm -rf "$work"
    return 0
  fi
  printf 'fuzz: %-11s runs %-10s %4ss  FAILED (exit %s)\n' "$t" "${runs:-?}" "$secs" "$rc"
  grep -E '^(==[0-9]+==ERROR|SUMMARY|fuzz: invariant)|runtime error' "$work/log" | head -n 5 | sed 's/^/fuzz:   /'
  printf 'fuzz:   reproducer: %s\nfuzz:   log: %s\n' "${artifact:-none written (see log)}" "$work/log"
  return 1
}

main() {
  build || { echo "fuzz: FAIL: build"; return 1; }
  local failed=() t
  for t in "${targets[@]}"; do run_one "$t" || failed+=("$t"); done
  if [ ${#failed[@]} -eq 0 ]; then
    echo "fuzz: PASS: ${#targets[@]} targets, ${seconds}s each"
    return 0
  fi
  echo "fuzz: FAIL: ${failed[*]}"
  return 1
}

main
