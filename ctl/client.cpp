// Controller connections (see client.hpp).
#include "ctl/client.hpp"

#include <unistd.h>

#include "common/datagram.hpp"
#include "transport/handshake.hpp"

namespace migrated::ctl {

client::client(client_options opts, auth::psk key) : opts_(std::move(opts)), key_(std::move(key)) {
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  me_.node = std::string("migratectl@") + host;
  me_.role = pb::ROLE_CONTROLLER;
}

awaitable<result<transport::channel>> client::connect() {
  co_return co_await transport::connect(opts_.daemon, key_, me_, opts_.timeout, opts_.timeout);
}

awaitable<result<pb::Envelope>> client::udp_request(const pb::Envelope& req) {
  auto ex = co_await asio::this_coro::executor;
  boost::system::error_code ec;
  auto addr = asio::ip::make_address(opts_.daemon_udp.host, ec);
  if (ec) co_return fail(errc::invalid_argument, "udp address '" + opts_.daemon_udp.host + "' is not an IP address");
  udp::endpoint to(addr, opts_.daemon_udp.port);
  udp::socket sock(ex, udp::endpoint(to.protocol(), 0));
  auto bytes = datagram::seal(key_, me_.node, req, datagram::clock::now());
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
                                        std::to_string(opts_.timeout.count()) + " ms (wrong key, or daemon down?)");
    if (ec) co_return fail(errc::io, "receive from " + opts_.daemon_udp.to_string() + ": " + ec.message());
    auto opened = datagram::open(key_, std::span(buf.data(), n), guard, datagram::clock::now());
    if (!opened) continue;  // not for us, or forged: keep waiting for the real answer
    if (opened->body.request_id() != req.request_id()) continue;
    deadline.cancel();
    co_return std::move(opened->body);
  }
}

}  // namespace migrated::ctl
