// Unit tests for common/path: name checks and confinement against symlinks
// and non-directories on disk.
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include <catch2/catch.hpp>

#include "temp_dir.hpp"

#include "common/path.hpp"

using namespace migrated;
namespace fs = std::filesystem;
using namespace std::string_literals;

namespace {

using testing::temp_dir;

}  // namespace

TEST_CASE("check_relative_name refuses unsafe names", "[path]") {
  const std::string name = GENERATE(as<std::string>{}, "", "/abs", "..", "../x", "a/..",
                                    "a/../b", ".", "./a", "a/./b", "a//b", "a/", "/", "a\0b"s);
  auto checked = check_relative_name(name);
  INFO("name: " << name);
  REQUIRE_FALSE(checked);
  CHECK(checked.error().code == errc::invalid_argument);
}

TEST_CASE("check_relative_name accepts plain names", "[path]") {
  const std::string name = GENERATE(as<std::string>{}, "a", "a/b.c", ".hidden", "a/b/c", "..a",
                                    "a..", "a/.b/c..d", "with space", "\xc3\xa9t\xc3\xa9");
  INFO("name: " << name);
  CHECK(check_relative_name(name));
}

TEST_CASE("refusals name the path without raw control bytes", "[path]") {
  auto checked = check_relative_name("a/\0/../b"s);
  REQUIRE_FALSE(checked);
  CHECK(checked.error().message.find('\0') == std::string::npos);
  CHECK_THAT(checked.error().message, Catch::Contains("NUL"));
  auto dots = check_relative_name("x/../y");
  REQUIRE_FALSE(dots);
  CHECK_THAT(dots.error().message, Catch::Contains("x/../y"));
}

TEST_CASE("confine walks existing parents without following symlinks", "[path]") {
  temp_dir root;
  temp_dir outside;
  fs::create_directories(root.path / "dir/sub");
  std::ofstream(root.path / "file") << "x";
  fs::create_directory_symlink(outside.path, root.path / "out");
  fs::create_directory_symlink(root.path / "dir", root.path / "inside");
  fs::create_directory_symlink("dir", root.path / "relative");

  SECTION("plain paths, existing or not") {
    for (const std::string name : {"dir", "dir/sub", "dir/sub/new", "dir/new/deeper/still",
                                   "new/a/b", "file"}) {
      auto confined = confine(root.path, name);
      INFO("name: " << name);
      REQUIRE(confined);
      CHECK(*confined == root.path / name);
    }
  }
  SECTION("a symlinked parent is refused, wherever it points") {
    for (const std::string name : {"out/x", "inside/x", "relative/x", "inside/sub/x"}) {
      auto confined = confine(root.path, name, true);
      INFO("name: " << name);
      REQUIRE_FALSE(confined);
      CHECK(confined.error().code == errc::invalid_argument);
      CHECK_THAT(confined.error().message, Catch::Contains("symlink"));
    }
  }
  SECTION("a regular file as parent is refused") {
    auto confined = confine(root.path, "file/x");
    REQUIRE_FALSE(confined);
    CHECK(confined.error().code == errc::invalid_argument);
    CHECK_THAT(confined.error().message, Catch::Contains("not a directory"));
  }
  SECTION("a final symlink only when allowed") {
    auto refused = confine(root.path, "out");
    REQUIRE_FALSE(refused);
    CHECK(refused.error().code == errc::invalid_argument);
    auto allowed = confine(root.path, "out", true);
    REQUIRE(allowed);
    CHECK(*allowed == root.path / "out");
  }
  SECTION("bad names are refused before the disk is looked at") {
    for (const std::string name : {"../x", "/etc/passwd", "dir/../../x", "dir//sub"}) {
      auto confined = confine(root.path, name, true);
      INFO("name: " << name);
      REQUIRE_FALSE(confined);
      CHECK(confined.error().code == errc::invalid_argument);
    }
  }
}
