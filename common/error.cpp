#include "common/error.hpp"

namespace migrated {

std::string_view to_string(errc code) {
  switch (code) {
    case errc::ok: return "ok";
    case errc::invalid_argument: return "invalid_argument";
    case errc::not_found: return "not_found";
    case errc::already_exists: return "already_exists";
    case errc::io: return "io";
    case errc::protocol: return "protocol";
    case errc::auth: return "auth";
    case errc::timeout: return "timeout";
    case errc::cancelled: return "cancelled";
    case errc::runtime: return "runtime";
    case errc::criu: return "criu";
    case errc::checksum: return "checksum";
    case errc::config: return "config";
    case errc::unsupported: return "unsupported";
    case errc::peer: return "peer";
    case errc::no_space: return "no_space";
    case errc::internal: return "internal";
    case errc::busy: return "busy";
    case errc::denied: return "denied";
    case errc::refused: return "refused";
  }
  return "unknown";
}

std::unexpected<error> fail_errno(int err, std::string_view what) {
  errc code = errc::io;
  if (err == ENOSPC || err == EDQUOT) code = errc::no_space;
  if (err == ENOENT) code = errc::not_found;
  if (err == EEXIST) code = errc::already_exists;
  if (err == ETIMEDOUT) code = errc::timeout;
  return fail(code, std::string(what) + ": " + std::strerror(err));
}

}  // namespace migrated
