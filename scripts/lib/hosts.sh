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

# Takes hosts_shape's limit off again.
hosts_unshape() {
  tc -n "$MIG_NS_A" qdisc del dev "$MIG_VETH_A" root 2>/dev/null || true
  tc -n "$MIG_NS_B" qdisc del dev "$MIG_VETH_B" root 2>/dev/null || true
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

# --- a network that spans both hosts (tests of containers on a bridge) -----
#
# Each host gets a bridge mig-br0 (10.88.0.1 on A, 10.88.0.2 on B), the two
# bridges joined by a veth pair into one L2 segment, as two edge sites on one
# VLAN would be; a client namespace (10.88.0.100) hangs off A's bridge. CNI's
# bridge plugin puts containers on mig-br0 (see cni_conf).
MIG_BRIDGE=${MIG_NS_PREFIX}-br0
MIG_NS_CLIENT=${MIG_NS_PREFIX}-c
MIG_LAN_PREFIX=10.88.0
MIG_LAN_CLIENT=$MIG_LAN_PREFIX.100

lan_up() {
  local x ns i=1
  for x in a b; do
    ns=$(host_ns "$x")
    ip -n "$ns" link add "$MIG_BRIDGE" type bridge
    ip -n "$ns" addr add "$MIG_LAN_PREFIX.$i/24" dev "$MIG_BRIDGE"
    ip -n "$ns" link set "$MIG_BRIDGE" up
    i=$((i + 1))
  done
  # The segment between the sites.
  ip link add "${MIG_NS_PREFIX}-lan-a" netns "$MIG_NS_A" type veth peer name "${MIG_NS_PREFIX}-lan-b" netns "$MIG_NS_B"
  ip -n "$MIG_NS_A" link set "${MIG_NS_PREFIX}-lan-a" master "$MIG_BRIDGE" up
  ip -n "$MIG_NS_B" link set "${MIG_NS_PREFIX}-lan-b" master "$MIG_BRIDGE" up
  # A client at site A.
  ip netns add "$MIG_NS_CLIENT"
  ip link add "${MIG_NS_PREFIX}-cl" netns "$MIG_NS_A" type veth peer name eth0 netns "$MIG_NS_CLIENT"
  ip -n "$MIG_NS_A" link set "${MIG_NS_PREFIX}-cl" master "$MIG_BRIDGE" up
  ip -n "$MIG_NS_CLIENT" addr add "$MIG_LAN_CLIENT/24" dev eth0
  ip -n "$MIG_NS_CLIENT" link set eth0 up
  ip -n "$MIG_NS_CLIENT" link set lo up
}

lan_down() {
  if [ -e "/run/netns/$MIG_NS_CLIENT" ]; then ip netns delete "$MIG_NS_CLIENT" 2>/dev/null || true; fi
}

# cni_conf DIR: the CNI network "edge" on mig-br0, host-local addresses
# 10.88.0.10-50 (leases under DIR/ipam), a fixed address and MAC allowed.
cni_conf() {
  local dir=$1
  mkdir -p "$dir/ipam"
  cat >"$dir/edge.conf" <<JSON
{"cniVersion": "0.4.0", "name": "edge", "type": "bridge", "bridge": "$MIG_BRIDGE",
 "isGateway": false, "ipMasq": false, "capabilities": {"ips": true, "mac": true},
 "ipam": {"type": "host-local", "dataDir": "$dir/ipam",
          "ranges": [[{"subnet": "$MIG_LAN_PREFIX.0/24", "rangeStart": "$MIG_LAN_PREFIX.10", "rangeEnd": "$MIG_LAN_PREFIX.50"}]]}}
JSON
}

# cni_add X CONF_DIR NETNS_NAME ID ADDRESS: the plugin, run on host X, puts
# the namespace's eth0 on X's bridge with ADDRESS (a /24).
cni_add() {
  local x=$1 dir=$2 netns=$3 id=$4 address=$5
  jq --arg ip "$address/24" '. + {runtimeConfig: {ips: [$ip]}}' "$dir/edge.conf" |
    in_host "$x" env CNI_COMMAND=ADD CNI_CONTAINERID="$id" CNI_NETNS="/run/netns/$netns" CNI_IFNAME=eth0 \
      CNI_PATH=/usr/lib/cni /usr/lib/cni/bridge >/dev/null
}
