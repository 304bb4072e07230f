# Two emulated edge hosts on one machine: network namespaces A and B joined
# by a veth pair in a private /24 (A = 10.77.0.1, B = 10.77.0.2). Only the
# daemons live in the namespaces; containers run from the root namespaces.
# Sourced by scripts/demo.sh and tests/integration/lib.sh.

MIG_NS_PREFIX=${MIG_NS_PREFIX:-mig}
MIG_NS_A=${MIG_NS_PREFIX}-a
MIG_NS_B=${MIG_NS_PREFIX}-b
MIG_VETH_A=${MIG_NS_PREFIX}-va   # lives in A
MIG_VETH_B=${MIG_NS_PREFIX}-vb   # lives in B
MIG_ADDR_A=10.77.0.1
MIG_ADDR_B=10.77.0.2
MIG_PREFIX_LEN=24

# Runs a command inside host X's network namespace (X = a | b).
in_host() {
  local ns
  ns=$(host_ns "$1"); shift
  nsenter --net="/run/netns/$ns" "$@"
}

host_ns() {
  case "$1" in
    a) printf '%s\n' "$MIG_NS_A" ;;
    b) printf '%s\n' "$MIG_NS_B" ;;
    *) printf 'unknown host %s\n' "$1" >&2; return 1 ;;
  esac
}

host_addr() {
  case "$1" in
    a) printf '%s\n' "$MIG_ADDR_A" ;;
    b) printf '%s\n' "$MIG_ADDR_B" ;;
    *) printf 'unknown host %s\n' "$1" >&2; return 1 ;;
  esac
}

# Removes both namespaces (their veth ends go with them) and a veth left in
# the root namespace by a run that stopped half-way. Safe to run any time.
hosts_down() {
  local ns
  for ns in "$MIG_NS_A" "$MIG_NS_B"; do
    if [ -e "/run/netns/$ns" ]; then
      ip netns delete "$ns" 2>/dev/null || true
    fi
  done
  ip link delete "$MIG_VETH_A" 2>/dev/null || true
  ip link delete "$MIG_VETH_B" 2>/dev/null || true
}

host_link_up() {
  local ns=$1 dev=$2 addr=$3
  ip -n "$ns" link set lo up
  ip -n "$ns" addr add "$addr/$MIG_PREFIX_LEN" dev "$dev"
  ip -n "$ns" link set "$dev" up
}

# One ICMP echo from A to B (busybox's ping when the machine has none).
hosts_ping() {
  local ping=(ping)
  command -v ping >/dev/null 2>&1 || ping=(busybox ping)
  in_host a "${ping[@]}" -c1 -W1 "$MIG_ADDR_B" >/dev/null 2>&1
}

# Creates both hosts from scratch (tearing down leftovers first) and waits
# until A reaches B.
hosts_up() {
  hosts_down
  ip netns add "$MIG_NS_A"
  ip netns add "$MIG_NS_B"
  ip link add "$MIG_VETH_A" netns "$MIG_NS_A" type veth peer name "$MIG_VETH_B" netns "$MIG_NS_B"
  host_link_up "$MIG_NS_A" "$MIG_VETH_A" "$MIG_ADDR_A"
  host_link_up "$MIG_NS_B" "$MIG_VETH_B" "$MIG_ADDR_B"
  local i
  for ((i = 0; i < 50; i++)); do
    hosts_ping && return 0
    sleep 0.1
  done
  printf 'hosts_up: %s cannot reach %s\n' "$MIG_NS_A" "$MIG_ADDR_B" >&2
  return 1
}

# Limits the link between the hosts to RATE (tc syntax: 100mbit, 20mbit)
# in both directions with a token bucket; BURST defaults to 10 ms of RATE.
hosts_shape() {
  local rate=$1 burst=${2:-}
  [ -n "$burst" ] || burst=$(tbf_burst "$rate")
  tc -n "$MIG_NS_A" qdisc replace dev "$MIG_VETH_A" root tbf rate "$rate" burst "$burst" latency 100ms
  tc -n "$MIG_NS_B" qdisc replace dev "$MIG_VETH_B" root tbf rate "$rate" burst "$burst" latency 100ms
}

# Bytes a token bucket of RATE needs for 10 ms, at least 16 KiB.
tbf_burst() {
  local rate=$1 num unit bits
  num=${rate%%[!0-9]*}
  unit=${rate#"$num"}
  case "$unit" in
    kbit) bits=$((num * 1000)) ;;
    mbit) bits=$((num * 1000000)) ;;
    gbit) bits=$((num * 1000000000)) ;;
    bit | "") bits=$num ;;
    *) printf 'hosts_shape: unsupported rate %s (use bit, kbit, mbit or gbit)\n' "$rate" >&2; return 1 ;;
  esac
  local bytes=$((bits / 8 / 100))
  [ "$bytes" -ge 16384 ] || bytes=16384
  printf '%s\n' "$bytes"
}
