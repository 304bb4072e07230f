#!/usr/bin/env bash
# The HTTP endpoint under a real Prometheus server (Debian's prometheus).
# Both daemons serve http.listen — edge-a on its loopback, edge-b on its
# host address — and a Prometheus inside edge-a's namespace scrapes both
# every 250 ms. A memcounter moves a → b over a link shaped to 40 Mbit, so
# that the move spans several scrapes, then b → a with its restore made to
# fail at edge-a. Asked through Prometheus' HTTP API afterwards: both nodes
# were seen with a migration in progress, each counted its move with its
# method, result and role, edge-a's downtime histogram and bytes sent are
# those of its report, the rollback is counted at edge-b, and the build's
# version is the binary's. The endpoint itself: /healthz, /v1/migrations
# (the report migratectl printed, newest first), /v1/migrations/ID (404 for
# an unknown one), a write refused with 405, and after a restart of edge-a
# its history still served.
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"

ID=mc-prom
HTTP_PORT=7452
PROM=127.0.0.1:9090

require_root_tools
command -v prometheus >/dev/null 2>&1 || skip "prometheus is not installed (Debian package prometheus)"

http_of() { case "$1" in a) printf '127.0.0.1:%s\n' "$HTTP_PORT" ;; b) printf '%s:%s\n' "$MIG_ADDR_B" "$HTTP_PORT" ;; esac; }
# get X PATH: the body of GET PATH from host X's endpoint, seen from inside X.
get() { in_host "$1" curl -sS --max-time 5 "http://$(http_of "$1")$2"; }
status_of() { in_host "$1" curl -s -o /dev/null -w '%{http_code}' --max-time 5 "${@:3}" "http://$(http_of "$1")$2"; }
# query PROMQL: the value of its first series, or "" when there is none.
query() {
  in_host a curl -sS --max-time 5 "http://$PROM/api/v1/query" --data-urlencode "query=$1" |
    jq -r '.data.result[0].value[1] // empty'
}
query_is() { [ "$(query "$1")" = "$2" ]; }
# expect PROMQL VALUE WHAT: waits (scrapes are 250 ms apart) for the value.
expect() {
  wait_for query_is "$1" "$2" 15 || fail "$3: Prometheus says '$(query "$1")' for $1, expected '$2'"
}

setup_hosts
for x in a b; do
  write_config "$x"
  printf 'http: {listen: "%s"}\n' "$(http_of "$x")" >>"$MIG_WORK/$x.yaml"
done
on_exit daemons_stop
daemon_start a || fail "the daemon of edge-a did not start"
daemon_start b || fail "the daemon of edge-b did not start"

assert_eq ok "$(get a /healthz)" "/healthz of edge-a"
assert_eq ok "$(get b /healthz)" "/healthz of edge-b"
assert_eq 405 "$(status_of a /v1/migrations -X POST)" "POST /v1/migrations"
assert_eq 404 "$(status_of a /v1/migrations/m-000000000000)" "an unknown migration"
assert_eq 404 "$(status_of a /nothing)" "an unknown path"

cat >"$TEST_WORK/prometheus.yml" <<YAML
global: {scrape_interval: 250ms, scrape_timeout: 200ms}
scrape_configs:
  - job_name: migrated
    static_configs:
      - {targets: ["$(http_of a)"], labels: {node: edge-a}}
      - {targets: ["$(http_of b)"], labels: {node: edge-b}}
YAML
in_host a prometheus --config.file="$TEST_WORK/prometheus.yml" --storage.tsdb.path="$TEST_WORK/prometheus" \
  --web.listen-address="$PROM" >"$TEST_WORK/prometheus.log" 2>&1 &
PROM_PID=$!
on_exit kill "$PROM_PID"
prometheus_ready() { in_host a curl -sf --max-time 2 "http://$PROM/-/ready" >/dev/null; }
wait_for prometheus_ready 30 || fail "Prometheus did not start: $(tail -n 5 "$TEST_WORK/prometheus.log")"
expect 'count(up{job="migrated"} == 1)' 2 "both endpoints scraped"

version=$("$MIG_BUILD/migrated" --version | awk '{print $NF}')
expect "migrated_build_info{node=\"edge-a\",version=\"$version\"}" 1 "build info of edge-a"
expect 'migrated_migrations_total{node="edge-a",method="cold",result="ok",role="source"}' 0 \
  "edge-a's cold moves before any"

start_counter "$ID" --mib 16 --dirty-mib-s 1
hosts_shape 40mbit
out=$(migrate_ok a b "$ID" cold)
hosts_unshape
mid=$(json_get "$out" .id)
assert_running b "$ID"

