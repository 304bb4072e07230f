#!/usr/bin/env bash
# Set up this machine for migrated from nothing: Debian packages, a CRIU that
# works on this kernel, and the project build. Idempotent: a second run only
# rebuilds incrementally.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
build_dir=${MIGRATED_BUILD_DIR:-$here/build}
criu_min_version=4.1
# Patches applied to CRIU's source before building (see build_criu), and the
# record of which ones the installed /usr/local/sbin/criu was built with.
criu_patch_dir=$here/scripts/criu
criu_marker=/usr/local/lib/migrated/criu.patches

log() { printf 'setup: %s\n' "$*" >&2; }

need_root() {
  if [ "$(id -u)" != 0 ]; then
    log "must run as root (installs packages, builds CRIU)"; exit 1
  fi
}

packages=(
  build-essential cmake pkg-config git
  libboost-dev libboost-system-dev libprotobuf-dev protobuf-compiler
  libspdlog-dev libfmt-dev libyaml-cpp-dev libzstd-dev catch2 libssl-dev
  libsystemd-dev libxxhash-dev nlohmann-json3-dev libcli11-dev prometheus-cpp-dev
  runc iptables iproute2 busybox-static tar rsync openssh-client openssh-server
  systemd procps psmisc util-linux jq zstd docker.io docker-registry
  redis-server redis-tools containernetworking-plugins python3-protobuf tcpdump prometheus
  clang-16 libclang-rt-16-dev  # tests/fuzz: libFuzzer is part of clang's runtime
)

# Build dependencies of CRIU (see docs/operations.md, "CRIU").
criu_build_deps=(
  protobuf-c-compiler libprotobuf-c-dev python3-protobuf libnl-3-dev
  libnet1-dev libcap-dev libaio-dev libbsd-dev libgnutls28-dev
  libnftables-dev uuid-dev libdrm-dev xz-utils patch
)

apt_updated=0
apt_update_once() {
  if [ "$apt_updated" = 0 ]; then
    log "apt-get update"
    apt-get update -qq
    apt_updated=1
  fi
}

install_packages() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  apt_update_once
  log "installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# CRIU keeps what it learned about the kernel in <RUNDIR>/criu.kdat, but
# only on tmpfs (kerndat_save_cache()); elsewhere every dump and restore
# probes the kernel again, ~30 ms of each downtime. /run is tmpfs on a
# systemd host; where it is not, the cache goes to /dev/shm.
criu_rundir() {
  if [ "$(stat -f -c %T /run 2>/dev/null)" != tmpfs ] && [ "$(stat -f -c %T /dev/shm 2>/dev/null)" = tmpfs ]; then
    echo /dev/shm
  else
    echo /run
  fi
}

