// Tree synchronisation: scan on the source, plan and finish on the destination.
//
// Why this shape:
// - The manifest comes from a peer and the daemon runs as root, so plan()
//   first validates the whole manifest (names, types, every parent listed
//   earlier as a directory) and refuses it before touching anything; then
//   every path is confined again as it is applied, against what is on disk.
// - Nothing here follows a symlink: walks use lstat/fstatat with
//   AT_SYMLINK_NOFOLLOW and open directories with O_NOFOLLOW, metadata is
//   applied with the *at(…, AT_SYMLINK_NOFOLLOW) calls, and deletion unlinks
//   a symlink rather than descending into it. A hostile manifest can create
//   a symlink to /etc, but nothing is ever written through one.
// - The first sync runs while the container is still writing to its tree:
//   an entry that vanishes between readdir and lstat is skipped, not an error.
// - Quick check as rsync does it: a regular file is unchanged when its size
//   and mtime (to the nanosecond) match. That is why finish_file() sets the
//   mtime last, after data, mode and owner, and why directory mtimes are set
//   once at the end (creating children changes them).
#include "fs/tree.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <string>
#include <string_view>
#include <unordered_set>

#include "common/path.hpp"

namespace migrated::fs {
namespace {

constexpr std::int64_t ns_per_s = 1'000'000'000;

std::int64_t mtime_ns(const struct stat& st) {
  return static_cast<std::int64_t>(st.st_mtim.tv_sec) * ns_per_s + st.st_mtim.tv_nsec;
}

pb::EntryType entry_type(mode_t mode) {
  if (S_ISREG(mode)) return pb::ENTRY_FILE;
  if (S_ISDIR(mode)) return pb::ENTRY_DIR;
  if (S_ISLNK(mode)) return pb::ENTRY_SYMLINK;
  if (S_ISFIFO(mode)) return pb::ENTRY_FIFO;
  if (S_ISCHR(mode)) return pb::ENTRY_CHAR;
  if (S_ISBLK(mode)) return pb::ENTRY_BLOCK;
  return pb::ENTRY_UNSPECIFIED;  // sockets
}

result<std::string> read_link(int dirfd, const std::string& name, std::size_t hint) {
  std::string target(std::max<std::size_t>(hint, 64) + 1, '\0');
  for (;;) {
    const ssize_t n = ::readlinkat(dirfd, name.c_str(), target.data(), target.size());
    if (n < 0) return fail_errno(errno, "readlink " + name);
    if (static_cast<std::size_t>(n) < target.size()) {
      target.resize(static_cast<std::size_t>(n));
      return target;
    }
    target.resize(target.size() * 2);  // truncated: the link grew, or st_size lied
  }
}

// Calls visit(dirfd, relative path, name, stat) for every entry below root,
// descending only into real directories. Vanished entries are skipped.
template <class Visit>
result<void> walk(const std::string& root, Visit&& visit) {
  std::vector<std::string> pending{""};
  while (!pending.empty()) {
    const std::string dir = std::move(pending.back());
    pending.pop_back();
    const std::string abs = dir.empty() ? root : root + "/" + dir;
    const int flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC | (dir.empty() ? 0 : O_NOFOLLOW);
    const int fd = ::open(abs.c_str(), flags);
    if (fd < 0 && errno == ENOENT && !dir.empty()) continue;
    if (fd < 0) return fail_errno(errno, "open " + abs);
    DIR* listing = ::fdopendir(fd);
    if (listing == nullptr) {
      const int err = errno;
      ::close(fd);
      return fail_errno(err, "opendir " + abs);
    }
    result<void> status;
    for (errno = 0; const dirent* ent = ::readdir(listing); errno = 0) {
      const std::string name = ent->d_name;
      if (name == "." || name == "..") continue;
      struct stat st {};
      if (::fstatat(fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
        if (errno == ENOENT) continue;
        status = fail_errno(errno, "lstat " + abs + "/" + name);
        break;
      }
      std::string rel = dir.empty() ? name : dir + "/" + name;
      status = visit(fd, rel, name, st);
      if (!status) break;
      if (S_ISDIR(st.st_mode)) pending.push_back(std::move(rel));
    }
    if (status && errno != 0) status = fail_errno(errno, "readdir " + abs);
    ::closedir(listing);
    if (!status) return status;
  }
  return {};
}

// Removes path and, for a directory, everything below it; never follows a
// symlink. Returns how many entries were removed.
result<std::uint32_t> remove_tree(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0)
    return errno == ENOENT ? result<std::uint32_t>(0) : fail_errno(errno, "lstat " + path);
  if (!S_ISDIR(st.st_mode)) {
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) return fail_errno(errno, "unlink " + path);
    return 1;
  }
  std::vector<std::string> children;
  auto listed = walk(path, [&](int, const std::string& rel, const std::string&,
                               const struct stat&) {
    children.push_back(rel);
    return result<void>{};
  });
  if (!listed) return std::unexpected(listed.error());
  std::sort(children.begin(), children.end());  // parents first; removed in reverse
  std::uint32_t removed = 0;
  for (auto it = children.rbegin(); it != children.rend(); ++it) {
    const std::string child = path + "/" + *it;
    struct stat cst {};
    if (::lstat(child.c_str(), &cst) != 0) continue;
    const int rc = S_ISDIR(cst.st_mode) ? ::rmdir(child.c_str()) : ::unlink(child.c_str());
    if (rc != 0 && errno != ENOENT) return fail_errno(errno, "remove " + child);
    ++removed;
  }
  if (::rmdir(path.c_str()) != 0) return fail_errno(errno, "rmdir " + path);
  return removed + 1;
}

result<void> set_mtime(const std::string& path, std::int64_t ns) {
  std::int64_t sec = ns / ns_per_s;
  std::int64_t nsec = ns % ns_per_s;
  if (nsec < 0) {  // before 1970: tv_nsec must stay in [0, 1e9)
    sec -= 1;
    nsec += ns_per_s;
  }
  const struct timespec times[2] = {{0, UTIME_OMIT}, {static_cast<time_t>(sec), nsec}};
  if (::utimensat(AT_FDCWD, path.c_str(), times, AT_SYMLINK_NOFOLLOW) != 0)
    return fail_errno(errno, "set mtime of " + path);
  return {};
}

// Owner, then mode (chown clears set-id bits), then mtime, each only where
// it differs. Returns whether anything changed.
result<bool> apply_metadata(const std::string& path, const pb::TreeEntry& e,
                            const struct stat& st, bool with_mtime) {
  bool changed = false;
  const bool is_link = S_ISLNK(st.st_mode);
  if (st.st_uid != e.uid() || st.st_gid != e.gid()) {
    if (::fchownat(AT_FDCWD, path.c_str(), e.uid(), e.gid(), AT_SYMLINK_NOFOLLOW) != 0)
      return fail_errno(errno, "chown " + path);
    changed = true;
  }
  // Symlink permissions do not exist on Linux; everything else gets its mode.
  if (!is_link && (changed || (st.st_mode & 07777) != e.mode())) {
    int rc = ::fchmodat(AT_FDCWD, path.c_str(), e.mode(), AT_SYMLINK_NOFOLLOW);
    if (rc != 0 && (errno == EOPNOTSUPP || errno == ENOTSUP))  // no /proc: st says not a link
      rc = ::fchmodat(AT_FDCWD, path.c_str(), e.mode(), 0);
    if (rc != 0) return fail_errno(errno, "chmod " + path);
    changed = changed || (st.st_mode & 07777) != e.mode();
  }
  if (with_mtime && mtime_ns(st) != e.mtime_ns()) {
    if (auto ok = set_mtime(path, e.mtime_ns()); !ok) return std::unexpected(ok.error());
    changed = true;
  }
  return changed;
}

std::string parent_of(std::string_view path) {
  const std::size_t slash = path.rfind('/');
  return slash == std::string_view::npos ? std::string() : std::string(path.substr(0, slash));
}

// The whole manifest is checked before anything is applied.
result<void> validate(const std::vector<pb::TreeEntry>& manifest) {
  std::unordered_set<std::string_view> seen;
  std::unordered_set<std::string> dirs;
  for (std::size_t i = 0; i < manifest.size(); ++i) {
    const pb::TreeEntry& e = manifest[i];
    const std::string where = "manifest entry " + std::to_string(i);
    if (auto ok = check_relative_name(e.path()); !ok)
      return std::unexpected(ok.error().context(where));
    const std::string what = where + " \"" + e.path() + "\"";
    if (e.type() < pb::ENTRY_FILE || e.type() > pb::ENTRY_BLOCK)
      return fail(errc::invalid_argument,
                  what + ": unknown entry type " + std::to_string(e.type()));
    if (e.mode() > 07777) return fail(errc::invalid_argument, what + ": mode out of range");
    if (!seen.insert(e.path()).second) return fail(errc::invalid_argument, what + ": listed twice");
    const std::string parent = parent_of(e.path());
    if (!parent.empty() && !dirs.contains(parent))
      return fail(errc::invalid_argument,
                  what + ": its parent \"" + parent + "\" is not a directory listed before it");
    if (e.type() == pb::ENTRY_SYMLINK &&
        (e.link_target().empty() || e.link_target().find('\0') != std::string::npos))
      return fail(errc::invalid_argument, what + ": invalid symlink target");
    if (e.uid() == static_cast<std::uint32_t>(-1) || e.gid() == static_cast<std::uint32_t>(-1))
      return fail(errc::invalid_argument, what + ": invalid owner");  // -1 means "unchanged"
    if (e.type() == pb::ENTRY_DIR) dirs.insert(e.path());
  }
  return {};
}

result<void> make_root(const std::filesystem::path& root) {
  std::error_code ec;
  std::filesystem::create_directories(root, ec);
  if (ec) return fail_errno(ec.value(), "create " + root.string());
  struct stat st {};
  if (::stat(root.c_str(), &st) != 0) return fail_errno(errno, "stat " + root.string());
  if (!S_ISDIR(st.st_mode))
    return fail(errc::invalid_argument, root.string() + " is not a directory");
  return {};
}

// Deletes local entries the manifest does not list, children first.
result<std::uint32_t> remove_extras(const std::string& root,
                                    const std::vector<pb::TreeEntry>& manifest) {
  std::unordered_set<std::string_view> listed;
  for (const auto& e : manifest) listed.insert(e.path());
  std::vector<std::string> extras;
  auto walked = walk(root, [&](int, const std::string& rel, const std::string&,
                               const struct stat&) {
    if (!listed.contains(rel)) extras.push_back(rel);
    return result<void>{};
  });
  if (!walked) return std::unexpected(walked.error());
  std::sort(extras.begin(), extras.end());
  std::uint32_t removed = 0;
  for (auto it = extras.rbegin(); it != extras.rend(); ++it) {
    auto n = remove_tree(root + "/" + *it);
    if (!n) return std::unexpected(n.error());
    removed += *n;
  }
  return removed;
}

// Whether what is on disk can stay (possibly with new metadata), or must be
// removed and recreated: type, symlink target and device number must match.
result<bool> same_kind(const std::string& path, const struct stat& st, const pb::TreeEntry& e) {
  if (entry_type(st.st_mode) != e.type()) return false;
  if (e.type() == pb::ENTRY_CHAR || e.type() == pb::ENTRY_BLOCK) return st.st_rdev == e.rdev();
  if (e.type() != pb::ENTRY_SYMLINK) return true;
  auto target = read_link(AT_FDCWD, path, static_cast<std::size_t>(st.st_size));
  if (!target) return std::unexpected(target.error());
  return *target == e.link_target();
}

result<void> create(const std::string& path, const pb::TreeEntry& e) {
  int rc = 0;
  switch (e.type()) {
    case pb::ENTRY_DIR: rc = ::mkdir(path.c_str(), 0700); break;
    case pb::ENTRY_SYMLINK: rc = ::symlink(e.link_target().c_str(), path.c_str()); break;
    case pb::ENTRY_FIFO: rc = ::mknod(path.c_str(), S_IFIFO | 0600, 0); break;
    case pb::ENTRY_CHAR: rc = ::mknod(path.c_str(), S_IFCHR | 0600, e.rdev()); break;
    case pb::ENTRY_BLOCK: rc = ::mknod(path.c_str(), S_IFBLK | 0600, e.rdev()); break;
    default: return fail(errc::internal, "cannot create entry type " + std::to_string(e.type()));
  }
  if (rc != 0) return fail_errno(errno, "create " + path);
  return {};
}

// Applies one manifest entry. `updated` counts entries created, replaced or
// given new metadata; files whose data is needed are added to `out.wanted`.
result<void> apply_entry(const std::filesystem::path& root, const pb::TreeEntry& e,
                         std::uint32_t index, plan_result& out) {
  auto confined = confine(root, e.path(), /*allow_final_symlink=*/true);
  if (!confined) return std::unexpected(confined.error());
  const std::string path = confined->string();

  struct stat st {};
  bool exists = ::lstat(path.c_str(), &st) == 0;
  if (!exists && errno != ENOENT) return fail_errno(errno, "lstat " + path);
  bool changed = false;
  if (exists) {
    auto keep = same_kind(path, st, e);
    if (!keep) return std::unexpected(keep.error());
    if (!*keep) {
      if (auto gone = remove_tree(path); !gone) return std::unexpected(gone.error());
      exists = false;
      changed = true;
    }
  }
  if (e.type() == pb::ENTRY_FILE) {
    if (!exists || static_cast<std::uint64_t>(st.st_size) != e.size() ||
        mtime_ns(st) != e.mtime_ns()) {
      out.wanted.push_back(index);
      out.wanted_bytes += e.size();
      return {};
    }
  } else if (!exists) {
    if (auto made = create(path, e); !made) return made;
    if (::lstat(path.c_str(), &st) != 0) return fail_errno(errno, "lstat " + path);
    changed = true;
  }
  // Directory mtimes are set after all their children exist.
  auto meta = apply_metadata(path, e, st, /*with_mtime=*/e.type() != pb::ENTRY_DIR);
  if (!meta) return std::unexpected(meta.error());
  if (changed || *meta) ++out.updated;
  return {};
}

}  // namespace

