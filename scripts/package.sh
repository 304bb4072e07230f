#!/usr/bin/env bash
# Builds the Debian packages into dist/ (or $MIGRATED_DIST_DIR):
#   migrated_<version>_<arch>.deb  from the build tree (CPack, packaging/deb.cmake)
#   criu_<version>-0migrated1_<arch>.deb  the CRIU scripts/setup.sh built with
#                                  scripts/criu/*.patch, when the distribution
#                                  offers no CRIU >= 4.1 (packaging/criu)
# Runs scripts/setup.sh first when there is no build yet. Prints the paths of
# the packages it made.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
build_dir=${MIGRATED_BUILD_DIR:-$here/build}
dist=${MIGRATED_DIST_DIR:-$here/dist}
criu_min_version=4.1

log() { printf 'package.sh: %s\n' "$*" >&2; }

if [ ! -f "$build_dir/CPackConfig.cmake" ] || [ ! -x "$build_dir/migrated" ]; then
  log "no build in $build_dir: running scripts/setup.sh"
  bash "$here/scripts/setup.sh"
fi
cmake "$build_dir" >/dev/null  # the install rules and CPack's configuration as they are now
cmake --build "$build_dir" -j"$(nproc)" --target migrated migratectl man >&2
mkdir -p "$dist"
staging="$build_dir/package"
rm -rf "$staging"

log "migrated: cpack in $staging"
(cd "$build_dir" && cpack -G DEB -B "$staging" >"$build_dir/cpack.log" 2>&1) \
  || { tail -n 30 "$build_dir/cpack.log" >&2; exit 1; }
made=("$staging"/migrated_*.deb)

# A CRIU package only where the distribution has no CRIU new enough.
candidate=$(apt-cache policy criu 2>/dev/null | awk '/Candidate:/ {print $2}')
if [ -n "$candidate" ] && [ "$candidate" != "(none)" ] && dpkg --compare-versions "$candidate" ge "$criu_min_version"; then
  log "the distribution offers criu $candidate: no CRIU package of our own"
else
  criu=$(command -v criu || true)
  [ -n "$criu" ] || { log "no CRIU to package: run scripts/setup.sh"; exit 1; }
  version=$("$criu" --version | awk '/^Version:/ {print $2}')
  [ -n "$version" ] || { log "$criu --version says no version"; exit 1; }
  patches=$(cd "$here/scripts/criu" && ls -- *.patch | sed 's/\.patch$//' | paste -sd, - | sed 's/,/, /g')
  log "criu $version ($criu): cpack"
  cmake -S "$here/packaging/criu" -B "$build_dir/criu-package" -DCRIU_BINARY="$criu" -DCRIU_VERSION="$version" \
    -DCRIU_PATCHES="$patches" >/dev/null
  (cd "$build_dir/criu-package" && cpack -G DEB -B "$staging" >"$build_dir/cpack-criu.log" 2>&1) \
    || { tail -n 30 "$build_dir/cpack-criu.log" >&2; exit 1; }
  made+=("$staging"/criu_*.deb)
fi

for deb in "${made[@]}"; do
  mv -f "$deb" "$dist/"
  printf '%s\n' "$dist/$(basename "$deb")"
done
