# shellcheck shell=bash
# The RES_* and FAIL_REASON variables set here are read by bench/docker.sh.
# shellcheck disable=SC2034

# The Docker methods of bench/docker.sh other than migrated's: the seeds'
# way (seed E: `docker checkpoint create`, rsync of the checkpoint over ssh,
# with seed A's copy of the writable layer, `docker create` with the same
# options on B, the checkpoint placed where the engine looks, `docker start
# --checkpoint`) and two floors on engine A
# with nothing sent: the Engine API's checkpoint + start, and runc's
# checkpoint under the engine's runc root + start (migrated's dump path).
# Sourced after scripts/lib/docker.sh, bench/lib/common.sh and seeds.sh
# (seeds_init's sshd in host B, seeds_rsync from host A).
#
# The workload is a container named NAME on engine A created with the
# options in DK_OPTS (array) and the command DK_CMD (array). Each method
# leaves RES_DOWN, RES_TOTAL (ms), RES_PHASES (JSON), RES_HOST (where the
# container runs after it: a | b) and, on failure, FAIL_REASON.

DK_CKPT=bench
# Staging directory for the seeds' copy on B, on the data roots' filesystem
# so placing the checkpoint is a rename.
DK_STAGE=${MIG_DOCKER_ROOT}/${MIG_NS_PREFIX}-stage
DK_IMAGE_ON_B=1

# dk_data X NAME: the workload's state directory (/data) in NAME on X.
dk_data() {
  local merged
  merged=$(docker_merged "$1" "$2" 2>/dev/null) || return 1
  [ -n "$merged" ] || return 1
  printf '%s/data\n' "$merged"
}

# dk_field X NAME KEY: a field of the workload's status in NAME on X.
dk_field() {
  local data
  data=$(dk_data "$1" "$2") || return 1
  data_field "$data" "$3"
}

dk_id() { dk "$1" inspect "$2" --format '{{.Id}}' 2>/dev/null; }

# dk_checkpoints X ID: where engine X looks for the checkpoints of ID.
dk_checkpoints() { printf '%s/containers/%s/checkpoints\n' "$(docker_data_root "$1")" "$2"; }

# dk_start_workload NAME: a fresh workload on engine A, running for
# BENCH_SETTLE_S seconds past its first ticks.
dk_start_workload() {
  local name=$1 err
  if ! err=$(dk a run -d --name "$name" "${DK_OPTS[@]}" "$MIG_DOCKER_IMAGE" "${DK_CMD[@]}" 2>&1 >/dev/null); then
    FAIL_REASON="docker run failed: $err"
    return 1
  fi
  poll 60 dk_counter_above a "$name" 1 || { FAIL_REASON="the workload never ticked"; return 1; }
  sleep "$BENCH_SETTLE_S"
}

dk_counter_above() {
  local data
  data=$(dk_data "$1" "$2") || return 1
  counter_above "$data" "$3"
}

# dk_verify X NAME BOOT LAST: NAME runs on engine X and the workload has
# continued (workload_continued).
dk_verify() {
  local x=$1 name=$2 boot=$3 last=$4 state data
  state=$(docker_state "$x" "$name")
  if [ "$state" != running ]; then
    FAIL_REASON="not running on $(host_node "$x") after the move (docker: ${state:-no such container})"
    return 1
  fi
  data=$(dk_data "$x" "$name") || { FAIL_REASON="no merged directory for $name on $x"; return 1; }
  workload_continued "$data" "$boot" "$last"
}

# dk_drop NAME: removes NAME from both engines, its checkpoints and staging
# copies; B loses the image again when the run is without it there.
dk_drop() {
  local name=$1 x
  for x in a b; do dk "$x" rm -f -v "$name" >/dev/null 2>&1 || true; done
  rm -rf "${DK_STAGE:?}/$name" "${WORK:?}/dkwork/$name"
  [ "$DK_IMAGE_ON_B" = 1 ] || docker_no_image b
}

# dk_bytes X NAME: the size of NAME's checkpoint on X (the engine keeps it
# after a start), measured after the downtime.
dk_bytes() { du -sb "$(dk_checkpoints "$1" "$(dk_id "$1" "$2")")/$DK_CKPT" 2>/dev/null | cut -f1; }