result<std::vector<pb::TreeEntry>> scan(const std::filesystem::path& root) {
  std::vector<pb::TreeEntry> entries;
  auto walked = walk(root.string(), [&](int dirfd, const std::string& rel,
                                        const std::string& name, const struct stat& st) {
    const pb::EntryType type = entry_type(st.st_mode);
    if (type == pb::ENTRY_UNSPECIFIED) return result<void>{};  // sockets
    pb::TreeEntry e;
    e.set_path(rel);
    e.set_type(type);
    e.set_mode(st.st_mode & 07777);
    e.set_uid(st.st_uid);
    e.set_gid(st.st_gid);
    e.set_mtime_ns(mtime_ns(st));
    if (type == pb::ENTRY_FILE) e.set_size(static_cast<std::uint64_t>(st.st_size));
    if (type == pb::ENTRY_CHAR || type == pb::ENTRY_BLOCK) e.set_rdev(st.st_rdev);
    if (type == pb::ENTRY_SYMLINK) {
      auto target = read_link(dirfd, name, static_cast<std::size_t>(st.st_size));
      if (!target && target.error().code == errc::not_found) return result<void>{};
      if (!target) return result<void>(std::unexpected(target.error()));
      e.set_link_target(std::move(*target));
    }
    entries.push_back(std::move(e));
    return result<void>{};
  });
  if (!walked) return std::unexpected(walked.error().context("scan " + root.string()));
  std::sort(entries.begin(), entries.end(),
            [](const pb::TreeEntry& a, const pb::TreeEntry& b) { return a.path() < b.path(); });
  return entries;
}

