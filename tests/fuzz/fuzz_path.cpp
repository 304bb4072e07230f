// Confinement of peer-supplied names (common/path.hpp): check_relative_name
// and confine() against a root holding a directory, a file and symlinks to
// "/" and to a directory inside the root. The first byte chooses
// allow_final_symlink; the rest is the name.
// Invariants: an accepted name has only plain components; a confined path
// lies under the root and walks through no symlink and no file.
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

#include "common/path.hpp"
#include "fuzz_support.hpp"

using namespace migrated;
namespace sfs = std::filesystem;

namespace {

const sfs::path& root() {
  static const sfs::path r = [] {
    const sfs::path d = fuzz::scratch("path") / "root";
    sfs::create_directories(d / "dir" / "sub");
    std::ofstream(d / "file") << "x";
    sfs::create_symlink("/", d / "up");
    sfs::create_symlink("dir", d / "dir-link");
    return d;
  }();
  return r;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const bool allow_final_symlink = (data[0] & 1) != 0;
  const std::string_view name(reinterpret_cast<const char*>(data + 1), size - 1);

  const bool plain = check_relative_name(name).has_value();
  if (plain) {
    FUZZ_CHECK(!name.empty() && name.front() != '/' && name.find('\0') == std::string_view::npos);
    const std::string slashed = "/" + std::string(name) + "/";
    FUZZ_CHECK(slashed.find("//") == std::string::npos && slashed.find("/./") == std::string::npos &&
               slashed.find("/../") == std::string::npos);
  }

  auto p = confine(root(), name, allow_final_symlink);
  if (!p) return 0;
  FUZZ_CHECK(plain, "confine accepted a name check_relative_name refuses");
  FUZZ_CHECK(p->string() == root().string() + "/" + std::string(name));
  // Every proper prefix that exists is a real directory.
  sfs::path walked = root();
  const sfs::path rel(name);
  for (auto it = rel.begin(); it != rel.end();) {
    walked /= *it;
    if (++it == rel.end()) break;
    struct stat st {};
    if (::lstat(walked.c_str(), &st) != 0) break;
    FUZZ_CHECK(S_ISDIR(st.st_mode), walked.string());
  }
  struct stat st {};
  if (!allow_final_symlink && ::lstat(p->c_str(), &st) == 0) FUZZ_CHECK(!S_ISLNK(st.st_mode));
  return 0;
}
