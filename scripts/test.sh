#!/usr/bin/env bash
# The whole test suite on this machine: set up (packages, CRIU, build), make
# sure journald runs, then ctest (unit tests, then the integration tests,
# which run one at a time). Exits with ctest's status.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
build_dir=${MIGRATED_BUILD_DIR:-$here/build}

# shellcheck source=scripts/lib/journald.sh
source "$here/scripts/lib/journald.sh"

summary() {
  local rc=$1 log=$2 line
  line=$(grep -E '^[0-9]+% tests passed' "$log" | tail -n 1 || true)
  if [ "$rc" = 0 ]; then
    printf 'test.sh: PASS: %s\n' "${line:-ctest finished}"
  else
    printf 'test.sh: FAIL (ctest exit %s): %s\n' "$rc" "${line:-see output above}"
  fi
}

ctest_log=$(mktemp /tmp/migrated-ctest.XXXXXX)
trap 'rm -f "$ctest_log"' EXIT

main() {
  bash "$here/scripts/setup.sh"
  ensure_journald
  local rc=0
  # pipefail: the pipeline fails with ctest's status (tee does not fail)
  ctest --test-dir "$build_dir" --output-on-failure 2>&1 | tee "$ctest_log" || rc=$?
  summary "$rc" "$ctest_log"
  return "$rc"
}

main "$@"