result<plan_result> plan(const std::filesystem::path& root,
                         const std::vector<pb::TreeEntry>& manifest) {
  const std::string what = "sync " + root.string();
  if (auto ok = validate(manifest); !ok) return std::unexpected(ok.error().context(what));
  if (auto ok = make_root(root); !ok) return std::unexpected(ok.error().context(what));
  plan_result out;
  auto removed = remove_extras(root.string(), manifest);
  if (!removed) return std::unexpected(removed.error().context(what));
  out.removed = *removed;
  for (std::size_t i = 0; i < manifest.size(); ++i) {
    if (auto ok = apply_entry(root, manifest[i], static_cast<std::uint32_t>(i), out); !ok)
      return std::unexpected(ok.error().context(what));
  }
  if (auto ok = finish_dirs(root, manifest); !ok) return std::unexpected(ok.error().context(what));
  return out;
}

result<void> finish_file(const std::filesystem::path& file, const pb::TreeEntry& entry) {
  const std::string path = file.string();
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return fail_errno(errno, "finish " + path);
  if (!S_ISREG(st.st_mode))
    return fail(errc::invalid_argument, "finish " + path + ": not a regular file");
  auto meta = apply_metadata(path, entry, st, /*with_mtime=*/true);
  if (!meta) return std::unexpected(meta.error());
  return {};
}

result<void> finish_dirs(const std::filesystem::path& root,
                         const std::vector<pb::TreeEntry>& manifest) {
  for (const pb::TreeEntry& e : manifest) {
    if (e.type() != pb::ENTRY_DIR) continue;
    auto confined = confine(root, e.path());
    if (!confined) return std::unexpected(confined.error());
    const std::string path = confined->string();
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0) return fail_errno(errno, "lstat " + path);
    if (!S_ISDIR(st.st_mode))
      return fail(errc::invalid_argument, "finish " + path + ": not a directory");
    if (mtime_ns(st) == e.mtime_ns()) continue;
    if (auto ok = set_mtime(path, e.mtime_ns()); !ok) return ok;
  }
  return {};
}

}  // namespace migrated::fs
