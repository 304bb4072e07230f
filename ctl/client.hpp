// migratectl's side of the protocol: a TLS connection to a daemon as a
// controller (a controller's certificate of the fleet, same handshake as
// the daemons), or single signed UDP datagrams for fire-and-forget commands.
#pragma once

#include <chrono>
#include <filesystem>

#include "asio.hpp"
#include "common/credentials.hpp"
#include "common/config.hpp"
#include "transport/handshake.hpp"

namespace migrated::ctl {

struct client_options {
  endpoint daemon{"127.0.0.1", 7450};
  endpoint daemon_udp{"127.0.0.1", 7451};
  tls_files tls{"/etc/migrated/tls/ca.crt", "/etc/migrated/tls/controller.crt",
                "/etc/migrated/tls/controller.key"};
  std::string node;  // the daemon's name its certificate must state (empty: any peer of the fleet)
  std::chrono::milliseconds timeout{15000};
};

class client {
 public:
  // Refuses credentials that are not a controller's.
  static result<client> make(client_options opts);

  awaitable<result<transport::channel>> connect();
  // One request datagram, one reply datagram (verified), within the timeout.
  awaitable<result<pb::Envelope>> udp_request(const pb::Envelope& req);

  const client_options& options() const { return opts_; }

 private:
  client(client_options opts, credentials creds, std::shared_ptr<transport::ssl::context> tls);

  client_options opts_;
  credentials creds_;
  std::shared_ptr<transport::ssl::context> tls_;
  transport::identity me_;
};

}  // namespace migrated::ctl
