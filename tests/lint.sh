#!/usr/bin/env bash
# Shapes g++ 12 miscompiles in coroutines (docs/design.md, "g++ 12 and
# coroutines") that a compiler will not warn about: co_await in an arm of
# ?: ran the wrong arm once; an error built as a temporary in the arguments
# of an awaited call (co_await ch.reply(id, fail(...))) spans the
# suspension. Fails naming every line that has one.
set -euo pipefail
root=${1:-$(cd "$(dirname "$0")/.." && pwd)}
sources=("$root/daemon" "$root/ctl" "$root/common")
status=0
check() {
  local what=$1 pattern=$2 found
  found=$(grep -rnE "$pattern" "${sources[@]}" --include='*.cpp' --include='*.hpp' | grep -vE '//.*co_await' || true)
  if [ -n "$found" ]; then
    printf 'lint: %s (see docs/design.md, "g++ 12 and coroutines"):\n%s\n' "$what" "$found" >&2
    status=1
  fi
}
check "co_await inside ?:" '\?[^;]*co_await|[^:]:[[:space:]]*co_await'
check "an error temporary in an awaited call" 'co_await [^;]*\((fail|std::unexpected)\('
[ "$status" = 0 ] && echo "lint: no co_await inside ?:, no error temporaries in awaited calls"
exit "$status"