dk_last_error() { grep -m1 -i 'error' "$1" 2>/dev/null || tail -n 1 "$1" 2>/dev/null; }

# dk_engine_checkpoint NAME: `docker checkpoint create` on A; NAME exits.
dk_engine_checkpoint() {
  local name=$1 log=$WORK/dkwork/$1/checkpoint.out
  mkdir -p "$WORK/dkwork/$name"
  if ! dk a checkpoint create "$name" "$DK_CKPT" >"$log" 2>&1; then
    FAIL_REASON="docker checkpoint create failed: $(dk_last_error "$log")"
    return 1
  fi
}

# dk_engine_start X NAME: `docker start --checkpoint` on X.
dk_engine_start() {
  local x=$1 name=$2 log=$WORK/dkwork/$2/start-$1.out
  mkdir -p "$WORK/dkwork/$name"
  if ! dk "$x" start --checkpoint "$DK_CKPT" "$name" >"$log" 2>&1; then
    FAIL_REASON="docker start --checkpoint on $x failed: $(dk_last_error "$log")"
    return 1
  fi
}

# dk_send_image: the seeds' way to give B the image when it lacks it (seed
# A's full copy): docker save on A, over ssh into docker load on B.
dk_send_image() {
  local rc=0
  # shellcheck disable=SC2086 # SEEDS_RSH is a command line
  dk a save "$MIG_DOCKER_IMAGE" | in_host a $SEEDS_RSH "root@$MIG_ADDR_B" \
    "docker -H unix://$(docker_sock b) load" >/dev/null || rc=$?
  [ "$rc" = 0 ] || { FAIL_REASON="docker save | ssh docker load exited $rc"; return 1; }
}

