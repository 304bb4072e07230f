# shellcheck shell=bash
# The RES_* and FAIL_REASON variables set here are read by bench/run.sh.
# shellcheck disable=SC2034

# The seeds' way, reproduced for comparison: runc checkpoint, rsync over ssh
# and runc restore (seed C cold; seed D's warm-up checkpoint with
# --leave-running followed by a final checkpoint sent as an rsync delta
# against the warm copy), and the floor: checkpoint and restore on one host
# with no transfer. runc runs from the root namespaces; only rsync and ssh run
# inside host A's network namespace, and sshd inside host B's.
#
# Each method expects a running workload ID on host A and leaves RES_DOWN,
# RES_TOTAL (ms), RES_PHASES (JSON) and, on failure, FAIL_REASON (or
# RES_CAPPED=1 when the downtime passed SEEDS_CAP_S). Image directories live
# under SEEDS_DIR/X/ID (X = a | b), on the same storage as the daemons'.

SEEDS_CAP_S=${SEEDS_CAP_S:-120}
SEEDS_SSHD_PID=
SEEDS_MADE_RUN_SSHD=0

# seeds_init WORK: key pairs and an sshd inside host B listening on B's
# address only, key authentication with throwaway keys.
seeds_init() {
  # (with --images-tmpfs beside migrated's images, so that every row's
  # images are on the same storage)
  SEEDS_DIR=${MIG_IMAGES_ROOT:-$1}/seeds
  local ssh_dir=$1/ssh sshd i
  mkdir -p "$SEEDS_DIR/a" "$SEEDS_DIR/b" "$ssh_dir"
  chmod 700 "$ssh_dir"
  ssh-keygen -q -t ed25519 -N '' -C bench-host -f "$ssh_dir/host_key"
  ssh-keygen -q -t ed25519 -N '' -C bench-client -f "$ssh_dir/client_key"
  install -m 600 "$ssh_dir/client_key.pub" "$ssh_dir/authorized_keys"
  cat >"$ssh_dir/sshd_config" <<EOF
ListenAddress $MIG_ADDR_B
Port 22
HostKey $ssh_dir/host_key
PidFile $ssh_dir/sshd.pid
AuthorizedKeysFile $ssh_dir/authorized_keys
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
EOF
  # sshd refuses to start without its privilege separation directory.
  if [ ! -d /run/sshd ]; then
    mkdir -m 755 /run/sshd
    SEEDS_MADE_RUN_SSHD=1
  fi
  sshd=$(command -v sshd || echo /usr/sbin/sshd)
  nsenter --net="/run/netns/$MIG_NS_B" "$sshd" -D -e -f "$ssh_dir/sshd_config" \
    </dev/null >>"$ssh_dir/sshd.log" 2>&1 &
  SEEDS_SSHD_PID=$!
  SEEDS_RSH="ssh -F /dev/null -i $ssh_dir/client_key -o IdentitiesOnly=yes -o BatchMode=yes"
  SEEDS_RSH+=" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR"
  for ((i = 0; i < 50; i++)); do
    # shellcheck disable=SC2086 # SEEDS_RSH is a command line
    if in_host a $SEEDS_RSH "root@$MIG_ADDR_B" true 2>/dev/null; then return 0; fi
    kill -0 "$SEEDS_SSHD_PID" 2>/dev/null || break
    sleep 0.1
  done
  printf 'bench: sshd in %s does not accept the key:\n' "$MIG_NS_B" >&2
  tail -n 5 "$ssh_dir/sshd.log" >&2
  return 1
}

seeds_stop() {
  if [ -n "$SEEDS_SSHD_PID" ]; then
    kill -TERM "$SEEDS_SSHD_PID" 2>/dev/null || true
    wait "$SEEDS_SSHD_PID" 2>/dev/null || true
    SEEDS_SSHD_PID=
  fi
  if [ "$SEEDS_MADE_RUN_SSHD" = 1 ]; then
    rmdir /run/sshd 2>/dev/null || true
    SEEDS_MADE_RUN_SSHD=0
  fi
}

# seeds_rsync [TIMEOUT_S] -- RSYNC ARGS...: rsync -a from inside host A to
# B's sshd; rsync's delta algorithm is on (the peer is remote).
seeds_rsync() {
  local limit=$1
  shift 2
  timeout "$limit" nsenter --net="/run/netns/$MIG_NS_A" rsync -a -e "$SEEDS_RSH" "$@"
}

# seeds_left_s T0: whole seconds of the downtime cap left since T0 (>= 1).
seeds_left_s() {
  local now left
  now_us now
  left=$((SEEDS_CAP_S - (now - $1) / 1000000))
  [ "$left" -ge 1 ] || left=1
  printf '%s\n' "$left"
}

