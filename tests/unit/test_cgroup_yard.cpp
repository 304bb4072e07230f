// Unit tests for criu/cgroup_yard: which of the host's mounts CRIU is
// pointed at for each hierarchy a process is in (cgroup v1 beside v2 as on
// this machine, co-mounted and named hierarchies, cgroup v2 alone), when
// there can be no yard, and the yard this host gets.
#include <filesystem>
#include <fstream>
#include <sstream>

#include <catch2/catch.hpp>

#include "criu/cgroup_yard.hpp"
#include "temp_dir.hpp"

using namespace migrated::criu;

namespace {

constexpr const char* proc_cgroups =
    "#subsys_name\thierarchy\tnum_cgroups\tenabled\n"
    "cpuset\t3\t1\t1\ncpu\t1\t1\t1\ncpuacct\t2\t1\t1\nblkio\t7\t1\t1\nmemory\t4\t1\t1\n"
    "devices\t5\t1\t1\nfreezer\t6\t1\t1\npids\t8\t1\t1\n";

std::string mount(int id, const std::string& root, const std::string& at, const std::string& fs,
                  const std::string& opts) {
  std::ostringstream s;
  s << id << " 20 0:" << id << " " << root << " " << at << " rw,nosuid - " << fs << " " << fs << " " << opts << "\n";
  return s.str();
}

}  // namespace

TEST_CASE("every hierarchy of a cgroup v1 host with v2 beside it links to its root mount", "[cgroup_yard]") {
  const std::string self = "4:name=systemd:/\n3:memory:/a/b\n2:cpu,cpuacct:/\n1:freezer:/\n0::/\n";
  const std::string info = mount(30, "/", "/sys/fs/cgroup", "tmpfs", "rw,mode=755") +
                           mount(31, "/a", "/elsewhere/memory", "cgroup", "rw,memory") +  // not its root
                           mount(32, "/", "/sys/fs/cgroup/memory", "cgroup", "rw,memory") +
                           mount(33, "/", "/sys/fs/cgroup/cpu,cpuacct", "cgroup", "rw,cpu,cpuacct") +
                           mount(34, "/", "/sys/fs/cgroup/freezer", "cgroup", "rw,freezer,clone_children") +
                           mount(35, "/", "/sys/fs/cgroup/systemd", "cgroup", "rw,xattr,name=systemd") +
                           mount(36, "/", "/sys/fs/cgroup/unified", "cgroup2", "rw,nsdelegate");
  auto plan = plan_cgroup_yard(self, info, proc_cgroups);
  REQUIRE(plan);
  const std::vector<yard_link> want{{"systemd", "/sys/fs/cgroup/systemd"},
                                    {"memory", "/sys/fs/cgroup/memory"},
                                    {"cpu,cpuacct", "/sys/fs/cgroup/cpu,cpuacct"},
                                    {"freezer", "/sys/fs/cgroup/freezer"},
                                    {"unified", "/sys/fs/cgroup/unified"}};
  CHECK(*plan == want);
}

TEST_CASE("a cgroup v2 host links unified to its one mount", "[cgroup_yard]") {
  auto plan = plan_cgroup_yard("0::/user.slice\n", mount(30, "/", "/sys/fs/cgroup", "cgroup2", "rw,nsdelegate"),
                               proc_cgroups);
  REQUIRE(plan);
  CHECK(*plan == std::vector<yard_link>{{"unified", "/sys/fs/cgroup"}});
}

TEST_CASE("a mount point with a space is read unescaped", "[cgroup_yard]") {
  auto plan = plan_cgroup_yard("1:pids:/\n", mount(30, "/", "/run/my\\040cgroups/pids", "cgroup", "rw,pids"),
                               proc_cgroups);
  REQUIRE(plan);
  CHECK(plan->front().target == "/run/my cgroups/pids");
}

TEST_CASE("no yard when a hierarchy is mounted nowhere or only below its root", "[cgroup_yard]") {
  const std::string info = mount(31, "/", "/sys/fs/cgroup/cpu", "cgroup", "rw,cpu") +
                           mount(32, "/docker", "/sys/fs/cgroup/memory", "cgroup", "rw,memory");
  auto missing = plan_cgroup_yard("2:cpu:/\n1:pids:/\n", info, proc_cgroups);
  REQUIRE_FALSE(missing);
  CHECK(missing.error().message.find("\"pids\"") != std::string::npos);
  auto below = plan_cgroup_yard("2:memory:/\n", info, proc_cgroups);
  REQUIRE_FALSE(below);
  CHECK(below.error().message.find("\"memory\"") != std::string::npos);
  // A mount of cpu and cpuacct together is not the hierarchy of cpu alone.
  auto other = plan_cgroup_yard("1:cpu:/\n", mount(31, "/", "/c", "cgroup", "rw,cpu,cpuacct"), proc_cgroups);
  CHECK_FALSE(other);
  CHECK_FALSE(plan_cgroup_yard("", info, proc_cgroups));
  CHECK_FALSE(plan_cgroup_yard("garbage\n", info, proc_cgroups));
}

TEST_CASE("this host's yard holds symlinks to its cgroup mounts, replacing an older one", "[cgroup_yard]") {
  migrated::testing::temp_dir tmp;
  const auto dir = tmp.path / "yard";
  std::filesystem::create_directories(dir / "stale");
  std::ofstream(dir / "left-over") << "x";
  auto yard = make_cgroup_yard(dir);
  if (!yard) {
    WARN("skipped: no cgroup yard on this host: " << yard.error().message);
    return;
  }
  CHECK(*yard == std::filesystem::absolute(dir));
  CHECK_FALSE(std::filesystem::exists(dir / "stale"));
  CHECK_FALSE(std::filesystem::exists(dir / "left-over"));
  std::size_t links = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    CHECK(e.is_symlink());
    CHECK(std::filesystem::is_directory(e.path()));  // its target, a mounted hierarchy
    ++links;
  }
  CHECK(links > 0);
  std::filesystem::remove_all(dir);  // symlinks only: nothing under /sys is touched
  CHECK_FALSE(std::filesystem::exists(dir));
}
