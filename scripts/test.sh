#!/usr/bin/env bash
# The whole test suite on this machine: set up (packages, CRIU, build), make
# sure journald runs, then
#   1. ctest on the build (unit tests, then the integration tests, which run
#      one at a time);
#   2. the sanitizer build (MIGRATED_SANITIZE=ON, ASan + UBSan, in
#      build-asan): the unit tests and a few integration tests — cold,
#      precopy, postcopy, hybrid, a fault and UDP — with their daemons and controllers
#      sanitized (see docs/testing.md, "Sanitizers");
#   3. every fuzz target for 20 s (tests/fuzz/run.sh).
# Prints one PASS/FAIL line per part and a summary; exits non-zero when any
# part failed.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
build_dir=${MIGRATED_BUILD_DIR:-$here/build}
asan_dir=${MIGRATED_SANITIZE_BUILD_DIR:-$here/build-asan}
fuzz_seconds=${MIGRATED_FUZZ_SECONDS:-20}
# Fast integration tests that between them run every phase of a cold, a
# precopy, a postcopy and a hybrid migration, rollbacks and the datagram path under
# the sanitizers.
sanitized_integration=(cold_migration precopy postcopy postcopy_cut hybrid fault_source_transfer_cut udp)

# shellcheck source=scripts/lib/journald.sh
source "$here/scripts/lib/journald.sh"

work=$(mktemp -d /tmp/migrated-test.XXXXXX)
trap 'rm -rf "$work"' EXIT

results=()
record() {  # part rc seconds detail
  local verdict=PASS
  [ "$2" = 0 ] || verdict="FAIL (exit $2)"
  results+=("$(printf '%-11s %s in %ss: %s' "$1" "$verdict" "$3" "$4")")
  printf 'test.sh: %s\n' "${results[-1]}"
}

ctest_line() { grep -E '^[0-9]+% tests passed' "$1" | tail -n 1 || true; }

# Tests counted over every part: ctest's "N tests failed out of M" lines and
# one per fuzz target.
passed=0 failed=0
count_ctest() {
  local line f m
  line=$(ctest_line "$1")
  [[ $line =~ ([0-9]+)\ tests\ failed\ out\ of\ ([0-9]+) ]] || return 0
  f=${BASH_REMATCH[1]} m=${BASH_REMATCH[2]}
  passed=$((passed + m - f)) failed=$((failed + f))
}

run_ctest() {
  local rc=0 start=$SECONDS
  # pipefail: the pipeline fails with ctest's status (tee does not fail)
  ctest --test-dir "$build_dir" --output-on-failure 2>&1 | tee "$work/ctest.log" || rc=$?
  count_ctest "$work/ctest.log"
  record ctest "$rc" $((SECONDS - start)) "$(ctest_line "$work/ctest.log")"
  return "$rc"
}

# ASan and UBSan stop at the first error (halt_on_error) and write their
# reports to files, so a report from any process — a daemon whose death a
# test might survive, a migratectl — is found afterwards and fails the part.
# Leak detection stays on for the unit tests (one process that exits
# normally) and is off for the integration tests: there the daemons are
# stopped with SIGTERM or SIGKILL mid-migration, and LeakSanitizer, which
# also cannot run in a process that is ptraced (CRIU seizes the container's
# tasks, and tests kill daemons while children are pending), would report
# what an interrupted process still held, exiting non-zero with no bug.
# The containers' workload is a static C binary outside the sanitized build.
run_sanitized() {
  local rc=0 start=$SECONDS reports="$work/sanitizer" regex
  mkdir -p "$reports"
  {
    cmake -S "$here" -B "$asan_dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMIGRATED_SANITIZE=ON >/dev/null &&
      nice -n 5 cmake --build "$asan_dir" -j2 >"$work/asan-build.log" 2>&1
  } || { tail -n 40 "$work/asan-build.log" >&2; record sanitizers 1 $((SECONDS - start)) "build failed"; return 1; }
  local built=$((SECONDS - start))
  regex="^(unit|$(printf 'integration.test_%s|' "${sanitized_integration[@]}" | sed 's/|$//'))\$"
  UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:log_path=$reports/ubsan" \
  ASAN_OPTIONS="halt_on_error=1:detect_leaks=1:log_path=$reports/asan" \
    ctest --test-dir "$asan_dir" --output-on-failure -R '^unit$' 2>&1 | tee "$work/asan-unit.log" || rc=$?
  UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:log_path=$reports/ubsan" \
  ASAN_OPTIONS="halt_on_error=1:detect_leaks=0:log_path=$reports/asan" \
    ctest --test-dir "$asan_dir" --output-on-failure -R "$regex" -E '^unit$' 2>&1 |
    tee "$work/asan-integration.log" || rc=$?
  count_ctest "$work/asan-unit.log"
  count_ctest "$work/asan-integration.log"
  local found
  found=$(find "$reports" -type f | sort)
  if [ -n "$found" ]; then
    echo "test.sh: sanitizer reports:"
    while IFS= read -r f; do echo "--- $f"; head -n 60 "$f"; done <<<"$found"
    [ "$rc" = 0 ] && rc=1
  fi
  record sanitizers "$rc" $((SECONDS - start)) "build ${built}s; unit: $(ctest_line "$work/asan-unit.log"); integration (${sanitized_integration[*]}): $(ctest_line "$work/asan-integration.log")"
  return "$rc"
}

run_fuzz() {
  local rc=0 start=$SECONDS
  bash "$here/tests/fuzz/run.sh" "$fuzz_seconds" 2>&1 | tee "$work/fuzz.log" || rc=$?
  passed=$((passed + $(grep -cE '^fuzz: [a-z_]+ +runs .* ok ' "$work/fuzz.log" || true)))
  failed=$((failed + $(grep -cE '^fuzz: [a-z_]+ +runs .* FAILED ' "$work/fuzz.log" || true)))
  record fuzz "$rc" $((SECONDS - start)) "$(grep -E '^fuzz: (PASS|FAIL)' "$work/fuzz.log" | tail -n 1)"
  return "$rc"
}

main() {
  bash "$here/scripts/setup.sh"
  ensure_journald
  local rc=0
  run_ctest || rc=1
  run_sanitized || rc=1
  run_fuzz || rc=1
  echo "test.sh: summary"
  printf 'test.sh:   %s\n' "${results[@]}"
  echo "test.sh: $passed passed, $failed failed"
  if [ "$rc" = 0 ]; then echo "test.sh: PASS"; else echo "test.sh: FAIL"; fi
  return "$rc"
}

main "$@"