# seeds_checkpoint ROOT ID IMAGES WORK [RUNC OPTIONS...]
seeds_checkpoint() {
  local root=$1 id=$2 images=$3 work=$4
  shift 4
  mkdir -p "$work"
  if ! runc --root "$root" checkpoint --image-path "$images" --work-path "$work" "$@" "$id" \
    </dev/null >"$work/runc-checkpoint.out" 2>&1; then
    FAIL_REASON="runc checkpoint failed: $(seeds_last_error "$work" dump.log runc-checkpoint.out)"
    return 1
  fi
}

# seeds_restore ROOT ID IMAGES WORK BUNDLE: runc restore -d.
seeds_restore() {
  local root=$1 id=$2 images=$3 work=$4 bundle=$5
  mkdir -p "$work"
  if ! runc --root "$root" restore -d --image-path "$images" --work-path "$work" \
    --bundle "$bundle" "$id" </dev/null >"$work/runc-restore.out" 2>&1; then
    FAIL_REASON="runc restore failed: $(seeds_last_error "$work" restore.log runc-restore.out)"
    return 1
  fi
}

seeds_last_error() {
  local work=$1 f line=
  shift
  for f in "$@"; do
    [ -s "$work/$f" ] || continue
    line=$(grep -m1 -i 'error' "$work/$f" || tail -n 1 "$work/$f")
    [ -z "$line" ] || break
  done
  printf '%s\n' "${line:-no log}"
}

# seeds_adapt_bundle BUNDLE ID: B's cgroup path in B's copy of the bundle,
# as the destination daemon does, so B never collides with A's cgroup.
seeds_adapt_bundle() {
  local bundle=$1 id=$2
  if ! jq --arg cg "/$(host_cgroup_parent b)/$id" '.linux.cgroupsPath = $cg' \
    "$bundle/config.json" >"$bundle/config.json.tmp" ||
    ! mv "$bundle/config.json.tmp" "$bundle/config.json"; then
    FAIL_REASON="cannot set B's cgroup path in $bundle/config.json"
    return 1
  fi
}

# seeds_rsync_failed RC WHAT: maps an rsync exit status to FAIL_REASON or
# RES_CAPPED (timeout's 124); returns 0 when rsync succeeded.
seeds_rsync_failed() {
  case "$1" in
    0) return 0 ;;
    124) RES_CAPPED=1; FAIL_REASON="rsync of the $2 passed the ${SEEDS_CAP_S} s cap" ;;
    *) FAIL_REASON="rsync of the $2 exited $1" ;;
  esac
  return 1
}

# Layout: A checkpoints into SEEDS_DIR/a/ID/<round>/img; one rsync per round
# carries that img/ and A's bundle (rootfs included) into
# SEEDS_DIR/b/ID/<round>/ as img/ and ID/, so B restores from
# SEEDS_DIR/b/ID/<round>/img with the bundle SEEDS_DIR/b/ID/<round>/ID.
# Each round costs one ssh connection, as one rsync per step does.
# The methods set RES_DEST_ROOT and RES_DEST_BUNDLE for the checks after.

# seeds_send LIMIT_S ID ROUND [RSYNC OPTIONS...]: the round's images and the
# bundle to B within LIMIT_S seconds; B's cgroup path set after.
seeds_send() {
  local limit=$1 id=$2 round=$3 rc=0
  shift 3
  seeds_rsync "$limit" -- "$@" "$SEEDS_DIR/a/$id/$round/img" \
    "$(bench_bundle a "$id")" "root@$MIG_ADDR_B:$SEEDS_DIR/b/$id/$round/" || rc=$?
  seeds_rsync_failed "$rc" "$round images and bundle" || return 1
  seeds_adapt_bundle "$SEEDS_DIR/b/$id/$round/$id" "$id"
}

