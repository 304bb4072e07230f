#!/usr/bin/env bash
# What crosses the link is encrypted: 16 samples of 64 bytes taken from a
# live container's memory (incompressible content, so compression cannot
# hide them) are looked for in a capture of every packet between the hosts
# during a cold migration. None may appear. As the control, the same 16
# samples are found in the memory of the copy restored on edge-b (they did
# cross the link), and the capture holds at least as many bytes as the
# container's memory (it saw the transfer).
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"

ID=mc-encrypted
MIB=64
PY=/usr/bin/python3

# container_pid X: the container's init process on host X.
container_pid() { runc --root "$(host_runc_root "$1")" state "$ID" | jq -r .pid; }

# sample PID OUT: 16 samples from the largest anonymous mapping of PID.
sample() {
  "$PY" - "$1" "$2" <<'PY'
import random, sys
pid, out = sys.argv[1], sys.argv[2]
best = None
for line in open(f"/proc/{pid}/maps"):
    parts = line.split()
    lo, hi = (int(x, 16) for x in parts[0].split("-"))
    if "rw" in parts[1] and len(parts) < 6 and (best is None or hi - lo > best[1] - best[0]):
        best = (lo, hi)
lo, hi = best
rng = random.Random()
samples = []
with open(f"/proc/{pid}/mem", "rb") as mem:
    for _ in range(16):
        page = lo + rng.randrange((hi - lo) // 4096) * 4096
        mem.seek(page + 64 + rng.randrange(0, 4096 - 128, 8))  # past the page header
        samples.append(mem.read(64).hex())
open(out, "w").write("\n".join(samples) + "\n")
PY
}

# found_in FILE SAMPLES: how many samples occur in FILE.
found_in() {
  "$PY" - "$1" "$2" <<'PY'
import sys
data = open(sys.argv[1], "rb").read()
print(sum(bytes.fromhex(s) in data for s in open(sys.argv[2]).read().split()))
PY
}

# found_in_memory PID SAMPLES: how many samples occur in the process's anonymous memory.
found_in_memory() {
  "$PY" - "$1" "$2" <<'PY'
import sys
pid, wanted = sys.argv[1], [bytes.fromhex(s) for s in open(sys.argv[2]).read().split()]
data = bytearray()
with open(f"/proc/{pid}/mem", "rb") as mem:
    for line in open(f"/proc/{pid}/maps"):
        parts = line.split()
        if "rw" not in parts[1] or len(parts) >= 6:
            continue
        lo, hi = (int(x, 16) for x in parts[0].split("-"))
        mem.seek(lo)
        try:
            data += mem.read(hi - lo)
        except OSError:
            pass
print(sum(w in data for w in wanted))
PY
}

require_root_tools
command -v tcpdump >/dev/null || skip "tcpdump is not installed"
setup_hosts_and_daemons
start_counter "$ID" --mib "$MIB" --dirty-mib-s 0 --content random --no-net
sample "$(container_pid a)" "$TEST_WORK/samples"
assert_eq 16 "$(found_in_memory "$(container_pid a)" "$TEST_WORK/samples")" "samples found in the source's memory"

cap=$TEST_WORK/link.pcap
in_host a tcpdump -i "$MIG_VETH_A" -s 0 -B 262144 -U -w "$cap" "tcp port $MIG_TCP_PORT" 2>"$TEST_WORK/tcpdump.err" &
dump=$!
on_exit kill "$dump"
wait_for grep -q "listening on" "$TEST_WORK/tcpdump.err" 10 || fail "tcpdump did not start: $(cat "$TEST_WORK/tcpdump.err")"
report=$(migrate_ok a b "$ID" cold)
sleep 0.5
kill -TERM "$dump"  # (an asynchronous command ignores SIGINT)
wait "$dump" || true

captured=$(stat -c %s "$cap")
log "captured $captured bytes; report: bytes_wire $(json_get "$report" .bytes_wire); $(grep -h dropped "$TEST_WORK/tcpdump.err" | tr '\n' ' ')"
! grep -q "^[1-9][0-9]* packets dropped by kernel" "$TEST_WORK/tcpdump.err" ||
  fail "tcpdump dropped packets, the capture is not the whole stream: $(cat "$TEST_WORK/tcpdump.err")"
assert_ge "$captured" "$(json_get "$report" .bytes_wire)" "bytes captured (the whole transfer must be in the capture)"
leaked=$(found_in "$cap" "$TEST_WORK/samples")
log "memory samples found in the capture: $leaked of 16"
assert_eq 0 "$leaked" "memory samples found in clear on the link"
assert_eq 16 "$(found_in_memory "$(container_pid b)" "$TEST_WORK/samples")" \
  "samples found in the restored copy's memory (control)"
pass
