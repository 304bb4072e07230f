// The handshake that opens every connection: versioned Hello both ways,
// then mutual challenge–response over the pre-shared key (the server proves
// itself first, so a client never reveals a proof to an impostor), then
// session keys for every later frame. Nothing else is read or processed
// before it succeeds. See docs/protocol.md, "Handshake".
#pragma once

#include <string>

#include "common/auth.hpp"
#include "common/config.hpp"
#include "transport/channel.hpp"

namespace migrated::transport {

struct identity {
  std::string node;
  pb::Role role = pb::ROLE_DAEMON;
  pb::Capabilities caps;
};

// Client side; on success ch.peer holds the server's Hello.
awaitable<result<void>> handshake_client(channel& ch, const auth::psk& key, const identity& me);

// Server side; on success ch.peer holds the client's Hello. On failure the
// client has been told why (as far as the connection allows).
awaitable<result<void>> handshake_server(channel& ch, const auth::psk& key, const identity& me);

// Resolves and connects to `to` within `connect_timeout`, then runs the
// client handshake.
awaitable<result<channel>> connect(const endpoint& to, const auth::psk& key, const identity& me,
                                   std::chrono::milliseconds connect_timeout,
                                   std::chrono::milliseconds io_timeout);

}  // namespace migrated::transport
