// Confinement of peer-supplied names to a directory.
//
// Names arrive from the network (tree manifests, file streams), and the
// daemon runs as root, so one "../" or one symlink in the wrong place would
// let a peer write anywhere. Two layers, both strict:
// - the name itself is refused unless every component is a plain name —
//   rather than normalising "a/./b" or "a//b", which would mean two
//   spellings of one path and a manifest that can disagree with itself;
// - on disk, every existing parent below the root must be a real directory
//   (lstat, never stat), so "a/b" cannot be redirected by a symlink "a",
//   even one that points inside the root: what the peer described as a
//   directory must be a directory.
// Components that do not exist yet are fine: the caller is about to create
// them, and creating never follows a symlink that is not there.
#include "common/path.hpp"

#include <sys/stat.h>

#include <cstdio>
#include <string>

namespace migrated {
namespace {

// The name as it can safely appear in a message (NUL and control bytes escaped).
std::string quoted(std::string_view name) {
  std::string out = "\"";
  for (const char c : name) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte < 0x20 || byte == 0x7f || c == '"' || c == '\\') {
      char escaped[8];
      std::snprintf(escaped, sizeof escaped, "\\x%02x", byte);
      out += escaped;
    } else {
      out.push_back(c);
    }
  }
  return out + "\"";
}

std::unexpected<error> refuse(std::string_view relative, std::string_view why) {
  return fail(errc::invalid_argument,
              "refusing path " + quoted(relative) + ": " + std::string(why));
}

}  // namespace

result<void> check_relative_name(std::string_view relative) {
  if (relative.empty()) return refuse(relative, "it is empty");
  if (relative.find('\0') != std::string_view::npos) return refuse(relative, "it contains NUL");
  if (relative.front() == '/') return refuse(relative, "it is absolute");
  std::size_t start = 0;
  for (;;) {
    const std::size_t end = relative.find('/', start);
    const std::size_t length = end == std::string_view::npos ? std::string_view::npos : end - start;
    const std::string_view part = relative.substr(start, length);
    if (part.empty()) return refuse(relative, "it has an empty component");
    if (part == ".") return refuse(relative, "it has a \".\" component");
    if (part == "..") return refuse(relative, "it has a \"..\" component");
    if (end == std::string_view::npos) return {};
    start = end + 1;
  }
}

result<std::filesystem::path> confine(const std::filesystem::path& root,
                                      std::string_view relative, bool allow_final_symlink) {
  if (root.empty()) return fail(errc::invalid_argument, "confine: empty root directory");
  if (auto ok = check_relative_name(relative); !ok) return std::unexpected(ok.error());

  std::string current = root.string();
  std::size_t start = 0;
  for (;;) {
    const std::size_t end = relative.find('/', start);
    const bool last = end == std::string_view::npos;
    current += '/';
    current += relative.substr(start, last ? std::string_view::npos : end - start);

    struct stat st {};
    if (::lstat(current.c_str(), &st) != 0) {
      if (errno == ENOENT) break;  // nothing deeper exists either
      return fail_errno(errno, "lstat " + current);
    }
    const std::string_view walked = relative.substr(0, last ? relative.size() : end);
    if (last) {
      if (S_ISLNK(st.st_mode) && !allow_final_symlink)
        return refuse(relative, "it is a symlink");
      break;
    }
    if (S_ISLNK(st.st_mode)) return refuse(relative, quoted(walked) + " is a symlink");
    if (!S_ISDIR(st.st_mode)) return refuse(relative, quoted(walked) + " is not a directory");
    start = end + 1;
  }
  return root / std::filesystem::path(std::string(relative));
}

}  // namespace migrated