# One line "sha256  name" per patch in $criu_patch_dir, in the order applied,
# and the cache directory it was built for.
criu_patches_digest() {
  local p
  for p in "$criu_patch_dir"/*.patch; do
    if [ -f "$p" ]; then
      printf '%s  %s\n' "$(sha256sum <"$p" | awk '{print $1}')" "$(basename "$p")"
    fi
  done
  printf 'RUNDIR=%s\n' "$(criu_rundir)"
}

criu_ok() {
  command -v criu >/dev/null 2>&1 || return 1
  local v
  v=$(criu --version 2>/dev/null | awk '/^Version:/ {print $2}')
  [ -n "$v" ] || return 1
  [ "$(printf '%s\n%s\n' "$criu_min_version" "$v" | sort -V | head -n1)" = "$criu_min_version" ] || return 1
  # Built by us with exactly the current patches? (e.g. without the
  # SO_PASSCRED fix, CRIU cannot dump TCP sockets on kernels >= 6.16)
  [ -f "$criu_marker" ] || return 1
  [ "$(cat "$criu_marker")" = "$(criu_patches_digest)" ] || return 1
  criu check >/dev/null 2>&1
}

# Debian 12's CRIU (3.17) fails on kernels >= 6.13 (split vvar). Build the
# newer CRIU from Debian's own source archive (suite trixie). The .dsc may not
# download, but the orig tarball does; its checksum is verified.
build_criu() {
  local srcfile=/etc/apt/sources.list.d/migrated-criu-src.sources
  local uri
  uri=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  if [ -z "$uri" ]; then
    uri=$(awk '$1=="deb" {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
  fi
  [ -n "$uri" ] || { log "cannot find a Debian mirror in apt's sources"; exit 1; }
  install_packages "${criu_build_deps[@]}"
  local work
  work=$(mktemp -d /tmp/migrated-criu.XXXXXX)
  trap 'rm -f "$srcfile"; apt-get update -qq >/dev/null 2>&1 || true' RETURN
  cat >"$srcfile" <<SRC
Types: deb-src
URIs: $uri
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  apt-get update -qq
  (cd "$work" && apt-get source --download-only criu >/dev/null 2>&1 || true)
  local tarball
  tarball=$(ls "$work"/criu_*.orig.tar.* 2>/dev/null | head -n1 || true)
  [ -n "$tarball" ] || { log "could not download CRIU's source from Debian"; exit 1; }
  case "$(basename "$tarball")" in
    criu_4.1.1.orig.tar.xz)
      echo "6de15517e9b86997b34f67d99dced2a5  $tarball" | md5sum -c --quiet - \
        || { log "CRIU source checksum mismatch"; exit 1; } ;;
    *) log "note: unexpected CRIU source $(basename "$tarball"); building it anyway" ;;
  esac
  tar -C "$work" -xf "$tarball"
  local dir
  dir=$(find "$work" -maxdepth 1 -type d -name 'criu-*' | head -n1)
  local p
  for p in "$criu_patch_dir"/*.patch; do
    [ -f "$p" ] || continue
    log "applying $(basename "$p")"
    patch -d "$dir" -p1 --forward --batch --quiet <"$p" \
      || { log "CRIU patch $(basename "$p") does not apply"; exit 1; }
  done
  log "building CRIU in $dir"
  make -C "$dir" -j"$(nproc)" RUNDIR="$(criu_rundir)" criu >"$work/build.log" 2>&1 \
    || { tail -n 30 "$work/build.log" >&2; exit 1; }
  install -m 0755 "$dir/criu/criu" /usr/local/sbin/criu
  install -d -m 0755 "$(dirname "$criu_marker")"
  criu_patches_digest >"$criu_marker"
  rm -rf "$work"
  hash -r
}

build_project() {
  log "building migrated in $build_dir"
  cmake -S "$here" -B "$build_dir" -DCMAKE_BUILD_TYPE=${MIGRATED_BUILD_TYPE:-RelWithDebInfo} >/dev/null
  cmake --build "$build_dir" -j"$(nproc)"
}

need_root
install_packages "${packages[@]}"
if ! criu_ok; then
  log "no working CRIU >= $criu_min_version built with scripts/criu/*.patch; building it"
  build_criu
  criu_ok || { log "CRIU still fails 'criu check': $(criu check 2>&1 | tail -n 3)"; exit 1; }
fi
log "criu $(criu --version | awk '/^Version:/ {print $2}'): $(criu check 2>&1 | tail -n1)"
# What the package's sysctl.d file sets (packaging/sysctl/60-migrated.conf):
# CRIU's page pipes reach 4 MiB although root here lacks CAP_SYS_RESOURCE.
pipe_limit=$(sed -n 's/^fs.pipe-max-size *= *//p' "$here/packaging/sysctl/60-migrated.conf")
if [ "$(cat /proc/sys/fs/pipe-max-size)" -lt "$pipe_limit" ]; then
  log "fs.pipe-max-size $(cat /proc/sys/fs/pipe-max-size) -> $pipe_limit (CRIU's page pipes)"
  echo "$pipe_limit" >/proc/sys/fs/pipe-max-size
fi
if [ "${MIGRATED_SKIP_BUILD:-0}" != 1 ]; then
  build_project
fi
