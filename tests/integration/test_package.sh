#!/usr/bin/env bash
# The Debian packages as an operator gets them: scripts/package.sh builds
# them; their contents (binaries in /usr/bin, the unit, the conffile, man
# pages, completion) and dependencies (runtime only) are checked; `dpkg -i`
# installs them on this machine. Two emulated hosts then run the installed
# migrated exactly as the installed unit's ExecStartPre and ExecStart lines
# say, each with the installed configuration edited for it, and the
# installed migratectl moves a live memcounter a → b: it continues there.
# The man pages open with man(1), and the installed completion completes
# every subcommand `migratectl --help` lists. At the end the packages are
# purged again (unless they were installed before the test).
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"

ID=mc-pkg

require_root_tools
command -v dpkg-deb >/dev/null 2>&1 || skip "dpkg-deb is not installed (Debian package dpkg)"
command -v cpack >/dev/null 2>&1 || skip "cpack is not installed (Debian package cmake)"

setup_hosts
dist=$TEST_WORK/dist
MIGRATED_DIST_DIR=$dist MIGRATED_BUILD_DIR=$MIGRATED_BUILD_DIR bash "$MIGRATED_SOURCE_DIR/scripts/package.sh" \
  >"$TEST_WORK/package.out" 2>"$TEST_WORK/package.err" || fail "package.sh: $(tail -n 20 "$TEST_WORK/package.err")"
version=$("$MIG_BUILD/migrated" --version | awk '{print $NF}')
arch=$(dpkg --print-architecture)
deb=$dist/migrated_${version}_$arch.deb
[ -f "$deb" ] || fail "no $deb (package.sh made: $(cat "$TEST_WORK/package.out"))"
criu_deb=$(ls "$dist"/criu_*_"$arch".deb 2>/dev/null || true)

# --- what the package holds ----------------------------------------------------
contents=$(dpkg-deb -c "$deb" | awk '{print $NF}' | sed 's#^\./#/#')
for f in /usr/bin/migrated /usr/bin/migratectl /usr/bin/migrated-ca /usr/lib/systemd/system/migrated.service \
  /etc/migrated/migrated.yaml /usr/share/man/man8/migrated.8.gz /usr/share/man/man8/migratectl.8.gz \
  /usr/share/man/man5/migrated.yaml.5.gz /usr/share/bash-completion/completions/migratectl \
  /usr/lib/sysctl.d/60-migrated.conf; do
  grep -qxF "$f" <<<"$contents" || fail "the package lacks $f"
done
! grep -q '^/usr/local' <<<"$contents" || fail "the package installs under /usr/local"
dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./conffiles | grep -qxF /etc/migrated/migrated.yaml ||
  fail "/etc/migrated/migrated.yaml is not a conffile"
depends=$(dpkg-deb -f "$deb" Depends)
# The package names alone, one a line (versions and alternatives apart).
names=$(sed 's/([^)]*)//g; s/[,|]/\n/g' <<<"$depends" | tr -d ' ' | grep -v '^$')
for d in criu runc iptables iproute2 'libprotobuf[0-9]+' 'libssl[0-9]+' libzstd1 'libprometheus-cpp-core.*'; do
  grep -qE "^$d\$" <<<"$names" || fail "Depends lacks $d: $depends"
done
build_only='^(build-essential|gcc(-[0-9]+)?|g\+\+(-[0-9]+)?|clang.*|cmake|docker-registry|openssh-.*|catch2|libboost.*|.*-dev)$'
! grep -E "$build_only" <<<"$names" || fail "Depends names what only a build needs: $depends"
if [ -n "$criu_deb" ]; then
  dpkg-deb -c "$criu_deb" | grep -q '\./usr/sbin/criu$' || fail "$criu_deb lacks /usr/sbin/criu"
  grep -q '0005-network-lock-in-a-config-read-after-rpc' <<<"$(dpkg-deb -f "$criu_deb" Description)" ||
    fail "the CRIU package does not say which patches it carries"
fi
log "packages: $(basename "$deb") ($(du -k "$deb" | cut -f1) KiB)${criu_deb:+, $(basename "$criu_deb")}"

# --- dpkg -i ---------------------------------------------------------------------
installed_before() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
purge=()
for p in migrated criu; do installed_before "$p" || purge+=("$p"); done
purge_packages() { [ "${#purge[@]}" = 0 ] || dpkg -P "${purge[@]}" >/dev/null 2>&1 || true; }
on_exit purge_packages
# The install raises the pipe limit CRIU's page pipes need (here, where
# root lacks CAP_SYS_RESOURCE) when it is lower: start from Linux's default.
pipe_limit_before=$(cat /proc/sys/fs/pipe-max-size)
restore_pipe_limit() { echo "$pipe_limit_before" >/proc/sys/fs/pipe-max-size; }
on_exit restore_pipe_limit
echo 1048576 >/proc/sys/fs/pipe-max-size
dpkg -i ${criu_deb:+"$criu_deb"} "$deb" >"$TEST_WORK/dpkg.out" 2>&1 || fail "dpkg -i: $(tail -n 20 "$TEST_WORK/dpkg.out")"
assert_eq 4194304 "$(cat /proc/sys/fs/pipe-max-size)" "fs.pipe-max-size after dpkg -i"
grep -qx 'fs.pipe-max-size = 4194304' /usr/lib/sysctl.d/60-migrated.conf || fail "the sysctl.d file does not set the limit"
installed_before migrated || fail "migrated is not installed after dpkg -i"
unit=$(dpkg -L migrated | grep '/systemd/system/migrated\.service$' | head -n 1)
[ -f "$unit" ] || fail "dpkg -L migrated names no unit"

