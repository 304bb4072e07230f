// The destination's side of a tree sync (daemon/fs/tree.hpp): a
// TreeManifest from the peer, validated and applied by fs::plan to an empty
// directory on tmpfs, as receive_tree does with a bundle or a rootfs. A
// sibling directory stands for everything outside the tree.
// Invariants: nothing appears outside the root; after an accepted plan
// every entry but the wanted files exists with its type, and a second plan
// of the same manifest accepts it and wants the same files.
// Device numbers are replaced by /dev/null's and entries beyond 256
// dropped: the nodes this makes stay harmless and each run short.
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <cstdint>
#include <filesystem>
#include <vector>

#include "fs/tree.hpp"
#include "fuzz_support.hpp"

using namespace migrated;
namespace sfs = std::filesystem;

namespace {

constexpr int max_entries = 256;

bool has_type(const sfs::path& p, pb::EntryType t) {
  struct stat st {};
  if (::lstat(p.c_str(), &st) != 0) return false;
  switch (t) {
    case pb::ENTRY_DIR: return S_ISDIR(st.st_mode);
    case pb::ENTRY_SYMLINK: return S_ISLNK(st.st_mode);
    case pb::ENTRY_FIFO: return S_ISFIFO(st.st_mode);
    case pb::ENTRY_CHAR: return S_ISCHR(st.st_mode);
    case pb::ENTRY_BLOCK: return S_ISBLK(st.st_mode);
    default: return false;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  pb::TreeManifest m;
  if (!m.ParseFromArray(data, static_cast<int>(size))) return 0;
  std::vector<pb::TreeEntry> entries;
  for (int i = 0; i < m.entries_size() && i < max_entries; ++i) {
    pb::TreeEntry e = m.entries(i);
    if (e.type() == pb::ENTRY_CHAR || e.type() == pb::ENTRY_BLOCK) e.set_rdev(makedev(1, 3));
    entries.push_back(std::move(e));
  }

  const auto& dir = fuzz::scratch("tree");
  const sfs::path root = dir / "root", outside = dir / "outside";
  sfs::remove_all(root);
  sfs::remove_all(outside);
  sfs::create_directories(outside);

  auto first = fs::plan(root, entries);
  FUZZ_CHECK(sfs::is_empty(outside), "plan wrote outside its root");
  if (!first) {
    FUZZ_CHECK(!first.error().message.empty());
    return 0;
  }
  std::vector<bool> wanted(entries.size());
  for (auto i : first->wanted) {
    FUZZ_CHECK(i < entries.size() && entries[i].type() == pb::ENTRY_FILE);
    wanted[i] = true;
  }
  for (std::size_t i = 0; i < entries.size(); ++i) {
    if (entries[i].type() == pb::ENTRY_FILE) {
      FUZZ_CHECK(wanted[i], "a missing file is not wanted: " + entries[i].path());
      continue;
    }
    FUZZ_CHECK(has_type(root / entries[i].path(), entries[i].type()), entries[i].path());
  }
  auto second = fs::plan(root, entries);
  FUZZ_CHECK(second.has_value(), second.error().message);
  FUZZ_CHECK(second->wanted == first->wanted);
  FUZZ_CHECK(second->removed == 0);
  FUZZ_CHECK(sfs::is_empty(outside), "plan wrote outside its root");
  return 0;
}
