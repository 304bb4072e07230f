# Renders the rows of one scenario (an array of bench/run.sh or
# bench/docker.sh result rows) as a Markdown table and a list of per-method
# details. $cap_s: the seeds' downtime cap in seconds; --arg refs M1,M2: the
# two methods the downtime is divided by (default seeds-warm,floor).

def ms: if . == null then "—" elif . >= 100 then (round | tostring) else ((. * 10 | round) / 10 | tostring) end;
def mib: if . == null then "—" else ((. / 1048576 * 100 | round) / 100 | tostring) end;
def x3: (. * 1000 | round) / 1000 | tostring;
def ok: .status == "ok";
def capped: .status | startswith(">");
def mlabel:
  {"seeds-cold": "seeds' cold (checkpoint + rsync + restore)",
   "seeds-warm": "seeds' warm (pre-checkpoint + rsync delta)",
   "cold": "migrated cold",
   "precopy": "migrated precopy",
   "postcopy": "migrated postcopy",
   "hybrid": "migrated hybrid",
   "floor": "floor (local checkpoint + restore)",
   "seeds-docker": "seeds' Docker (checkpoint + rsync with the layer + create + start)",
   "floor-api": "floor-api (docker checkpoint + start on A)",
   "floor-runc": "floor-runc (runc checkpoint + docker start on A)"}[.] // .;

# ratio(REF_ROW): this row's downtime over the reference row's.
def ratio($ref):
  if (ok | not) then "—"
  elif $ref == null then "n/a"
  elif ($ref | capped) then "< " + (.downtime_ms / ($cap_s * 1000) | x3)
  elif ($ref | ok) and $ref.downtime_ms > 0 then (.downtime_ms / $ref.downtime_ms | x3)
  else "n/a" end;

def phases:
  .phases | to_entries
  | map(.key + " " + (if (.key | endswith("bytes")) then (.value | mib) + " MiB"
                      elif (.value | type) == "number" then (.value | ms)
                      else (.value | tostring) end))
  | join(", ");

def round_line:
  "    - round \(.index) \(.kind): dirty \(.pages_dirty) pages (\(.dirty_mib_s * 10 | round / 10) MiB/s), "
  + "full \(.pages_full) xor \(.pages_xor) ref \(.pages_ref) skipped \(.pages_skipped), "
  + "raw \(.bytes_raw | mib) MiB, wire \(.bytes_wire | mib) MiB, "
  + "checkpoint \(.checkpoint_ms | ms) ms, round \(.duration_ms | ms) ms"
  + (if .throttle_pct > 0 then ", throttle \(.throttle_pct)%" else "" end);

. as $rows
| ($ARGS.named.refs // "seeds-warm,floor" | split(",")) as [$ref1, $ref2]
| ($rows | map(select(.method == $ref1)) | first) as $r1
| ($rows | map(select(.method == $ref2)) | first) as $r2
| "| method | downtime ms | total ms | wire MiB (veth) | wire MiB (report) | max_gap ms | downtime ÷ \($ref1) | downtime ÷ \($ref2) | ok? |",
  "|---|---:|---:|---:|---:|---:|---:|---:|---|",
  ($rows[]
   | "| \(.method | mlabel) | "
     + (if capped then "> " + ($cap_s * 1000 | tostring) else (.downtime_ms | ms) end) + " | "
     + (if capped then "—" else (.total_ms | ms) end) + " | "
     + (.wire | mib) + " | "
     + (.report.bytes_wire | mib) + " | "
     + (.max_gap_ms | ms) + " | "
     + ratio($r1) + " | " + ratio($r2) + " | "
     + (if ok then "ok" elif capped then .status else "**FAILED**: " + (.status | ltrimstr("FAILED: ")) end)
     + " |"),
  "",
  ($rows[]
   | .status as $row_status
   | "- \(.method | mlabel): "
     + (if .report == null then (phases | if . == "" then "no timings (" + $row_status + ")" else . end)
        else (.report | "checkpoint \(.checkpoint_ms | ms) ms, transfer \(.transfer_ms | ms) ms, "
              + "restore \(.restore_ms | ms) ms, freeze→ready \(.ready_ms | ms) ms, "
              + "image \(.bytes_image | mib) MiB, bandwidth \(.bandwidth_mib_s * 10 | round / 10) MiB/s"
              + (if (.convergence // "") != "" then ", convergence: \(.convergence)" else "" end)
              + (if .requested_method != null and .requested_method != .method
                 then ", ran as \(.method)" + (if (.method_reason // "") != "" then " (\(.method_reason))" else "" end)
                 else "" end)
              + (if (.throttle_max_pct // 0) > 0 then ", throttled up to \(.throttle_max_pct) %" else "" end)
              + (if (.link_recoveries // 0) > 0 then ", page link opened again \(.link_recoveries)×" else "" end))
        end)
     + "; veth A→B \(.wire_ab | mib) MiB, B→A \(.wire_ba | mib) MiB"
     + "; workload's pause at the switch-over \(.switch_gap_ms | ms) ms (max_gap before the move \(.max_gap_before_ms | ms) ms)"
     + (if .report != null and (.report.rounds | length) > 1 then
          "\n" + (.report.rounds | map(round_line) | join("\n"))
        else "" end)
     + (if .method == "precopy" and .report != null and (.report.rounds | length) > 0 then
          (.report.rounds[-1]) as $f
          | "\n    - final round: bytes_wire \($f.bytes_wire) B vs pages dirtied since the previous round "
            + "\($f.pages_dirty) × 4096 = \($f.pages_dirty * 4096) B → ratio "
            + (if $f.pages_dirty > 0 then ($f.bytes_wire / ($f.pages_dirty * 4096) | x3) else "n/a" end)
        else "" end))
