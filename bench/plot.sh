#!/usr/bin/env bash
# bench/plot.sh ROWS OUT: downtime against memory size from a size sweep's
# rows (bench/run.sh --sizes): OUT.tsv with the numbers (scenario, link,
# MiB, method, downtime, status) and OUT.png drawn by gnuplot, one panel per
# scenario, one line per method, both axes logarithmic; prints a Markdown
# table of the same numbers (MiB down, methods across) for RESULTS.md.
# Only moves that verified count (status ok); the others are in the TSV.
# SCENARIO_LINKS ("a=1gbit" lines) names each scenario's link.
set -euo pipefail
export LC_ALL=C

rows=$1 out=$2
link_of() { sed -n "s/^$1=//p" <<<"${SCENARIO_LINKS:-}" | head -n 1; }

jq -r '[.scenario, .mib, .method, (.downtime_ms // "nan"), .status] | @tsv' "$rows" |
  while IFS=$'\t' read -r scen mib method down status; do
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$scen" "$(link_of "$scen")" "$mib" "$method" "$down" "$status"
  done | sort -t$'\t' -k1,1 -k4,4 -k3,3n >"$out.tsv.body"
{ printf 'scenario\tlink\tmib\tmethod\tdowntime_ms\tstatus\n'; cat "$out.tsv.body"; } >"$out.tsv"
rm -f "$out.tsv.body"

scenarios=$(cut -f1 "$out.tsv" | tail -n +2 | sort -u)
methods=$(jq -r .method "$rows" | awk '!seen[$0]++')  # in the order they ran

for scen in $scenarios; do
  printf '#### Downtime (ms) against memory size, scenario %s (%s)\n\n' "$scen" "$(link_of "$scen")"
  printf '| MiB |'; for m in $methods; do printf ' %s |' "$m"; done; printf '\n'
  printf '|---:|'; for _ in $methods; do printf -- '---:|'; done; printf '\n'
  for mib in $(awk -F'\t' -v s="$scen" 'NR > 1 && $1 == s {print $3}' "$out.tsv" | sort -un); do
    printf '| %s |' "$mib"
    for m in $methods; do
      awk -F'\t' -v s="$scen" -v n="$mib" -v m="$m" '
        NR > 1 && $1 == s && $3 == n && $4 == m { v = ($6 == "ok") ? sprintf("%.0f", $5) : $6 }
        END { printf " %s |", (v == "" ? "—" : v) }' "$out.tsv"
    done
    printf '\n'
  done
  printf '\n'
done

if ! command -v gnuplot >/dev/null 2>&1; then
  printf 'No plot: gnuplot is not installed (Debian: gnuplot-nox).\n\n'
  exit 0
fi
data=$(mktemp -d /tmp/migrated-plot.XXXXXX)
trap 'rm -rf "$data"' EXIT
n=0
for _ in $scenarios; do n=$((n + 1)); done
{
  printf 'set terminal pngcairo size %d,560 font "sans,10"\n' $((560 * n))
  printf 'set output "%s.png"\n' "$out"
  printf 'set multiplot layout 1,%d title "downtime against memory size (bench/run.sh --sizes)"\n' "$n"
  printf 'set logscale xy 2\nset xlabel "memory (MiB)"\nset ylabel "downtime (ms)"\nset grid\nset key top left\n'
  for scen in $scenarios; do
    printf 'set title "scenario %s, link %s"\n' "$scen" "$(link_of "$scen")"
    plot="plot"
    for m in $methods; do
      awk -F'\t' -v s="$scen" -v m="$m" 'NR > 1 && $1 == s && $4 == m && $6 == "ok" {print $3, $5}' "$out.tsv" \
        >"$data/$scen-$m.dat"
      [ -s "$data/$scen-$m.dat" ] || continue
      plot+=" \"$data/$scen-$m.dat\" using 1:2 with linespoints title \"$m\","
    done
    [ "$plot" = plot ] && continue
    printf '%s\n' "${plot%,}"
  done
  printf 'unset multiplot\n'
} >"$data/plot.gp"
gnuplot "$data/plot.gp"
printf '![downtime against memory size](%s.png)\n\n' "$(basename "$out")"