# Seen by the scrapes during the move, on both sides.
expect 'max_over_time(migrated_migrations_in_progress{node="edge-a"}[2m])' 1 "edge-a in progress during the move"
expect 'max_over_time(migrated_migrations_in_progress{node="edge-b"}[2m])' 1 "edge-b in progress during the move"
expect 'migrated_migrations_in_progress{node="edge-a"}' 0 "edge-a in progress after the move"
expect 'migrated_migrations_total{node="edge-a",method="cold",result="ok",role="source"}' 1 "edge-a's move"
expect 'migrated_migrations_total{node="edge-b",method="cold",result="ok",role="destination"}' 1 "edge-b's move"
expect 'migrated_migrations_total{node="edge-b",method="cold",result="ok",role="source"}' 0 "edge-b as a source"
expect 'migrated_downtime_seconds_count{node="edge-a",method="cold"}' 1 "edge-a's downtime observations"
downtime_s=$(jq -r '.downtime_ms / 1000' <<<"$out")
sum=$(query 'migrated_downtime_seconds_sum{node="edge-a",method="cold"}')
awk -v a="$sum" -v b="$downtime_s" 'BEGIN { d = a - b; exit !(d < 0.001 && d > -0.001) }' ||
  fail "downtime sum $sum s, the report says $downtime_s s"
bucket=$(awk -v d="$downtime_s" 'BEGIN { n = split("0.05 0.1 0.2 0.3 0.5 0.75 1 1.5 2 3 5 10 30 60", b, " ");
  for (i = 1; i <= n; i++) if (d <= b[i]) { print b[i]; exit } print "+Inf" }')
expect "migrated_downtime_seconds_bucket{node=\"edge-a\",method=\"cold\",le=\"$bucket\"}" 1 "the bucket of $downtime_s s"
sent=$(jq -r '.bytes_wire + .bytes_postcopy + .bytes_engine_image' <<<"$out")
expect 'migrated_bytes_sent_total{node="edge-a"}' "$sent" "bytes edge-a sent"
log "a -> b seen by Prometheus: in progress 1 on both, downtime $(printf %.3f "$downtime_s") s in bucket le=$bucket, $sent bytes"

# The endpoint's reports are the one migratectl printed.
listed=$(get a /v1/migrations)
assert_eq "$mid" "$(json_get "$listed" '.migrations[0].id')" "newest of edge-a's /v1/migrations"
assert_eq edge-a "$(json_get "$listed" .node)" "node of /v1/migrations"
one=$(get a "/v1/migrations/$mid")
assert_eq "$(jq -c 'del(.phase)' <<<"$out")" "$(jq -c 'del(.phase)' <<<"$one")" "/v1/migrations/$mid against migratectl's report"
assert_eq ok "$(json_get "$(get b "/v1/migrations/$mid")" .result)" "edge-b's report of $mid"

# A rollback: edge-a's restore fails; edge-b, the source, counts it.
daemon_stop a || true
write_config a
printf 'http: {listen: "%s"}\n' "$(http_of a)" >>"$MIG_WORK/a.yaml"
daemon_start a MIGRATED_FAULT=dest.restore.fail || fail "edge-a did not restart with dest.restore.fail"
rc=0
back=$(ctl b migrate "$ID" --to edge-a --json) || rc=$?
assert_eq 3 "$rc" "exit code of the rolled-back move"
assert_running b "$ID"
expect 'migrated_rollbacks_total{node="edge-b"}' 1 "edge-b's rollbacks"
expect 'migrated_migrations_total{node="edge-b",method="cold",result="rolled_back",role="source"}' 1 "edge-b's rolled-back move"
expect 'migrated_migrations_total{node="edge-a",method="cold",result="failed",role="destination"}' 1 \
  "edge-a's failed restore"

# edge-a restarted: its counters begin again, its history is still served.
daemon_stop a || true
daemon_start a || fail "edge-a did not restart"
assert_eq ok "$(json_get "$(get a "/v1/migrations/$mid")" .result)" "$mid from edge-a's history after a restart"
assert_eq "$(json_get "$back" .id)" "$(json_get "$(get a /v1/migrations)" '.migrations[0].id')" \
  "newest of edge-a's history after a restart"
expect 'migrated_migrations_total{node="edge-a",method="cold",result="ok",role="source"}' 0 "edge-a's counters after a restart"
expect 'resets(migrated_migrations_total{node="edge-a",method="cold",result="ok",role="source"}[2m])' 1 \
  "the restart as Prometheus saw it"
pass
