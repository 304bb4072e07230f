// The copies of a checkpoint that containerd leaves behind. To restore,
// Docker (20.10) puts the checkpoint into containerd's content store, and
// containerd (1.6, services/tasks/local.go, Create) unpacks it into a fresh
// MkdirTemp($XDG_RUNTIME_DIR, "ctrd-checkpoint") — with that variable unset,
// $TMPDIR or /tmp — and never removes it: every restore, good or failed,
// leaves a copy of the container's memory there. containerd would use a
// directory in place (CriuImagePath in the runc options), but dockerd
// never sets it and the Engine API cannot, so the copy is removed after
// the restore instead:
//
//   staging_snapshot before = take_staging_snapshot();  // ctrd-checkpoint* now
//   ... POST /containers/<id>/start?checkpoint=...
//   remove_staged_copies(before, images);               // the new ones holding our images
//
// The directories are those of every containerd process on this host, seen
// through /proc/<pid>/root (so one in another mount namespace too) with the
// variables of its own environment. A new directory is ours only when its
// inventory.img and pstree.img are the bytes of the checkpoint restored:
// another restore at the same moment keeps its own.
#pragma once

#include <filesystem>
#include <set>
#include <string>
#include <vector>

namespace migrated::runtime {

struct staging_snapshot {
  std::vector<std::filesystem::path> dirs;  // containerd's temporary directories
  std::set<std::filesystem::path> present;  // the ctrd-checkpoint* entries in them
};

// Blocking (reads /proc): run on the pool.
staging_snapshot take_staging_snapshot();

// Removes the ctrd-checkpoint* directories that appeared since `before` and
// hold the checkpoint whose images are in `images` (read before the restore
// moves them: pass their identity, see checkpoint_identity()). Returns what
// it removed. Blocking: run on the pool.
struct checkpoint_identity {
  std::string inventory, pstree;  // the bytes of inventory.img and pstree.img
  bool empty() const { return inventory.empty() && pstree.empty(); }
};
checkpoint_identity identify_checkpoint(const std::filesystem::path& images);
std::vector<std::filesystem::path> remove_staged_copies(const staging_snapshot& before, const checkpoint_identity& id);

}  // namespace migrated::runtime
