// Confinement of names received from a peer to a directory: a received
// relative path may not be empty, absolute, contain "..", "." or empty
// components or NUL, and no existing component under the root may be a
// symlink (so "a/b" cannot escape through a symlink "a" -> "/etc").
#pragma once

#include <filesystem>
#include <string_view>

#include "common/error.hpp"

namespace migrated {

// Checks the name only (no filesystem access). errc::invalid_argument.
result<void> check_relative_name(std::string_view relative);

// root / relative, after check_relative_name and a walk of the existing
// parents with lstat: errc::invalid_argument when a parent is a symlink or
// not a directory. The final component itself may be a symlink only if
// `allow_final_symlink` (callers replacing it unlink first).
result<std::filesystem::path> confine(const std::filesystem::path& root,
                                      std::string_view relative,
                                      bool allow_final_symlink = false);

}  // namespace migrated
