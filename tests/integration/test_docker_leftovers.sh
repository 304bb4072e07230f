#!/usr/bin/env bash
# Docker migrations leave no copies of a container's memory behind: not the
# ctrd-checkpoint* directories containerd unpacks every restore into (it
# never removes them: containerd_staging.hpp), not checkpoints under the
# engines' data roots, not images in either daemon's storage — after a
# migration that succeeds (cold A→B) and one whose restore fails (B→A with
# dest.restore.fail at A: rolled back, the container runs on at B). What
# stays in the storage is the CRIU logs of each migration
# (<storage>/{outgoing,incoming}/<id>/work, docs/operations.md).
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"

NAME=dk-left

require_root_tools
setup_docker_hosts
docker_image_copy a b

# The ctrd-checkpoint* directories now (containerd's temporary directory is
# the engines' $TMPDIR, or /tmp).
staged() { find "${TMPDIR:-/tmp}" -maxdepth 1 -name 'ctrd-checkpoint*' 2>/dev/null | sort; }
before_staged=$(staged)

# assert_no_leftovers WHEN: no new staged copy, no checkpoint in an engine's
# data root, no image or round directory in a daemon's storage.
assert_no_leftovers() {
  local when=$1 new x left
  new=$(comm -13 <(printf '%s\n' "$before_staged") <(staged) | sed '/^$/d')
  # shellcheck disable=SC2086 # one directory per line
  [ -z "$new" ] || fail "$when: containerd's copies of the checkpoint left behind: $new ($(du -sh $new 2>/dev/null | tr '\n' ' '))"
  for x in a b; do
    left=$(find "$(docker_data_root "$x")/containers" -mindepth 3 -maxdepth 3 -path '*/checkpoints/*' 2>/dev/null | head -n 5)
    [ -z "$left" ] || fail "$when: checkpoints left in engine $x's data root: $left"
    left=$(find "$MIG_WORK/$x/storage" \( -name '*.img' -o -name 'round-*' -o -name 'stage-*' \) 2>/dev/null | head -n 5)
    [ -z "$left" ] || fail "$when: images left in $(host_node "$x")'s storage: $left"
  done
}

dk a run -d --name "$NAME" --network "$MIG_DOCKER_NET" "$MIG_DOCKER_IMAGE" \
  /bin/memcounter --mib 32 --dirty-mib-s 2 --state /data >/dev/null
wait_for docker_counter_at_least a "$NAME" 2 10 || fail "the counter never started on A"

boot=$(docker_field a "$NAME" boot)
last=$(docker_field a "$NAME" counter)
migrate_ok a b "$NAME" cold >/dev/null
assert_docker_alive_on b "$NAME" "$boot" "$last"
assert_no_leftovers "after a migration"

log "a restore that fails at A"
daemon_stop a || true
daemon_start a MIGRATED_FAULT=dest.restore.fail || fail "edge-a did not restart with the fault"
last=$(docker_field b "$NAME" counter)
rc=0
out=$(ctl b migrate "$NAME" --to edge-a --json) || rc=$?
[ "$rc" != 0 ] || fail "the migration succeeded despite dest.restore.fail: $out"
assert_eq rolled_back "$(json_get "$out" .result)" "result of the failed restore"
assert_docker_alive_on b "$NAME" "$boot" "$last"
[ -z "$(docker_state a "$NAME")" ] || fail "$NAME exists on A after the failed restore: $(docker_state a "$NAME")"
assert_no_leftovers "after a failed restore"

log "precopy back to A"
daemon_stop a || true
daemon_start a || fail "edge-a did not restart"
last=$(docker_field b "$NAME" counter)
migrate_ok b a "$NAME" precopy >/dev/null
assert_docker_alive_on a "$NAME" "$boot" "$last"
assert_no_leftovers "after a precopy migration"
pass
