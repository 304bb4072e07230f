// Tree synchronisation for bundles and root filesystems (rsync's quick check,
// without rsync): the source describes every entry of a directory tree
// (scan), the destination compares that manifest with what it has (plan),
// fixes everything that needs no data right away — directories, symlinks,
// device nodes, modes, owners, deletions — and asks for the regular files
// whose size or mtime differ. After a file's data is written, finish_file()
// sets its mode, owner and mtime so the next sync sees it as unchanged.
//
// Used twice per migration: once while the container runs (pull: most of
// the bundle) and once after it is stopped (only what it changed since).
#pragma once

#include <cstdint>
#include <filesystem>
#include <vector>

#include "common/error.hpp"
#include "migrated.pb.h"

namespace migrated::fs {

// Lists every entry below root (root itself excluded), parents before
// children, sorted by path. Paths are relative with '/' separators.
// Sockets are skipped (they cannot be recreated meaningfully).
result<std::vector<pb::TreeEntry>> scan(const std::filesystem::path& root);

struct plan_result {
  std::vector<std::uint32_t> wanted;  // indices of regular files whose data is needed
  std::uint64_t wanted_bytes = 0;
  std::uint32_t removed = 0;          // local entries deleted (not in the manifest)
  std::uint32_t updated = 0;          // metadata-only changes applied
};

// Makes the tree at root match the manifest in everything but file data:
// creates root if needed, removes local entries absent from the manifest
// (depth first), replaces entries whose type changed, creates directories,
// symlinks, fifos and device nodes, applies mode/uid/gid/mtime where they
// differ. A regular file is wanted when it is missing or its size or
// mtime_ns differ. Every path is checked with confine(); a bad name is an
// errc::invalid_argument error naming it and nothing after it is applied.
result<plan_result> plan(const std::filesystem::path& root,
                         const std::vector<pb::TreeEntry>& manifest);

// After the data of `entry` was written to `file`: mode, uid, gid, mtime.
result<void> finish_file(const std::filesystem::path& file, const pb::TreeEntry& entry);

// Directory mtimes change as files are created inside them; call this once
// after all files are written to set every directory's mtime from the manifest.
result<void> finish_dirs(const std::filesystem::path& root,
                         const std::vector<pb::TreeEntry>& manifest);

}  // namespace migrated::fs
