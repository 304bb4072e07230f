#!/usr/bin/env bash
# Shapes g++ 12 miscompiles in coroutines (docs/design.md, "g++ 12 and
# coroutines") that a compiler will not warn about: co_await in an arm of
# ?: ran the wrong arm once. Fails naming every line that has one.
set -euo pipefail
root=${1:-$(cd "$(dirname "$0")/.." && pwd)}
found=$(grep -rnE '\?[^;]*co_await|[^:]:[[:space:]]*co_await' "$root/daemon" "$root/ctl" "$root/common" \
          --include='*.cpp' --include='*.hpp' | grep -vE '//.*co_await' || true)
if [ -n "$found" ]; then
  printf 'lint: co_await inside ?: (see docs/design.md, "g++ 12 and coroutines"):\n%s\n' "$found" >&2
  exit 1
fi
echo "lint: no co_await inside ?:"
