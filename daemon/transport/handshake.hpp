// The handshake that opens every connection: TLS 1.3 with both sides'
// certificates (transport/tls.hpp), then a versioned Hello each way. The
// certificate decides who the other end is; its Hello must agree (same
// node, same role) or the connection ends. A server sends its Hello — its
// runtimes, CRIU and kernel — only to a client whose certificate it has
// verified and whose Hello it has accepted. Nothing else is read or
// processed before it succeeds. See docs/protocol.md, "Handshake".
#pragma once

#include <memory>
#include <string>

#include "common/config.hpp"
#include "common/hello.hpp"
#include "transport/channel.hpp"

namespace migrated::transport {

// What this end says of itself in its Hello.
struct identity {
  std::string node;
  pb::Role role = pb::ROLE_DAEMON;
  pb::Capabilities caps;
};

// Client side; on success ch.who and ch.peer describe the server, which is
// a peer daemon of the fleet, and the one named `expect` unless it is empty.
awaitable<result<void>> handshake_client(channel& ch, const identity& me, const std::string& expect,
                                         std::chrono::milliseconds timeout);

// Server side; on success ch.who and ch.peer describe the client. On
// failure the client has been told why (as far as the connection allows).
awaitable<result<void>> handshake_server(channel& ch, const identity& me, std::chrono::milliseconds timeout);

// Resolves and connects to `to` within `connect_timeout`, then runs the
// client handshake (expecting the node `expect`, or any peer if empty).
awaitable<result<channel>> connect(const endpoint& to, const std::shared_ptr<ssl::context>& tls, const identity& me,
                                   const std::string& expect, std::chrono::milliseconds connect_timeout,
                                   std::chrono::milliseconds io_timeout);

}  // namespace migrated::transport
