// Handshake: TLS, then Hello / Hello. The client speaks first; the server
// answers a Hello it refuses with a Reply saying why, then ends the
// connection.
#include "transport/handshake.hpp"

#include <algorithm>

#include <boost/asio/connect.hpp>

namespace migrated::transport {
namespace {

pb::Envelope make_hello(const identity& me) {
  pb::Envelope env;
  auto* h = env.mutable_hello();
  h->set_protocol_version(wire::protocol_version);
  h->set_node(me.node);
  h->set_role(me.role);
  *h->mutable_caps() = me.caps;
  return env;
}

// What is left of a handshake's time (never zero: a last read still gets
// a moment to report what happened).
std::chrono::milliseconds left(std::chrono::steady_clock::time_point deadline) {
  auto rest = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
  return std::max(rest, std::chrono::milliseconds(1));
}

// A Hello with its capabilities or a Reply is well under 1 KiB: before
// the Hello is accepted, no frame may make us allocate more.
constexpr std::size_t handshake_frame_bytes = 16 * 1024;

}  // namespace

awaitable<result<void>> handshake_client(channel& ch, const identity& me, const std::string& expect,
                                         std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  ch.limit_frames(handshake_frame_bytes);
  if (auto ok = co_await ch.secure(channel::side::client, timeout); !ok) co_return std::unexpected(ok.error());
  if (ch.who.role != node_role::peer)
    co_return fail(errc::auth, "authentication failed: " + ch.remote() + " presents the certificate of " +
                                   ch.who.name + ", a controller, not a peer daemon");
  if (!expect.empty() && ch.who.name != expect)
    co_return fail(errc::auth, "authentication failed: expected " + expect + " at " + ch.remote() +
                                   ", its certificate names " + ch.who.name);
  const pb::Envelope hello = make_hello(me);
  if (auto ok = co_await ch.send_within(left(deadline), hello); !ok)
    co_return std::unexpected(ok.error().context("handshake"));
  auto f = co_await ch.recv(left(deadline));
  if (!f) co_return std::unexpected(f.error().context("handshake"));
  if (f->msg.has_reply()) {
    // The server refused our Hello (and said why), or talks nonsense.
    auto refused = to_result(f->msg.reply());
    if (!refused) co_return std::unexpected(refused.error().context("handshake with " + ch.who.name));
    co_return fail(errc::protocol, "handshake: expected Hello, got a Reply");
  }
  if (auto ok = check_hello(f->msg, ch.who); !ok) co_return std::unexpected(ok.error());
  ch.peer = f->msg.hello();
  ch.limit_frames(0);
  co_return result<void>{};
}

awaitable<result<void>> handshake_server(channel& ch, const identity& me, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  ch.limit_frames(handshake_frame_bytes);
  if (auto ok = co_await ch.secure(channel::side::server, timeout); !ok) co_return std::unexpected(ok.error());
  auto f = co_await ch.recv(left(deadline));
  if (!f) co_return std::unexpected(f.error().context("handshake with " + ch.who.name));
  if (auto ok = check_hello(f->msg, ch.who); !ok) {
    co_await ch.reply(f->msg.request_id(), ok);
    co_return std::unexpected(ok.error());
  }
  const pb::Envelope hello = make_hello(me);
  if (auto ok = co_await ch.send_within(left(deadline), hello); !ok)
    co_return std::unexpected(ok.error().context("handshake"));
  ch.peer = f->msg.hello();
  ch.limit_frames(0);
  co_return result<void>{};
}

awaitable<result<channel>> connect(const endpoint& to, const std::shared_ptr<ssl::context>& tls, const identity& me,
                                   const std::string& expect, std::chrono::milliseconds connect_timeout,
                                   std::chrono::milliseconds io_timeout) {
  auto ex = co_await asio::this_coro::executor;
  boost::system::error_code ec;
  tcp::resolver resolver(ex);
  auto endpoints = co_await resolver.async_resolve(to.host, std::to_string(to.port),
                                                   asio::redirect_error(use_awaitable, ec));
  if (ec) co_return fail(errc::peer, "resolve " + to.to_string() + ": " + ec.message());
  boost::beast::tcp_stream stream(ex);
  stream.expires_after(connect_timeout);
  co_await stream.async_connect(endpoints, asio::redirect_error(use_awaitable, ec));
  if (ec == boost::beast::error::timeout) co_return fail(errc::timeout, "connect to " + to.to_string() + ": timed out");
  if (ec == asio::error::connection_refused)
    co_return fail(errc::refused, "connect to " + to.to_string() + ": connection refused (is its daemon running?)");
  if (ec) co_return fail(errc::peer, "connect to " + to.to_string() + ": " + ec.message());
  channel ch(stream.release_socket(), tls, io_timeout);
  if (auto ok = co_await handshake_client(ch, me, expect, connect_timeout); !ok) {
    ch.close();
    co_return std::unexpected(ok.error().context(to.to_string()));
  }
  co_return ch;
}

}  // namespace migrated::transport
