#!/usr/bin/env bash
# A flood of connections that never authenticate — 800 idle ones from 16
# source addresses, some announcing a 12 MiB frame, some trickling bytes —
# against
# edge-a's daemon: a controller holding the key still gets `status`
# answered within its one-second deadline, again and again; the daemon's
# memory stays small (a pending connection costs at most a few KiB); and a
# migration started during the flood succeeds.
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"

ID=mc-flood
SOURCES=16
PER_SOURCE=50

require_root_tools
command -v python3 >/dev/null 2>&1 || skip "python3 is not installed"
setup_hosts_and_daemons
start_counter "$ID" --mib 8
for ((i = 1; i <= SOURCES; i++)); do
  ip -n "$MIG_NS_B" addr add "10.77.0.$((100 + i))/24" dev "$MIG_VETH_B"
done
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/${MIG_DAEMON_PID[a]}/status"; }
before=$(rss_kib)

# The flood, from edge-b's namespace: connections opened and held, new ones
# all the time (evicted ones are replaced), a few trickling.
cat >"$TEST_WORK/flood.py" <<PY
import socket, struct, sys, time
held = []
end = time.time() + float(sys.argv[1])
while time.time() < end:
    for s in range(1, $SOURCES + 1):
        for _ in range($PER_SOURCE // 5):
            try:
                c = socket.socket()
                c.setblocking(False)
                c.bind(("10.77.0.%d" % (100 + s), 0))
                c.connect_ex(("$(host_addr a)", $MIG_TCP_PORT))
                held.append(c)
            except OSError:
                pass
    for c in held[:20]:  # a trickle: one byte of a frame prefix now and then
        try: c.send(b"\\x00")
        except OSError: pass
    for c in held[-20:]:  # a frame of 4 MiB header and 8 MiB payload announced before any key
        try: c.send(struct.pack(">II", 4 << 20, 8 << 20))
        except OSError: pass
    held = [c for c in held if c.fileno() >= 0][-$SOURCES * $PER_SOURCE:]
    time.sleep(0.2)
PY
in_host b python3 "$TEST_WORK/flood.py" 12 &
FLOOD=$!
stop_flood() { kill "$FLOOD" 2>/dev/null || true; }
on_exit stop_flood
sleep 3

for i in 1 2 3 4 5; do
  ctl_a --timeout-ms 1000 status >/dev/null || fail "status was not answered within 1 s during the flood (try $i)"
  sleep 0.5
done
during=$(rss_kib)
log "daemon RSS ${before} KiB before the flood, ${during} KiB during it"
[ "$((during - before))" -lt 65536 ] || fail "the flood grew the daemon by $((during - before)) KiB"

boot=$(field a "$ID" boot)
last=$(field a "$ID" counter)
migrate_ok a b "$ID" cold >/dev/null
assert_alive_on b "$ID" "$boot" "$last"
wait "$FLOOD" || true
refused=$(grep -c "refused" "$MIG_WORK/a.log" || true)
log "$refused flood connections refused or evicted by edge-a"
assert_ge "$refused" 100 "flood connections edge-a dealt with"
pass
