// Unit tests for daemon/fs/tree: scan a real tree, sync it into another
// directory the way a migration does (plan, copy wanted files, finish), and
// check that the copy scans identically, that later changes are found, and
// that hostile manifests touch nothing outside the root.
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "temp_dir.hpp"

#include "fs/tree.hpp"

using namespace migrated;
namespace stdfs = std::filesystem;

namespace {

using testing::temp_dir;

const bool is_root = ::geteuid() == 0;

void set_time(const stdfs::path& p, std::int64_t sec, long nsec) {
  const timespec times[2] = {{sec, 0}, {sec, nsec}};
  REQUIRE(::utimensat(AT_FDCWD, p.c_str(), times, AT_SYMLINK_NOFOLLOW) == 0);
}

void write(const stdfs::path& p, const std::string& data, mode_t mode = 0644) {
  std::ofstream(p, std::ios::binary | std::ios::trunc) << data;
  REQUIRE(::chmod(p.c_str(), mode) == 0);
}

std::string read(const stdfs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

void own(const stdfs::path& p, uid_t uid, gid_t gid) {
  if (is_root) REQUIRE(::lchown(p.c_str(), uid, gid) == 0);
}

// Builds the tree every test starts from; returns whether it holds a
// device node (creating one needs CAP_MKNOD).
bool build_source(const stdfs::path& src) {
  stdfs::create_directories(src / "dir/sub");
  stdfs::create_directory(src / "bin");
  write(src / "a.txt", "hello, world\n", 0640);
  write(src / "empty", "", 0600);
  write(src / "bin/tool", std::string(100000, 'x'), 0755);
  write(src / "dir/sub/deep.txt", "deep", 0444);
  stdfs::create_symlink("a.txt", src / "link-rel");
  stdfs::create_symlink("does/not/exist", src / "link-dangling");
  stdfs::create_symlink("/etc/passwd", src / "link-abs");
  REQUIRE(::mkfifo((src / "fifo").c_str(), 0620) == 0);
  REQUIRE(::chmod((src / "fifo").c_str(), 0620) == 0);
  REQUIRE(::chmod((src / "dir/sub").c_str(), 0750) == 0);

  const int sock = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  const std::string sock_path = (src / "sock").string();
  REQUIRE(sock_path.size() < sizeof addr.sun_path);
  std::strcpy(addr.sun_path, sock_path.c_str());
  REQUIRE(::bind(sock, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  ::close(sock);

  const bool devices =
      is_root && ::mknod((src / "null").c_str(), S_IFCHR | 0666, makedev(1, 3)) == 0;
  if (devices) REQUIRE(::chmod((src / "null").c_str(), 0666) == 0);
  own(src / "bin/tool", 1234, 5678);
  own(src / "link-abs", 4321, 8765);
  own(src / "dir/sub", 1000, 1000);
  if (is_root) REQUIRE(::chmod((src / "bin/tool").c_str(), 04755) == 0);

  long ns = 123456789;
  for (const char* p : {"a.txt", "empty", "bin/tool", "dir/sub/deep.txt", "link-rel",
                        "link-dangling", "link-abs", "fifo", "dir/sub", "dir", "bin"}) {
    set_time(src / p, 1600000000 + ns % 1000, ns);  // distinct seconds and nanoseconds
    ++ns;
  }
  return devices;
}

const pb::TreeEntry* find(const std::vector<pb::TreeEntry>& m, const std::string& path) {
  auto it = std::find_if(m.begin(), m.end(), [&](const auto& e) { return e.path() == path; });
  return it == m.end() ? nullptr : &*it;
}

std::vector<std::string> wanted_paths(const std::vector<pb::TreeEntry>& m,
                                      const fs::plan_result& r) {
  std::vector<std::string> out;
  for (auto i : r.wanted) out.push_back(m.at(i).path());
  std::sort(out.begin(), out.end());
  return out;
}

// What the transfer does after plan(): write each wanted file, then finish.
void deliver(const stdfs::path& src, const stdfs::path& dst, const std::vector<pb::TreeEntry>& m,
             const fs::plan_result& r) {
  for (auto i : r.wanted) {
    stdfs::remove(dst / m[i].path());  // as the transfer does: a new file, whatever the old mode
    std::ofstream(dst / m[i].path(), std::ios::binary | std::ios::trunc) << read(src / m[i].path());
    REQUIRE(fs::finish_file(dst / m[i].path(), m[i]));
  }
  REQUIRE(fs::finish_dirs(dst, m));
}

void require_same(const std::vector<pb::TreeEntry>& a, const std::vector<pb::TreeEntry>& b) {
  REQUIRE(a.size() == b.size());
  for (std::size_t i = 0; i < a.size(); ++i)
    CHECK(a[i].ShortDebugString() == b[i].ShortDebugString());
}

// One full sync; returns the plan it made.
fs::plan_result sync_trees(const stdfs::path& src, const stdfs::path& dst) {
  auto m = fs::scan(src);
  REQUIRE(m);
  auto r = fs::plan(dst, *m);
  REQUIRE(r);
  deliver(src, dst, *m, *r);
  auto copy = fs::scan(dst);
  REQUIRE(copy);
  require_same(*m, *copy);
  return *r;
}

}  // namespace

TEST_CASE("scan lists every entry with its metadata", "[tree]") {
  temp_dir src;
  const bool devices = build_source(src.path);
  auto m = fs::scan(src.path);
  REQUIRE(m);
  std::vector<std::string> paths;
  for (const auto& e : *m) paths.push_back(e.path());
  std::vector<std::string> expected{"a.txt", "bin", "bin/tool", "dir", "dir/sub",
                                    "dir/sub/deep.txt", "empty", "fifo", "link-abs",
                                    "link-dangling", "link-rel"};
  if (devices) expected.push_back("null");
  std::sort(expected.begin(), expected.end());
  CHECK(paths == expected);  // sorted, parents first, no socket

  const auto* a = find(*m, "a.txt");
  CHECK(a->type() == pb::ENTRY_FILE);
  CHECK(a->size() == 13);
  CHECK(a->mode() == 0640);
  CHECK(a->mtime_ns() == (1600000000LL + 789) * 1'000'000'000 + 123456789);
  CHECK(find(*m, "empty")->size() == 0);
  CHECK(find(*m, "dir/sub")->type() == pb::ENTRY_DIR);
  CHECK(find(*m, "dir/sub")->mode() == 0750);
  CHECK(find(*m, "link-abs")->link_target() == "/etc/passwd");
  CHECK(find(*m, "link-dangling")->type() == pb::ENTRY_SYMLINK);
  CHECK(find(*m, "link-dangling")->link_target() == "does/not/exist");
  CHECK(find(*m, "fifo")->type() == pb::ENTRY_FIFO);
  CHECK(find(*m, "fifo")->mode() == 0620);
  if (devices) CHECK(find(*m, "null")->rdev() == makedev(1, 3));
  if (is_root) {
    CHECK(find(*m, "bin/tool")->uid() == 1234);
    CHECK(find(*m, "bin/tool")->gid() == 5678);
    CHECK(find(*m, "bin/tool")->mode() == 04755);
  }
}

TEST_CASE("a sync into an empty directory reproduces the tree exactly", "[tree]") {
  temp_dir src, dst;
  build_source(src.path);
  auto m = fs::scan(src.path);
  REQUIRE(m);
  const stdfs::path root = dst.path / "bundle";  // created by plan

  auto r = fs::plan(root, *m);
  REQUIRE(r);
  CHECK(wanted_paths(*m, *r) ==
        std::vector<std::string>{"a.txt", "bin/tool", "dir/sub/deep.txt", "empty"});
  CHECK(r->wanted_bytes == 13 + 100000 + 4);
  CHECK(r->removed == 0);
  CHECK(stdfs::is_directory(root / "dir/sub"));
  CHECK(stdfs::read_symlink(root / "link-abs") == "/etc/passwd");
  CHECK(stdfs::read_symlink(root / "link-dangling") == "does/not/exist");
  CHECK(stdfs::is_fifo(stdfs::symlink_status(root / "fifo")));

  deliver(src.path, root, *m, *r);
  auto copy = fs::scan(root);
  REQUIRE(copy);
  require_same(*m, *copy);
  CHECK(read(root / "bin/tool") == std::string(100000, 'x'));

  auto again = fs::plan(root, *m);
  REQUIRE(again);
  CHECK(again->wanted.empty());
  CHECK(again->removed == 0);
  CHECK(again->updated == 0);
}

TEST_CASE("a second sync fetches only what changed", "[tree]") {
  temp_dir src, dst;
  build_source(src.path);
  sync_trees(src.path, dst.path);

  write(src.path / "a.txt", "hello, world, longer\n", 0640);             // size
  set_time(src.path / "dir/sub/deep.txt", 1700000000, 1);                // mtime only
  stdfs::remove(src.path / "empty");                                        // deleted
  write(src.path / "new.txt", "new", 0600);                              // added
  stdfs::remove(src.path / "bin/tool");                                     // file -> dir
  stdfs::create_directory(src.path / "bin/tool");
  write(src.path / "bin/tool/inner", "inner");
  stdfs::remove(src.path / "link-rel");                                     // new target
  stdfs::create_symlink("new.txt", src.path / "link-rel");
  stdfs::remove(src.path / "fifo");                                         // fifo -> file
  write(src.path / "fifo", "now a file");
  REQUIRE(::chmod((src.path / "dir").c_str(), 0711) == 0);               // metadata only

  auto m = fs::scan(src.path);
  REQUIRE(m);
  auto r = fs::plan(dst.path, *m);
  REQUIRE(r);
  CHECK(wanted_paths(*m, *r) == std::vector<std::string>{"a.txt", "bin/tool/inner",
                                                         "dir/sub/deep.txt", "fifo", "new.txt"});
  CHECK(r->removed == 1);
  CHECK_FALSE(stdfs::exists(stdfs::symlink_status(dst.path / "empty")));
  CHECK(stdfs::is_directory(stdfs::symlink_status(dst.path / "bin/tool")));
  CHECK(stdfs::read_symlink(dst.path / "link-rel") == "new.txt");
  CHECK(r->updated >= 3);  // bin/tool, link-rel, dir

  deliver(src.path, dst.path, *m, *r);
  auto copy = fs::scan(dst.path);
  REQUIRE(copy);
  require_same(*m, *copy);
  CHECK(read(dst.path / "a.txt") == "hello, world, longer\n");

  auto again = fs::plan(dst.path, *m);
  REQUIRE(again);
  CHECK(again->wanted.empty());
  CHECK(again->updated == 0);
}

TEST_CASE("metadata is preserved on the copy", "[tree]") {
  temp_dir src, dst;
  build_source(src.path);
  sync_trees(src.path, dst.path);
  struct stat st {};
  REQUIRE(::lstat((dst.path / "a.txt").c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0640);
  CHECK(st.st_mtim.tv_nsec == 123456789);
  REQUIRE(::lstat((dst.path / "dir/sub").c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0750);
  if (is_root) {
    CHECK(st.st_uid == 1000);
    REQUIRE(::lstat((dst.path / "bin/tool").c_str(), &st) == 0);
    CHECK(st.st_uid == 1234);
    CHECK(st.st_gid == 5678);
    CHECK((st.st_mode & 07777) == 04755);  // set-uid survives the chown
    REQUIRE(::lstat((dst.path / "link-abs").c_str(), &st) == 0);
    CHECK(st.st_uid == 4321);
    CHECK(st.st_gid == 8765);
  } else {
    WARN("not root: ownership preservation is checked only for the current user");
  }
}

TEST_CASE("hostile manifests touch nothing outside the root", "[tree]") {
  temp_dir dst, outside;
  write(outside.path / "keep", "precious");
  auto entry = [](std::string path, pb::EntryType type, std::string target = "") {
    pb::TreeEntry e;
    e.set_path(std::move(path));
    e.set_type(type);
    e.set_mode(type == pb::ENTRY_DIR ? 0755 : 0644);
    e.set_uid(::geteuid());
    e.set_gid(::getegid());
    e.set_link_target(std::move(target));
    return e;
  };
  const auto outside_before = fs::scan(outside.path);
  REQUIRE(outside_before);

  SECTION("bad names are refused and nothing is applied") {
    for (const std::string bad : {"../evil", "/etc/x", "ok/../../evil", "ok//x", ""}) {
      INFO("name: " << bad);
      std::vector<pb::TreeEntry> m{entry("ok", pb::ENTRY_DIR), entry(bad, pb::ENTRY_FIFO)};
      auto r = fs::plan(dst.path, m);
      REQUIRE_FALSE(r);
      CHECK(r.error().code == errc::invalid_argument);
      if (!bad.empty()) CHECK_THAT(r.error().message, Catch::Contains(bad));
      CHECK(stdfs::is_empty(dst.path));
    }
  }
  SECTION("an entry below a symlink is refused") {
    std::vector<pb::TreeEntry> m{entry("link", pb::ENTRY_SYMLINK, outside.path.string()),
                                 entry("link/evil", pb::ENTRY_FIFO)};
    auto r = fs::plan(dst.path, m);
    REQUIRE_FALSE(r);
    CHECK(r.error().code == errc::invalid_argument);
    CHECK_THAT(r.error().message, Catch::Contains("link/evil"));
    CHECK(stdfs::is_empty(dst.path));
  }
  SECTION("an entry below a file, or listed before its parent, is refused") {
    for (const auto& m : {std::vector{entry("f", pb::ENTRY_FILE), entry("f/x", pb::ENTRY_FIFO)},
                          std::vector{entry("d/x", pb::ENTRY_FIFO), entry("d", pb::ENTRY_DIR)}}) {
      auto r = fs::plan(dst.path, m);
      REQUIRE_FALSE(r);
      CHECK(r.error().code == errc::invalid_argument);
    }
  }
  SECTION("malformed entries are refused") {
    std::vector<pb::TreeEntry> bad(5, entry("x", pb::ENTRY_FIFO));
    bad[0].set_type(pb::ENTRY_UNSPECIFIED);
    bad[1].set_type(static_cast<pb::EntryType>(99));
    bad[2].set_mode(010000);
    bad[3].set_uid(static_cast<std::uint32_t>(-1));
    bad[4] = entry("x", pb::ENTRY_SYMLINK, "");
    for (const auto& e : bad) {
      INFO("entry: " << e.ShortDebugString());
      auto r = fs::plan(dst.path, {e});
      REQUIRE_FALSE(r);
      CHECK(r.error().code == errc::invalid_argument);
    }
    const auto fine = entry("x", pb::ENTRY_FIFO);
    auto twice = fs::plan(dst.path, {fine, fine});
    REQUIRE_FALSE(twice);
    CHECK_THAT(twice.error().message, Catch::Contains("twice"));
    CHECK(stdfs::is_empty(dst.path));
  }
  SECTION("a local symlink where the manifest has a directory is replaced, not followed") {
    stdfs::create_directory_symlink(outside.path, dst.path / "d");
    std::vector<pb::TreeEntry> m{entry("d", pb::ENTRY_DIR), entry("d/evil", pb::ENTRY_FIFO),
                                 entry("d/keep", pb::ENTRY_FIFO)};
    auto r = fs::plan(dst.path, m);
    REQUIRE(r);
    CHECK(stdfs::is_directory(stdfs::symlink_status(dst.path / "d")));
    CHECK(stdfs::is_fifo(stdfs::symlink_status(dst.path / "d/evil")));
  }
  SECTION("a local symlink that is not in the manifest is unlinked, not descended") {
    stdfs::create_directory_symlink(outside.path, dst.path / "gone");
    auto r = fs::plan(dst.path, {});
    REQUIRE(r);
    CHECK(r->removed == 1);
    CHECK(stdfs::is_empty(dst.path));
  }
  SECTION("finish_file refuses what is not a regular file") {
    stdfs::create_symlink(outside.path / "keep", dst.path / "f");
    auto r = fs::finish_file(dst.path / "f", entry("f", pb::ENTRY_FILE));
    REQUIRE_FALSE(r);
    CHECK(r.error().code == errc::invalid_argument);
  }

  auto outside_after = fs::scan(outside.path);
  REQUIRE(outside_after);
  require_same(*outside_before, *outside_after);
  CHECK(read(outside.path / "keep") == "precious");
}
