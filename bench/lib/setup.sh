# shellcheck shell=bash
# The RES_* and FAIL_REASON variables set here are read by the callers.
# shellcheck disable=SC2034

# Set-up shared by bench/run.sh and bench/docker.sh: packages, a snapshot of
# the binaries, both daemons, a move with migratectl. Sourced after
# scripts/lib/hosts.sh, bundle.sh and daemons.sh; uses BUILD_DIR and WORK.

say() { printf '\n==> %s\n' "$*" >&2; }

# Debian packages the seeds' way needs, installed when missing; services the
# packages would start are held back (this machine may have no init).
ensure_packages() {
  local need=() made_policy=0
  command -v rsync >/dev/null 2>&1 || need+=(rsync)
  command -v ssh >/dev/null 2>&1 || need+=(openssh-client)
  command -v sshd >/dev/null 2>&1 || [ -x /usr/sbin/sshd ] || need+=(openssh-server)
  command -v jq >/dev/null 2>&1 || need+=(jq)
  command -v gnuplot >/dev/null 2>&1 || need+=(gnuplot-nox)  # bench/plot.sh
  [ ${#need[@]} -gt 0 ] || return 0
  say "installing ${need[*]}"
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    made_policy=1
  fi
  local rc=0
  { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}"; } || rc=$?
  [ "$made_policy" = 0 ] || rm -f /usr/sbin/policy-rc.d
  return "$rc"
}

# snapshot_binaries DIR: copies of migrated, migratectl and memcounter from
# the build directory, taken once each is present and has not changed for a
# few seconds, so a rebuild during the run cannot swap them half-way.
snapshot_binaries() {
  local dst=$1 b age deadline=$((SECONDS + 600))
  mkdir -p "$dst"
  for b in migrated migratectl memcounter; do
    while :; do
      if [ -x "$BUILD_DIR/$b" ]; then
        age=$(($(date +%s) - $(stat -c %Y "$BUILD_DIR/$b")))
        [ "$age" -lt 5 ] || { cp "$BUILD_DIR/$b" "$dst/$b" && break; }
      fi
      [ "$SECONDS" -lt "$deadline" ] || { printf 'bench: %s/%s is not there\n' "$BUILD_DIR" "$b" >&2; return 1; }
      say "waiting for $BUILD_DIR/$b (being rebuilt?)"
      sleep 5
    done
  done
  BINARIES_INFO=$(for b in migrated migratectl memcounter; do
    printf '%s %s; ' "$b" "$(date -u -r "$BUILD_DIR/$b" '+%Y-%m-%d %H:%M UTC')"
  done)
  BINARIES_INFO=${BINARIES_INFO%; }
}

# start_daemons: both daemons from the snapshot; when one does not come up
# (a binary mid-rebuild), a fresh snapshot and another try.
start_daemons() {
  local try x
  for try in 1 2 3; do
    snapshot_binaries "$WORK/bin"
    export MIGRATED_BUILD_DIR=$WORK/bin
    daemons_init "$WORK"
    for x in a b; do
      write_config "$x"
      # Measured as run in production: info, not the tests' debug level.
      sed -i 's/level: debug/level: info/' "$MIG_WORK/$x.yaml"
    done
    if daemon_start a && daemon_start b; then return 0; fi
    daemons_stop
    say "daemons did not start (try $try); waiting for the build"
    sleep 20
  done
  return 1
}

# migrated_move ID METHOD: migratectl migrate on host A, JSON report kept.
migrated_move() {
  local id=$1 method=$2 out rc=0 result
  out=$(ctl_a --timeout-ms 600000 migrate "$id" --to edge-b --method "$method" --json \
    2>"$WORK/reports/$id.err") || rc=$?
  printf '%s\n' "$out" >"$WORK/reports/$id.json"
  if ! jq -e 'type == "object"' <<<"$out" >/dev/null 2>&1; then
    FAIL_REASON="migratectl exited $rc: $(tail -n 1 "$WORK/reports/$id.err")"
    return 1
  fi
  RES_REPORT=$(jq -c . <<<"$out")
  RES_DOWN=$(jq -r .downtime_ms <<<"$out")
  RES_TOTAL=$(jq -r .total_ms <<<"$out")
  result=$(jq -r .result <<<"$out")
  if [ "$rc" != 0 ] || [ "$result" != ok ]; then
    FAIL_REASON="result $result (exit $rc): $(jq -r '.error // ""' <<<"$out")"
    return 1
  fi
}


# busy_jobs: the heavy jobs running now that share the machine's cores: a
# test suite (ctest, scripts/test.sh) or a compiler (cc1plus), one a line.
busy_jobs() {
  if pgrep -x ctest >/dev/null 2>&1; then echo ctest; fi
  if pgrep -f "scripts/test.sh" >/dev/null 2>&1; then echo scripts/test.sh; fi
  if pgrep -x cc1plus >/dev/null 2>&1; then echo cc1plus; fi
}

# wait_idle: returns once busy_jobs finds nothing; says so while it waits.
wait_idle() {
  local said=0 jobs
  while jobs=$(busy_jobs) && [ -n "$jobs" ]; do
    [ "$said" = 1 ] || say "waiting until ${jobs//$'\n'/, } on this machine end"
    said=1
    sleep 10
  done
}

# busy_start FILE: samples busy_jobs each second into FILE until busy_stop;
# busy_summary FILE: what it saw ("none" or "ctest 12 s, cc1plus 3 s").
BUSY_PID=
busy_start() {
  : >"$1"
  (while :; do busy_jobs >>"$1"; sleep 1; done) </dev/null >/dev/null 2>&1 &
  BUSY_PID=$!
}

busy_stop() {
  [ -n "$BUSY_PID" ] || return 0
  kill "$BUSY_PID" 2>/dev/null || true
  wait "$BUSY_PID" 2>/dev/null || true
  BUSY_PID=
}

busy_summary() {
  local s
  s=$(sort "$1" 2>/dev/null | uniq -c | awk '{printf "%s%s %s s", (NR > 1 ? ", " : ""), $2, $1}')
  printf '%s\n' "${s:-none}"
}
