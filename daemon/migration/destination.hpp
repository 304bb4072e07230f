// Where a migration may go: a peer listed in `peers:` by name (or by its
// listed host:port), or — only with allow_unlisted_destinations — any
// host:port whose certificate is a peer's of this fleet. The connection to a
// listed peer must present that peer's certificate: an address that answers
// with another name is refused.
#pragma once

#include <string>

#include "common/config.hpp"
#include "migration/context.hpp"
#include "transport/channel.hpp"

namespace migrated::migration {

struct destination {
  endpoint address;
  std::string name;  // the listed peer's name; empty for an unlisted host:port
};

// errc::not_found for an unknown name, errc::denied for an unlisted
// host:port that the configuration does not allow.
result<destination> resolve_destination(const config& cfg, const std::string& dest);

// Resolves, connects and authenticates (transport::connect).
awaitable<result<transport::channel>> connect_destination(node_context& ctx, const std::string& dest);

}  // namespace migrated::migration
