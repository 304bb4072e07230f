// Controller connections (see client.hpp).
#include "ctl/client.hpp"

#include "common/datagram.hpp"
#include "transport/handshake.hpp"

namespace migrated::ctl {

result<client> client::make(client_options opts) {
  auto creds = credentials::load(opts.tls);
  if (!creds) return std::unexpected(creds.error());
  if (creds->self().role != node_role::controller)
    return fail(errc::config, opts.tls.cert.string() + " is the certificate of the peer " + creds->self().name +
                                  ", not a controller's (scripts/migrated-ca issue DIR NAME --role controller)");
  auto tls = transport::make_tls_context(*creds);
  if (!tls) return std::unexpected(tls.error());
  return client(std::move(opts), std::move(*creds), std::move(*tls));
}

client::client(client_options opts, credentials creds, std::shared_ptr<transport::ssl::context> tls)
    : opts_(std::move(opts)), creds_(std::move(creds)), tls_(std::move(tls)) {
  me_.node = creds_.self().name;
  me_.role = pb::ROLE_CONTROLLER;
}

awaitable<result<transport::channel>> client::connect() {
  co_return co_await transport::connect(opts_.daemon, tls_, me_, opts_.node, opts_.timeout, opts_.timeout);
}

awaitable<result<pb::Envelope>> client::udp_request(const pb::Envelope& req) {
  auto ex = co_await asio::this_coro::executor;
  boost::system::error_code ec;
  auto addr = asio::ip::make_address(opts_.daemon_udp.host, ec);
  if (ec) co_return fail(errc::invalid_argument, "udp address '" + opts_.daemon_udp.host + "' is not an IP address");
  udp::endpoint to(addr, opts_.daemon_udp.port);
  udp::socket sock(ex, udp::endpoint(to.protocol(), 0));
  auto bytes = datagram::seal(creds_, req, datagram::clock::now());
  co_await sock.async_send_to(asio::buffer(bytes), to, asio::redirect_error(use_awaitable, ec));
  if (ec) co_return fail(errc::io, "send to " + opts_.daemon_udp.to_string() + ": " + ec.message());

  asio::steady_timer deadline(ex, opts_.timeout);
  deadline.async_wait([&](boost::system::error_code e) {
    if (!e) sock.cancel();
  });
  std::vector<std::uint8_t> buf(datagram::max_datagram_bytes + 1);
  datagram::replay_guard guard;
  for (;;) {
    udp::endpoint from;
    std::size_t n = co_await sock.async_receive_from(asio::buffer(buf), from, asio::redirect_error(use_awaitable, ec));
    if (ec == asio::error::operation_aborted)
      co_return fail(errc::timeout, "no answer from " + opts_.daemon_udp.to_string() + " within " +
                                        std::to_string(opts_.timeout.count()) + " ms (certificate of another fleet, or daemon down?)");
    if (ec) co_return fail(errc::io, "receive from " + opts_.daemon_udp.to_string() + ": " + ec.message());
    auto opened = datagram::open(creds_, std::span(buf.data(), n), guard, datagram::clock::now());
    if (!opened) continue;  // not for us, or forged: keep waiting for the real answer
    if (opened->sender.role != node_role::peer || (!opts_.node.empty() && opened->sender.name != opts_.node))
      continue;  // a reply comes from the daemon, not from another controller
    if (opened->body.request_id() != req.request_id()) continue;
    deadline.cancel();
    co_return std::move(opened->body);
  }
}

}  // namespace migrated::ctl
