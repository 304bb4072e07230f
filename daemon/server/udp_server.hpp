// The UDP listener: single-datagram commands (Migrate, Prepare, Status,
// Abort) for controllers that fire commands as seed D's does. Each datagram
// is verified (HMAC, timestamp window, nonce never seen) before anything is
// parsed further; a refused datagram is logged and gets no answer, so the
// listener cannot be used to reflect traffic. Accepted commands are answered
// with one sealed datagram: a Reply (with the migration id) or a StatusReply.
#pragma once

#include "common/datagram.hpp"
#include "server/commands.hpp"

namespace migrated::server {

class udp_server {
 public:
  udp_server(migration::node_context& ctx, commands& cmds, udp::socket socket);

  awaitable<void> run();
  void stop();

 private:
  pb::Envelope handle(const pb::Envelope& req, const node_identity& sender);

  migration::node_context& ctx_;
  commands& cmds_;
  udp::socket socket_;
  datagram::replay_guard guard_;
};

}  // namespace migrated::server
