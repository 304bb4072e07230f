# OCI bundles for test containers: a busybox-static rootfs with the
# memcounter workload as init, and helpers to start a container with runc and
# read the workload's status file. Sourced by scripts/demo.sh and
# tests/integration/lib.sh; needs MIGRATED_BUILD_DIR (or build/).

BUSYBOX=${BUSYBOX:-/bin/busybox}
BUSYBOX_APPLETS=(sh ls cat sleep ps echo)

bundle_build_dir() {
  if [ -n "${MIGRATED_BUILD_DIR:-}" ]; then
    printf '%s\n' "$MIGRATED_BUILD_DIR"
  else
    printf '%s\n' "$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/build"
  fi
}

make_rootfs() {
  local rootfs=$1 memcounter=$2 applet
  mkdir -p "$rootfs"/{bin,data,proc,sys,dev,tmp,etc}
  chmod 1777 "$rootfs/tmp"
  install -m 0755 "$BUSYBOX" "$rootfs/bin/busybox"
  for applet in "${BUSYBOX_APPLETS[@]}"; do
    ln -sf busybox "$rootfs/bin/$applet"
  done
  install -m 0755 "$memcounter" "$rootfs/bin/memcounter"
}

# add_binaries ROOTFS PROGRAM...: copies Debian programs into a rootfs with
# the shared libraries they load (as ldd lists them), for containers that
# run real services (redis-server, ...) next to busybox.
add_binaries() {
  local rootfs=$1 prog lib; shift
  for prog in "$@"; do
    prog=$(command -v "$prog") || { printf 'add_binaries: %s is not installed\n' "$1" >&2; return 1; }
    cp -L --parents "$prog" "$rootfs"
    for lib in $(ldd "$prog" | awk '/=> \// { print $3 } /^[[:space:]]*\// { print $1 }'); do
      [ -e "$rootfs$lib" ] || cp -L --parents "$lib" "$rootfs"
    done
  done
}

# Edits runc's default spec: our args, no terminal, a writable root, the
# cgroup path of this host, and a fresh network namespace of its own.
edit_spec() {
  local dir=$1 cgroup_path=$2; shift 2
  local args_json tmp
  args_json=$(jq -cn '$ARGS.positional' --args -- "$@")
  tmp=$(mktemp "$dir/config.json.XXXXXX")
  jq --argjson args "$args_json" --arg cg "$cgroup_path" '
      .process.terminal = false
    | .process.args = $args
    | .root.readonly = false
    | .linux.cgroupsPath = $cg
    | .linux.namespaces |= map(del(.path))
  ' "$dir/config.json" >"$tmp"
  mv "$tmp" "$dir/config.json"
}

# make_bundle DIR ID CGROUP_PARENT -- ARGS...
make_bundle() {
  local dir=$1 id=$2 cgroup_parent=$3
  shift 3
  [ "${1:-}" = -- ] && shift
  [ $# -gt 0 ] || { printf 'make_bundle: no container arguments\n' >&2; return 1; }
  local memcounter
  memcounter=$(bundle_build_dir)/memcounter
  [ -x "$memcounter" ] || { printf 'make_bundle: %s is missing (build the project)\n' "$memcounter" >&2; return 1; }
  rm -rf "$dir"
  mkdir -p "$dir"
  make_rootfs "$dir/rootfs" "$memcounter"
  runc spec --bundle "$dir"
  edit_spec "$dir" "/$cgroup_parent/$id" "$@"
}

# start_container RUNC_ROOT DIR ID: detached, from the root namespaces.
start_container() {
  local root=$1 dir=$2 id=$3 log rc=0
  log=$(mktemp /tmp/migrated-runc.XXXXXX)
  runc --root "$root" --log "$log" run -d --bundle "$dir" "$id" </dev/null >/dev/null 2>&1 || rc=$?
  if [ "$rc" != 0 ]; then
    printf 'start_container %s: runc run failed (%s):\n' "$id" "$rc" >&2
    tail -n 5 "$log" >&2
  fi
  rm -f "$log"
  return "$rc"
}

# Prints runc's status of ID under RUNC_ROOT ("running", "paused", ...) or
# nothing when runc does not know it.
container_state() {
  runc --root "$1" state "$2" 2>/dev/null | jq -r '.status' 2>/dev/null || true
}

# Kills and deletes ID under RUNC_ROOT whatever its state; never fails.
remove_container() {
  local root=$1 id=$2
  [ -d "$root" ] || return 0
  runc --root "$root" kill "$id" KILL >/dev/null 2>&1 || true
  runc --root "$root" delete -f "$id" >/dev/null 2>&1 || true
}

# Removes the cgroup directories /CGROUP_PARENT/ID (v1 controllers or v2)
# that a killed container may leave, then the parent if it is empty.
remove_cgroups() {
  local parent=$1 id=$2 d
  for d in /sys/fs/cgroup/"$parent"/"$id" /sys/fs/cgroup/*/"$parent"/"$id" \
           /sys/fs/cgroup/"$parent" /sys/fs/cgroup/*/"$parent"; do
    if [ -d "$d" ]; then rmdir "$d" 2>/dev/null || true; fi
  done
}

# status_field BUNDLE KEY: a field of the workload's status line.
status_field() {
  local file=$1/rootfs/data/status
  [ -r "$file" ] || return 1
  tr ' ' '\n' <"$file" | awk -F= -v k="$2" '$1 == k { print $2; found = 1 } END { exit !found }'
}
