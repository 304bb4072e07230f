#!/usr/bin/env bash
# What encryption costs: the same cold migration of a 256 MiB container over
# the unshaped emulated link, with this tree's build (TLS 1.3 on every
# connection) and with a build of BASE (default: the last commit whose links
# were not encrypted, frames tagged with HMAC-SHA256), alternating, ROUNDS
# times each, on this machine in one run. Prints each run and the medians,
# and the ratio of transfer and total times (TLS / plaintext).
#
#   bench/tls.sh [--rounds N] [--mib M] [--base COMMIT]
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
rounds=3 mib=256 base=61c09e4
while [ $# -gt 0 ]; do
  case $1 in
    --rounds) rounds=$2; shift 2 ;;
    --mib) mib=$2; shift 2 ;;
    --base) base=$2; shift 2 ;;
    *) sed -n '2,10s/^# \{0,1\}//p' "$0" >&2; exit 2 ;;
  esac
done

work=$(mktemp -d /tmp/migrated-bench-tls.XXXXXX)
plain=/tmp/migrated-bench-plain-$base
trap 'rm -rf "$work"' EXIT

# The baseline tree and its build, kept between runs.
if [ ! -x "$plain/build/migrated" ]; then
  rm -rf "$plain"
  git -C "$here" worktree add --detach "$plain" "$base" >/dev/null 2>&1 || git -C "$here" archive "$base" | (mkdir -p "$plain" && tar -x -C "$plain")
  cmake -S "$plain" -B "$plain/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBUILD_TESTING=OFF >/dev/null
  nice cmake --build "$plain/build" -j2 --target migrated migratectl memcounter >/dev/null
fi
[ -x "$here/build/migrated" ] || { echo "bench/tls.sh: build this tree first (scripts/setup.sh)" >&2; exit 1; }

# one TREE LABEL: one migration with TREE's build and TREE's own host scripts;
# prints "LABEL transfer_ms total_ms downtime_ms bytes_wire".
one() {
  local tree=$1 label=$2
  (
    set -euo pipefail
    export MIGRATED_BUILD_DIR=$tree/build MIGRATED_SOURCE_DIR=$tree
    # shellcheck disable=SC1091
    source "$tree/scripts/lib/hosts.sh"; source "$tree/scripts/lib/bundle.sh"; source "$tree/scripts/lib/daemons.sh"
    local w=$work/$label-$RANDOM
    mkdir -p "$w"
    trap 'daemons_stop >/dev/null 2>&1 || true; remove_container "$(host_runc_root a)" bench; remove_container "$(host_runc_root b)" bench; remove_cgroups "$(host_cgroup_parent a)" bench; remove_cgroups "$(host_cgroup_parent b)" bench; hosts_down' EXIT
    hosts_up
    daemons_init "$w"
    write_config a "" stderr >/dev/null
    write_config b "" stderr >/dev/null
    daemon_start a >/dev/null
    daemon_start b >/dev/null
    make_bundle "$(host_bundles a)/bench" bench "$(host_cgroup_parent a)" -- /bin/memcounter --mib "$mib" \
      --dirty-mib-s 0 --content random --no-net >/dev/null
    start_container "$(host_runc_root a)" "$(host_bundles a)/bench" bench
    sleep 2
    local out
    out=$(ctl a migrate bench --to edge-b --method cold --json)
    [ "$(jq -r .result <<<"$out")" = ok ] || { echo "migration failed: $out" >&2; exit 1; }
    jq -r --arg l "$label" '"\($l) \(.transfer_ms) \(.total_ms) \(.downtime_ms) \(.bytes_wire)"' <<<"$out"
  )
}

median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

echo "# cold migration, $mib MiB of incompressible memory, unshaped veth; $rounds rounds; $(date -u +%F)"
echo "# build transfer_ms total_ms downtime_ms bytes_wire"
for ((i = 1; i <= rounds; i++)); do
  one "$plain" plaintext | tee -a "$work/runs"
  one "$here" tls | tee -a "$work/runs"
done
for label in plaintext tls; do
  for col in 2 3 4; do
    awk -v l="$label" -v c="$col" '$1 == l { print $c }' "$work/runs" | median >"$work/$label.$col"
  done
  printf 'median %-9s transfer %s ms, total %s ms, downtime %s ms\n' "$label" \
    "$(cat "$work/$label.2")" "$(cat "$work/$label.3")" "$(cat "$work/$label.4")"
done
awk -v t="$(cat "$work/tls.2")" -v p="$(cat "$work/plaintext.2")" -v T="$(cat "$work/tls.3")" -v P="$(cat "$work/plaintext.3")" \
  'BEGIN { printf "ratio tls/plaintext: transfer %.3f, total %.3f\n", t / p, T / P }'
