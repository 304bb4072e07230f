# journald without systemd as PID 1: start systemd-journald by hand when
# nothing answers on its sockets, so the journald log sink and journalctl
# work. Sourced by scripts/test.sh, scripts/demo.sh and tests/integration/lib.sh.

JOURNALD_BIN=${JOURNALD_BIN:-/lib/systemd/systemd-journald}
JOURNALD_SOCKET=/run/systemd/journal/socket
JOURNALD_STARTED_PID=

# True when a journald accepts streams (a stopped one leaves its socket files
# behind, so their presence proves nothing). Logs nothing: `true` writes no line.
journald_alive() {
  [ -S "$JOURNALD_SOCKET" ] && systemd-cat -t migrated-probe true 2>/dev/null
}

# Starts journald unless one runs; sets JOURNALD_STARTED_PID when this call
# started it. Fails when it does not answer within 5 s.
ensure_journald() {
  journald_alive && return 0
  [ -x "$JOURNALD_BIN" ] || { printf 'ensure_journald: %s is missing\n' "$JOURNALD_BIN" >&2; return 1; }
  mkdir -p /run/systemd/journal
  setsid "$JOURNALD_BIN" </dev/null >/dev/null 2>&1 &
  JOURNALD_STARTED_PID=$!
  local i
  for ((i = 0; i < 50; i++)); do
    journald_alive && return 0
    sleep 0.1
  done
  printf 'ensure_journald: journald does not answer on %s after 5 s\n' "$JOURNALD_SOCKET" >&2
  return 1
}

# Stops journald if ensure_journald started it in this shell.
stop_started_journald() {
  [ -n "$JOURNALD_STARTED_PID" ] || return 0
  kill -TERM "$JOURNALD_STARTED_PID" 2>/dev/null || true
  JOURNALD_STARTED_PID=
}