# The unit's own command lines, the config path in them replaced by each
# host's edited copy of the installed configuration.
read -ra start_pre <<<"$(sed -n 's/^ExecStartPre=//p' "$unit")"
read -ra start <<<"$(sed -n 's/^ExecStart=//p' "$unit")"
assert_eq /usr/bin/migrated "${start[0]}" "the installed unit's ExecStart binary"
assert_eq "/usr/bin/migrated --config /etc/migrated/migrated.yaml" "${start[*]}" "the installed unit's ExecStart"
with_config() { local c=$1; shift; local a; for a in "$@"; do [ "$a" = /etc/migrated/migrated.yaml ] && a=$c; printf '%s\n' "$a"; done; }

for x in a b; do
  write_config "$x"  # this test host's values, merged into the installed file
  python3 - /etc/migrated/migrated.yaml "$MIG_WORK/$x.yaml" "$MIG_WORK/$x.yaml" <<'PY'
import sys, yaml
installed, host, out = sys.argv[1:]
cfg = yaml.safe_load(open(installed))
def merge(into, over):
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(into.get(k), dict): merge(into[k], v)
        else: into[k] = v
merge(cfg, yaml.safe_load(open(host)))
cfg["peers"] = yaml.safe_load(open(host))["peers"]  # this host's peer only
cfg.pop("http", None)  # loopback HTTP is the example's; not this test's
open(out, "w").write("# /etc/migrated/migrated.yaml, edited for this host\n" + yaml.safe_dump(cfg, sort_keys=False))
PY
  grep -q "^node: $(host_node "$x")$" "$MIG_WORK/$x.yaml" || fail "the edited config of $x: $(cat "$MIG_WORK/$x.yaml")"
  mapfile -t pre < <(with_config "$MIG_WORK/$x.yaml" "${start_pre[@]}")
  in_host "$x" "${pre[@]}" >"$TEST_WORK/check-$x.out" 2>&1 || fail "ExecStartPre for $x: $(cat "$TEST_WORK/check-$x.out")"
done

# migratectl is the installed one from here on.
ctl() {
  local x=$1; shift
  local id=${MIG_CTL_ID:-$MIG_TLS/controller}
  in_host "$x" /usr/bin/migratectl --daemon "$(host_addr "$x"):$MIG_TCP_PORT" \
    --ca "$(dirname "$id")/ca.crt" --cert "$id.crt" --key "$id.key" "$@"
}
start_installed() {
  local x=$1 cmd
  mapfile -t cmd < <(with_config "$MIG_WORK/$x.yaml" "${start[@]}")
  nsenter --net="/run/netns/$(host_ns "$x")" "${cmd[@]}" </dev/null >>"$MIG_WORK/$x.out" 2>&1 &
  MIG_DAEMON_PID[$x]=$!
  daemon_wait_ready "$x"
}
on_exit daemons_stop
start_installed a || fail "the installed migrated did not start on edge-a"
start_installed b || fail "the installed migrated did not start on edge-b"
assert_eq "/usr/bin/migrated" "$(readlink "/proc/${MIG_DAEMON_PID[a]}/exe")" "the binary edge-a runs"

start_counter "$ID" --mib 16 --dirty-mib-s 2
boot=$(field a "$ID" boot)
last=$(field a "$ID" counter)
out=$(migrate_ok a b "$ID" cold)
assert_absent a "$ID"
assert_alive_on b "$ID" "$boot" "$last"
log "the installed migrated moved $ID a -> b, downtime $(json_get "$out" .downtime_ms) ms"

# --- man pages and completion ------------------------------------------------------
for page in "8 migrated" "8 migratectl" "5 migrated.yaml"; do
  # shellcheck disable=SC2086 # section and name
  path=$(man -w $page 2>/dev/null) || fail "man -w $page finds nothing"
  case "$path" in /usr/share/man/*) ;; *) fail "man $page is $path, not the package's" ;; esac
  # shellcheck disable=SC2086
  MANWIDTH=80 man $page 2>/dev/null | grep -q "migrated" || fail "man $page shows nothing"
done
commands=$(/usr/bin/migratectl --help | awk '/^Subcommands:/ {on = 1; next} on && NF {print $1}' | sort)
[ -n "$commands" ] || fail "migratectl --help lists no subcommands"
# shellcheck source=/dev/null
source /usr/share/bash-completion/completions/migratectl
COMP_WORDS=(migratectl "") COMP_CWORD=1 COMPREPLY=()
_migratectl migratectl "" migratectl
assert_eq "$commands" "$(printf '%s\n' "${COMPREPLY[@]}" | sort)" "subcommands the completion offers"
COMP_WORDS=(migratectl migrate web --method "") COMP_CWORD=4 COMPREPLY=()
_migratectl migratectl "" --method
assert_eq "$(/usr/bin/migratectl migrate --help | sed -n 's/.*--method TEXT:{\([^}]*\)}.*/\1/p' | tr , '\n' | sort)" \
  "$(printf '%s\n' "${COMPREPLY[@]}" | sort)" "methods the completion offers"
pass
