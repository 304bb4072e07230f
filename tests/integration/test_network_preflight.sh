#!/usr/bin/env bash
# A container whose own network namespace holds an interface CRIU cannot
# recreate (here a veth pair, as a hook would add): cold and precopy are
# refused before anything stops, naming the interfaces; measure reports it
# as its preflight; auto moves the container with a filesystem method and
# says why.
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"

ID=mc-veth

require_root_tools
setup_hosts_and_daemons
start_counter "$ID" --mib 8
pid=$(runc --root "$(host_runc_root a)" state "$ID" | jq .pid)
nsenter -t "$pid" -n ip link add mig-v0 type veth peer name mig-v1 || skip "cannot create a veth pair"
boot=$(field a "$ID" boot)
before=$(field a "$ID" counter)

for method in cold precopy; do
  out=$(ctl_a migrate "$ID" --to edge-b --method "$method" --json) && fail "$method succeeded: $out"
  assert_eq failed "$(json_get "$out" .result)" "result of $method"
  assert_contains "$(json_get "$out" .error)" "interfaces CRIU cannot recreate (mig-v0, mig-v1)" "error of $method"
  assert_eq 0 "$(json_get "$out" .downtime_ms | cut -d. -f1)" "downtime of a refused $method"
done
assert_running a "$ID"
assert_alive_on a "$ID" "$boot" "$before"
assert_absent b "$ID"

m=$(ctl_a measure "$ID" --json) || fail "measure failed: $m"
assert_contains "$(json_get "$m" .preflight)" "interfaces CRIU cannot recreate" "measure's preflight"

out=$(ctl_a migrate "$ID" --to edge-b --method auto --json) || fail "auto failed: $out"
assert_eq diff "$(json_get "$out" .method)" "method auto chose"
assert_contains "$(json_get "$out" .method_reason)" "interfaces CRIU cannot recreate" "auto's reason"
assert_running b "$ID"
assert_absent a "$ID"
pass
