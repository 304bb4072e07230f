// Errors in migrated: every fallible function returns result<T>, an
// std::expected carrying an `error` — a code that travels on the wire (it
// mirrors pb::Code) plus a human sentence that grows context as it rises:
//   "restore web-1: runc restore: criu: Failed to copy sharing (see …)".
// Exceptions are for bugs only; they are caught where coroutines are spawned.
// See docs/errors.md.
#pragma once

#include <cerrno>
#include <cstring>
#include <expected>
#include <string>
#include <string_view>
#include <utility>

namespace migrated {

enum class errc {
  ok = 0,
  invalid_argument = 1,
  not_found = 2,
  already_exists = 3,
  io = 4,
  protocol = 5,
  auth = 6,
  timeout = 7,
  cancelled = 8,
  runtime = 9,
  criu = 10,
  checksum = 11,
  config = 12,
  unsupported = 13,
  peer = 14,
  no_space = 15,
  internal = 16,
  busy = 17,
  denied = 18,  // not permitted to this identity (its role, or not in peers:)
  refused = 19, // nothing listens at the peer's address: its daemon is not running
};

std::string_view to_string(errc code);

struct error {
  errc code = errc::internal;
  std::string message;

  // "what: message" — used as an error rises through the layers.
  [[nodiscard]] error context(std::string_view what) const {
    return error{code, std::string(what) + ": " + message};
  }
};

template <class T = void>
using result = std::expected<T, error>;

inline std::unexpected<error> fail(errc code, std::string message) {
  return std::unexpected(error{code, std::move(message)});
}

// An errno value as an error: "open /x: No such file or directory".
// ENOSPC and EDQUOT become errc::no_space, ENOENT errc::not_found.
std::unexpected<error> fail_errno(int err, std::string_view what);

// Adds context to the error of a failed result, passes success through.
template <class T>
result<T> with_context(result<T> r, std::string_view what) {
  if (!r) return std::unexpected(r.error().context(what));
  return r;
}

}  // namespace migrated
