// migratectl's side of the protocol: a TCP connection to a daemon as a
// controller (same handshake and key as the daemons), or single UDP
// datagrams for fire-and-forget commands.
#pragma once

#include <chrono>
#include <filesystem>

#include "asio.hpp"
#include "common/auth.hpp"
#include "common/config.hpp"
#include "transport/handshake.hpp"

namespace migrated::ctl {

struct client_options {
  endpoint daemon{"127.0.0.1", 7450};
  endpoint daemon_udp{"127.0.0.1", 7451};
  std::filesystem::path psk_file = "/etc/migrated/psk";
  std::chrono::milliseconds timeout{15000};
};

class client {
 public:
  client(client_options opts, auth::psk key);

  awaitable<result<transport::channel>> connect();
  // One request datagram, one reply datagram (verified), within the timeout.
  awaitable<result<pb::Envelope>> udp_request(const pb::Envelope& req);

  const client_options& options() const { return opts_; }

 private:
  client_options opts_;
  auth::psk key_;
  transport::identity me_;
};

}  // namespace migrated::ctl
