// The TCP listener: accepts connections (within the limits of
// connections.hpp), runs the handshake, then serves
// either a peer daemon (a Pull opens a destination session that owns the
// rest of the connection) or a controller (commands, and for a followed
// Migrate the progress frames and the final Report).
#pragma once

#include "server/commands.hpp"
#include "server/connections.hpp"

namespace migrated::server {

class tcp_server {
 public:
  tcp_server(migration::node_context& ctx, commands& cmds, tcp::acceptor acceptor);

  awaitable<void> run();
  void stop();
  // Followed migrations whose report has not gone out yet.
  std::size_t following() const { return following_; }

 private:
  awaitable<void> serve(tcp::socket socket);
  // The handshake gets what is left of limits.handshake_ms; then the conversation.
  awaitable<void> converse(transport::channel& ch, connections::id cid, std::chrono::milliseconds handshake_left);
  awaitable<void> follow_migration(transport::channel& ch, const pb::Envelope& req);

  migration::node_context& ctx_;
  commands& cmds_;
  tcp::acceptor acceptor_;
  std::size_t following_ = 0;
  connections conns_;
};

}  // namespace migrated::server