# Seed C, cold: checkpoint (the container stops), rsync the images and the
# bundle, restore on B. Downtime = total = checkpoint start -> restore done.
seeds_cold() {
  local id=$1 src=$SEEDS_DIR/a/$1/cold dst=$SEEDS_DIR/b/$1/cold t0 t1 t2 t3
  mkdir -p "$src" "$dst"
  RES_DEST_ROOT=$(host_runc_root b)
  RES_DEST_BUNDLE=$dst/$id
  now_us t0
  seeds_checkpoint "$(host_runc_root a)" "$id" "$src/img" "$src/work" || return 1
  now_us t1
  seeds_send "$(seeds_left_s "$t0")" "$id" cold || return 1
  now_us t2
  seeds_restore "$RES_DEST_ROOT" "$id" "$dst/img" "$dst/work" "$RES_DEST_BUNDLE" || return 1
  now_us t3
  RES_DOWN=$(ms_between "$t0" "$t3")
  RES_TOTAL=$RES_DOWN
  RES_PHASES=$(jq -cn --argjson c "$(ms_between "$t0" "$t1")" --argjson r "$(ms_between "$t1" "$t2")" \
    --argjson s "$(ms_between "$t2" "$t3")" --argjson img "$(du -sb "$src/img" | cut -f1)" \
    '{checkpoint_ms: $c, rsync_ms: $r, restore_ms: $s, image_bytes: $img}')
}

# Seed D, warm: a checkpoint with --leave-running and its rsync (images and
# bundle) while the container runs; then the final checkpoint, sent with
# rsync's delta algorithm against B's warm copy (--link-dest: unchanged files
# are linked, changed ones use the warm file of the same name as the basis),
# and the restore on B. Downtime = final checkpoint start -> restore done,
# capped at SEEDS_CAP_S.
seeds_warm() {
  local id=$1 src=$SEEDS_DIR/a/$1 dst=$SEEDS_DIR/b/$1 t0 t1 t2 t3 t4 t5 t6 ab0 ba0 ab1 ba1
  mkdir -p "$src/pre" "$src/final" "$dst/pre" "$dst/final"
  RES_DEST_ROOT=$(host_runc_root b)
  RES_DEST_BUNDLE=$dst/final/$id
  wire_read ab0 ba0
  now_us t0
  seeds_checkpoint "$(host_runc_root a)" "$id" "$src/pre/img" "$src/pre/work" --leave-running || return 1
  now_us t1
  seeds_send 3600 "$id" pre || return 1
  now_us t2
  wire_read ab1 ba1
  now_us t3
  seeds_checkpoint "$(host_runc_root a)" "$id" "$src/final/img" "$src/final/work" || return 1
  now_us t4
  seeds_send "$(seeds_left_s "$t3")" "$id" final --link-dest="$dst/pre" || return 1
  now_us t5
  seeds_restore "$RES_DEST_ROOT" "$id" "$dst/final/img" "$dst/final/work" "$RES_DEST_BUNDLE" || return 1
  now_us t6
  RES_DOWN=$(ms_between "$t3" "$t6")
  RES_TOTAL=$(ms_between "$t0" "$t6")
  RES_PHASES=$(jq -cn --argjson pd "$(ms_between "$t0" "$t1")" --argjson pr "$(ms_between "$t1" "$t2")" \
    --argjson fd "$(ms_between "$t3" "$t4")" --argjson fr "$(ms_between "$t4" "$t5")" \
    --argjson s "$(ms_between "$t5" "$t6")" --argjson wpre $((ab1 - ab0 + ba1 - ba0)) \
    --argjson img "$(du -sb "$src/final/img" | cut -f1)" \
    '{pre_checkpoint_ms: $pd, pre_rsync_ms: $pr, final_checkpoint_ms: $fd, final_rsync_ms: $fr,
      restore_ms: $s, warmup_wire_bytes: $wpre, image_bytes: $img}')
}

# The floor: checkpoint and restore on host A, images on the same storage,
# nothing sent.
seeds_floor() {
  local id=$1 dir=$SEEDS_DIR/a/$1/floor t0 t1 t2
  mkdir -p "$dir"
  RES_DEST_ROOT=$(host_runc_root a)
  RES_DEST_BUNDLE=$(bench_bundle a "$id")
  now_us t0
  seeds_checkpoint "$RES_DEST_ROOT" "$id" "$dir/img" "$dir/work" || return 1
  now_us t1
  seeds_restore "$RES_DEST_ROOT" "$id" "$dir/img" "$dir/work-restore" "$RES_DEST_BUNDLE" || return 1
  now_us t2
  RES_DOWN=$(ms_between "$t0" "$t2")
  RES_TOTAL=$RES_DOWN
  RES_PHASES=$(jq -cn --argjson c "$(ms_between "$t0" "$t1")" --argjson s "$(ms_between "$t1" "$t2")" \
    --argjson img "$(du -sb "$dir/img" | cut -f1)" '{checkpoint_ms: $c, restore_ms: $s, image_bytes: $img}')
}

# seeds_clean ID: the image directories and bundle copies of ID on both hosts.
seeds_clean() { rm -rf "${SEEDS_DIR:?}/a/$1" "${SEEDS_DIR:?}/b/$1"; }
