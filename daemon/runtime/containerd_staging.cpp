// Removing containerd's copies of a restored checkpoint (see containerd_staging.hpp).
#include "runtime/containerd_staging.hpp"

#include <sys/stat.h>

#include <cctype>
#include <fstream>
#include <iterator>

namespace migrated::runtime {
namespace {

constexpr std::string_view prefix = "ctrd-checkpoint";

std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// NAME=value of a process's environment, or empty.
std::string env_of(const std::string& environ, std::string_view name) {
  std::size_t at = 0;
  while (at < environ.size()) {
    const auto end = std::min(environ.find('\0', at), environ.size());
    const std::string_view kv(environ.data() + at, end - at);
    if (kv.size() > name.size() && kv.substr(0, name.size()) == name && kv[name.size()] == '=')
      return std::string(kv.substr(name.size() + 1));
    at = end + 1;
  }
  return {};
}

bool is_containerd(const std::filesystem::path& proc) {
  auto comm = slurp(proc / "comm");
  while (!comm.empty() && std::isspace(static_cast<unsigned char>(comm.back()))) comm.pop_back();
  return comm == "containerd";
}

// Go's os.MkdirTemp(os.Getenv("XDG_RUNTIME_DIR"), ...): that, else $TMPDIR, else /tmp.
std::filesystem::path temp_dir_of(const std::filesystem::path& proc) {
  const auto environ = slurp(proc / "environ");
  std::string dir = env_of(environ, "XDG_RUNTIME_DIR");
  if (dir.empty()) dir = env_of(environ, "TMPDIR");
  if (dir.empty()) dir = "/tmp";
  return proc / "root" / std::filesystem::path(dir).relative_path();
}

}  // namespace

staging_snapshot take_staging_snapshot() {
  staging_snapshot snap;
  std::set<std::pair<dev_t, ino_t>> seen;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator("/proc", ec)) {
    const auto name = e.path().filename().string();
    if (name.empty() || !std::isdigit(static_cast<unsigned char>(name[0])) || !is_containerd(e.path())) continue;
    const auto dir = temp_dir_of(e.path());
    struct stat st {};
    if (::stat(dir.c_str(), &st) != 0 || !seen.insert({st.st_dev, st.st_ino}).second) continue;
    snap.dirs.push_back(dir);
  }
  for (const auto& dir : snap.dirs)
    for (const auto& e : std::filesystem::directory_iterator(dir, ec))
      if (e.path().filename().string().starts_with(prefix)) snap.present.insert(e.path());
  return snap;
}

checkpoint_identity identify_checkpoint(const std::filesystem::path& images) {
  return {slurp(images / "inventory.img"), slurp(images / "pstree.img")};
}

std::vector<std::filesystem::path> remove_staged_copies(const staging_snapshot& before, const checkpoint_identity& id) {
  std::vector<std::filesystem::path> removed;
  if (id.empty()) return removed;
  std::vector<std::filesystem::path> ours;  // found first: no removal while a directory is read
  std::error_code ec;
  for (const auto& dir : before.dirs) {
    for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
      const auto& p = e.path();
      if (!p.filename().string().starts_with(prefix) || before.present.contains(p)) continue;
      if (slurp(p / "inventory.img") == id.inventory && slurp(p / "pstree.img") == id.pstree) ours.push_back(p);
    }
  }
  for (const auto& p : ours) {
    std::error_code rm;
    std::filesystem::remove_all(p, rm);
    if (!rm) removed.push_back(p);
  }
  return removed;
}

}  // namespace migrated::runtime