# Seed E, with seed A's diff copy: checkpoint (the container exits), one
# rsync of the checkpoint directory and the container's writable layer
# (overlay2 UpperDir) to B, the source container removed (seed E does so
# before the destination starts: the address is free again), `docker
# create` with the same options on B, the layer copied into the new
# container's UpperDir and the checkpoint moved under B's
# <data-root>/containers/<id>/checkpoints/, `docker start --checkpoint`.
# Seed E alone sends the checkpoint only; the restore then fails as soon as
# the process has a file of its writable layer open (memcounter's
# /data/ticks.log: CRIU "Can't open file data/ticks.log on restore").
# Downtime = total = checkpoint start -> start returned; with no image on
# B, its transfer comes first (total only).
dk_seeds() {
  local name=$1 src upper upper_b idb t_img t0 t1 t2 t3 t4 t5 img_ms=null rc=0 err stage=$DK_STAGE/$1
  RES_HOST=b
  mkdir -p "$stage"
  src=$(dk_checkpoints a "$(dk_id a "$name")")/$DK_CKPT
  upper=$(dk a inspect "$name" --format '{{.GraphDriver.Data.UpperDir}}')
  now_us t_img
  if [ "$DK_IMAGE_ON_B" = 0 ]; then
    dk_send_image || return 1
    now_us t0
    img_ms=$(ms_between "$t_img" "$t0")
  fi
  now_us t0
  dk_engine_checkpoint "$name" || return 1
  now_us t1
  # Two sources, one connection: $stage/$DK_CKPT and $stage/diff on B.
  seeds_rsync "$(seeds_left_s "$t0")" -- "$src" "$upper" "root@$MIG_ADDR_B:$stage/" || rc=$?
  seeds_rsync_failed "$rc" "checkpoint and writable layer" || return 1
  now_us t2
  dk a rm "$name" >/dev/null 2>&1 || { FAIL_REASON="docker rm on A failed"; return 1; }
  now_us t3
  if ! err=$(dk b create --name "$name" "${DK_OPTS[@]}" "$MIG_DOCKER_IMAGE" "${DK_CMD[@]}" 2>&1 >/dev/null); then
    FAIL_REASON="docker create on B failed: $err"
    return 1
  fi
  idb=$(dk_id b "$name")
  upper_b=$(dk b inspect "$name" --format '{{.GraphDriver.Data.UpperDir}}')
  mkdir -p "$(dk_checkpoints b "$idb")"
  if ! cp -a "$stage/$(basename "$upper")/." "$upper_b/" ||
    ! mv "$stage/$DK_CKPT" "$(dk_checkpoints b "$idb")/"; then
    FAIL_REASON="cannot place the writable layer or the checkpoint on B"
    return 1
  fi
  now_us t4
  dk_engine_start b "$name" || return 1
  now_us t5
  RES_DOWN=$(ms_between "$t0" "$t5")
  RES_TOTAL=$(ms_between "$t_img" "$t5")
  RES_PHASES=$(jq -cn --argjson c "$(ms_between "$t0" "$t1")" --argjson r "$(ms_between "$t1" "$t2")" \
    --argjson rm "$(ms_between "$t2" "$t3")" --argjson cr "$(ms_between "$t3" "$t4")" \
    --argjson s "$(ms_between "$t4" "$t5")" --argjson img "$img_ms" \
    --argjson bytes "$(json_num "$(dk_bytes b "$name")")" \
    --argjson layer "$(json_num "$(du -sb "$upper_b" 2>/dev/null | cut -f1)")" \
    '{checkpoint_ms: $c, rsync_ms: $r, remove_on_a_ms: $rm, create_and_place_ms: $cr, start_ms: $s}
     + (if $img == null then {} else {image_save_load_ms: $img} end)
     + {image_bytes: $bytes, layer_bytes: $layer}')
}

# Floor through the Engine API: checkpoint and start on A, nothing sent.
dk_floor_api() {
  local name=$1 t0 t1 t2
  RES_HOST=a
  now_us t0
  dk_engine_checkpoint "$name" || return 1
  now_us t1
  dk_engine_start a "$name" || return 1
  now_us t2
  RES_DOWN=$(ms_between "$t0" "$t2")
  RES_TOTAL=$RES_DOWN
  RES_PHASES=$(jq -cn --argjson c "$(ms_between "$t0" "$t1")" --argjson s "$(ms_between "$t1" "$t2")" \
    --argjson img "$(json_num "$(dk_bytes a "$name")")" '{checkpoint_ms: $c, start_ms: $s, image_bytes: $img}')
}

dk_not_running() { [ "$(dk a inspect "$1" --format '{{.State.Running}}' 2>/dev/null)" = false ]; }

# Floor through runc: `runc checkpoint` of the container under engine A's
# runc root, images written where the engine looks (as migrated's dump path
# does; no --tcp-established, no --file-locks, as Docker's own), then
# `docker start --checkpoint` once the engine has seen the exit.
dk_floor_runc() {
  local name=$1 id dir work t0 t1 t2 t3
  RES_HOST=a
  id=$(dk_id a "$name")
  dir=$(dk_checkpoints a "$id")/$DK_CKPT
  work=$WORK/dkwork/$name/runc
  mkdir -p "$(dirname "$dir")" "$work"
  now_us t0
  if ! runc --root "$(docker_runc_root a)" checkpoint --image-path "$dir" --work-path "$work" "$id" \
    </dev/null >"$work/runc-checkpoint.out" 2>&1; then
    FAIL_REASON="runc checkpoint failed: $(seeds_last_error "$work" dump.log runc-checkpoint.out)"
    return 1
  fi
  now_us t1
  if ! poll 10 dk_not_running "$name"; then
    FAIL_REASON="engine A still sees $name running after runc checkpoint"
    return 1
  fi
  now_us t2
  dk_engine_start a "$name" || return 1
  now_us t3
  RES_DOWN=$(ms_between "$t0" "$t3")
  RES_TOTAL=$RES_DOWN
  RES_PHASES=$(jq -cn --argjson c "$(ms_between "$t0" "$t1")" --argjson e "$(ms_between "$t1" "$t2")" \
    --argjson s "$(ms_between "$t2" "$t3")" --argjson img "$(json_num "$(dk_bytes a "$name")")" \
    '{checkpoint_ms: $c, engine_sees_exit_ms: $e, start_ms: $s, image_bytes: $img}')
}
