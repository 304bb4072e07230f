// CRIU's cgroup yard, built of symlinks to the host's mounts (see
// cgroup_yard.hpp).
#include "criu/cgroup_yard.hpp"

#include <sys/mount.h>

#include <algorithm>
#include <fstream>
#include <set>
#include <sstream>

namespace migrated::criu {

namespace {

std::vector<std::string> split(std::string_view s, char sep) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (true) {
    const auto end = s.find(sep, start);
    out.emplace_back(s.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start));
    if (end == std::string_view::npos) return out;
    start = end + 1;
  }
}

// mountinfo escapes space, tab, newline and backslash as \ooo.
std::string unescape(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const auto octal = [&](std::size_t k) { return s[k] >= '0' && s[k] <= '7'; };
    if (s[i] == '\\' && i + 3 < s.size() && octal(i + 1) && octal(i + 2) && octal(i + 3)) {
      out += static_cast<char>((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0'));
      i += 3;
    } else {
      out += s[i];
    }
  }
  return out;
}

struct cgroup_mount {
  std::string root;
  std::string mountpoint;
  std::string fstype;
  std::set<std::string> options;  // its super options
};

std::vector<cgroup_mount> cgroup_mounts(std::string_view mountinfo) {
  std::vector<cgroup_mount> out;
  std::istringstream in{std::string(mountinfo)};
  for (std::string line; std::getline(in, line);) {
    std::istringstream fields(line);
    std::vector<std::string> f;
    for (std::string w; fields >> w;) f.push_back(w);
    const auto dash = std::find(f.begin(), f.end(), "-");
    if (f.size() < 5 || dash == f.end() || f.end() - dash < 4) continue;
    const std::string& fstype = *(dash + 1);
    if (fstype != "cgroup" && fstype != "cgroup2") continue;
    cgroup_mount m{unescape(f[3]), unescape(f[4]), fstype, {}};
    for (auto& o : split(*(dash + 3), ',')) m.options.insert(o);
    out.push_back(std::move(m));
  }
  return out;
}

std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace

result<std::vector<yard_link>> plan_cgroup_yard(std::string_view self_cgroup, std::string_view mountinfo,
                                                std::string_view proc_cgroups) {
  std::set<std::string> subsystems;
  {
    std::istringstream in{std::string(proc_cgroups)};
    for (std::string line; std::getline(in, line);) {
      if (line.empty() || line[0] == '#') continue;
      std::istringstream w(line);
      std::string name;
      if (w >> name) subsystems.insert(name);
    }
  }
  const auto mounts = cgroup_mounts(mountinfo);
  std::vector<yard_link> out;
  std::istringstream in{std::string(self_cgroup)};
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    const auto first = line.find(':'), second = line.find(':', first + 1);
    if (first == std::string::npos || second == std::string::npos)
      return fail(errc::invalid_argument, "/proc/self/cgroup: \"" + line + "\"");
    const std::string controllers = line.substr(first + 1, second - first - 1);
    yard_link link;
    const cgroup_mount* found = nullptr;
    if (controllers.empty()) {
      link.name = "unified";
      for (const auto& m : mounts)
        if (m.fstype == "cgroup2" && m.root == "/") { found = &m; break; }
    } else {
      const auto wanted = split(controllers, ',');
      const bool named = controllers.starts_with("name=");
      if (named && wanted.size() > 1)
        return fail(errc::unsupported, "cgroup hierarchy \"" + controllers + "\" mixes a name and controllers");
      link.name = named ? controllers.substr(5) : controllers;
      const std::set<std::string> want(wanted.begin(), wanted.end());
      for (const auto& m : mounts) {
        if (m.fstype != "cgroup" || m.root != "/") continue;
        std::set<std::string> has;
        for (const auto& o : m.options)
          if (subsystems.contains(o) || o.starts_with("name=")) has.insert(o);
        if (has == want) { found = &m; break; }
      }
    }
    if (!found)
      return fail(errc::not_found, "cgroup hierarchy \"" + (controllers.empty() ? "cgroup2" : controllers) +
                                       "\" is not mounted at its root");
    if (link.name.empty() || link.name == "." || link.name == ".." || link.name.find('/') != std::string::npos)
      return fail(errc::unsupported, "cgroup hierarchy \"" + controllers + "\" has no usable name");
    link.target = found->mountpoint;
    if (std::none_of(out.begin(), out.end(), [&](const yard_link& l) { return l.name == link.name; }))
      out.push_back(std::move(link));
  }
  if (out.empty()) return fail(errc::not_found, "/proc/self/cgroup names no hierarchy");
  return out;
}

result<std::filesystem::path> make_cgroup_yard(const std::filesystem::path& dir) {
  auto plan = plan_cgroup_yard(read_file("/proc/self/cgroup"), read_file("/proc/self/mountinfo"),
                               read_file("/proc/cgroups"));
  if (!plan) return std::unexpected(plan.error().context("cgroup yard"));
  std::error_code ec;
  const auto yard = std::filesystem::absolute(dir, ec);
  if (ec) return fail(errc::io, "cgroup yard " + dir.string() + ": " + ec.message());
  // What a restore left here: CRIU mounts a hierarchy the yard lacks into a
  // directory of its own. Symlinks and empty directories go; a directory
  // still holding anything after its mount is detached is left alone.
  if (std::filesystem::exists(yard, ec)) {
    for (const auto& e : std::filesystem::directory_iterator(yard, ec)) {
      std::error_code rm;
      if (!e.is_symlink(rm) && e.is_directory(rm)) ::umount2(e.path().c_str(), MNT_DETACH);
      std::filesystem::remove(e.path(), rm);
      if (rm) return fail(errc::io, "cgroup yard: remove " + e.path().string() + ": " + rm.message());
    }
    if (ec) return fail(errc::io, "cgroup yard: list " + yard.string() + ": " + ec.message());
  }
  std::filesystem::create_directories(yard, ec);
  if (ec) return fail(errc::io, "cgroup yard: create " + yard.string() + ": " + ec.message());
  std::filesystem::permissions(yard, std::filesystem::perms::owner_all, ec);
  for (const auto& l : *plan) {
    std::filesystem::create_directory_symlink(l.target, yard / l.name, ec);
    if (ec) return fail(errc::io, "cgroup yard: link " + (yard / l.name).string() + ": " + ec.message());
  }
  return yard;
}

}  // namespace migrated::criu
