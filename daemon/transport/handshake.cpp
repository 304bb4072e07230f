// Handshake: Hello / Hello, server proof, client proof, Reply. The proofs
// bind both nonces and both node names (auth::proof), so they cannot be
// replayed into another connection or reflected. The server's final Reply
// tells a client with the wrong key exactly that, then the connection ends.
#include "transport/handshake.hpp"

#include <boost/asio/connect.hpp>

#include "common/hello.hpp"

namespace migrated::transport {
namespace {

pb::Envelope make_hello(const identity& me, const auth::bytes& nonce) {
  pb::Envelope env;
  auto* h = env.mutable_hello();
  h->set_protocol_version(wire::protocol_version);
  h->set_node(me.node);
  h->set_role(me.role);
  *h->mutable_caps() = me.caps;
  h->set_nonce(nonce.data(), nonce.size());
  return env;
}

std::span<const std::uint8_t> bytes_of(const std::string& s) { return auth::as_bytes(s); }

pb::Envelope make_proof(const auth::mac& m) {
  pb::Envelope env;
  env.mutable_auth()->set_mac(m.data(), m.size());
  return env;
}

// A Hello with its capabilities, a proof or a Reply is well under 1 KiB:
// before the peer has proven its key, no frame may make us allocate more.
constexpr std::size_t handshake_frame_bytes = 16 * 1024;

}  // namespace

awaitable<result<void>> handshake_client(channel& ch, const auth::psk& key, const identity& me) {
  ch.limit_frames(handshake_frame_bytes);
  auto nonce_c = auth::random_bytes(auth::nonce_bytes);
  if (auto ok = co_await ch.send(make_hello(me, nonce_c)); !ok) co_return std::unexpected(ok.error().context("handshake"));
  auto f = co_await ch.recv();
  if (!f) co_return std::unexpected(f.error().context("handshake"));
  if (f->msg.has_reply()) {
    // The server refused our Hello (and said why), or talks nonsense.
    auto refused = to_result(f->msg.reply());
    if (!refused) co_return std::unexpected(refused.error().context("handshake"));
    co_return fail(errc::protocol, "handshake: expected Hello, got a Reply");
  }
  auto peer = check_hello(f->msg);
  if (!peer) co_return std::unexpected(peer.error());
  std::string nonce_cs(nonce_c.begin(), nonce_c.end());
  const std::string& nonce_s = peer->nonce();

  auto server_proof = co_await ch.recv();
  if (!server_proof) co_return std::unexpected(server_proof.error().context("handshake"));
  if (!server_proof->msg.has_auth()) co_return fail(errc::protocol, "handshake: expected the server's proof");
  auto want = auth::proof(key, "server", nonce_c, bytes_of(nonce_s), me.node, peer->node());
  if (!auth::equal(want, bytes_of(server_proof->msg.auth().mac()))) {
    // Tell the server, so its operator sees an authentication failure too.
    auto err = error{errc::auth, "authentication failed: " + me.node + " refused the pre-shared key of " + peer->node()};
    const result<void> refused = std::unexpected(err);
    co_await ch.reply(0, refused);
    co_return fail(errc::auth, "authentication failed: " + peer->node() + " at " + ch.remote() +
                                   " does not hold our pre-shared key");
  }

  auto mine = auth::proof(key, "client", nonce_c, bytes_of(nonce_s), me.node, peer->node());
  if (auto ok = co_await ch.send(make_proof(mine)); !ok) co_return std::unexpected(ok.error().context("handshake"));
  auto verdict = co_await expect_reply(ch, "handshake", ch.io_timeout());
  if (!verdict) co_return std::unexpected(verdict.error());
  if (auto ok = to_result(*verdict); !ok) co_return std::unexpected(ok.error());

  auto keys = auth::derive_session_keys(key, nonce_c, bytes_of(nonce_s));
  ch.rekey(keys.client_to_server, keys.server_to_client);
  ch.peer = *peer;
  ch.limit_frames(0);
  co_return result<void>{};
}

awaitable<result<void>> handshake_server(channel& ch, const auth::psk& key, const identity& me) {
  ch.limit_frames(handshake_frame_bytes);
  auto f = co_await ch.recv();
  if (!f) co_return std::unexpected(f.error().context("handshake"));
  auto peer = check_hello(f->msg);
  if (!peer) {
    const result<void> refused = std::unexpected(peer.error());
    co_await ch.reply(f->msg.request_id(), refused);
    co_return std::unexpected(peer.error());
  }
  auto nonce_s = auth::random_bytes(auth::nonce_bytes);
  const std::string& nonce_c = peer->nonce();
  if (auto ok = co_await ch.send(make_hello(me, nonce_s)); !ok) co_return std::unexpected(ok.error().context("handshake"));
  auto mine = auth::proof(key, "server", bytes_of(nonce_c), nonce_s, peer->node(), me.node);
  if (auto ok = co_await ch.send(make_proof(mine)); !ok) co_return std::unexpected(ok.error().context("handshake"));

  auto client_proof = co_await ch.recv();
  if (!client_proof) co_return std::unexpected(client_proof.error().context("handshake with " + peer->node()));
  if (client_proof->msg.has_reply() && !client_proof->msg.reply().ok())
    co_return fail(errc::auth, "authentication failed: " + peer->node() + " at " + ch.remote() +
                                   " does not hold our pre-shared key (it refused our proof)");
  if (!client_proof->msg.has_auth()) co_return fail(errc::protocol, "handshake: expected the client's proof");
  auto want = auth::proof(key, "client", bytes_of(nonce_c), nonce_s, peer->node(), me.node);
  if (!auth::equal(want, bytes_of(client_proof->msg.auth().mac()))) {
    auto err = error{errc::auth, "authentication failed: " + me.node +
                                     " refused the pre-shared key of " + peer->node()};
    const result<void> refused = std::unexpected(err);
    co_await ch.reply(0, refused);
    co_return std::unexpected(error{errc::auth, "authentication failed: " + peer->node() + " at " +
                                                    ch.remote() + " does not hold our pre-shared key"});
  }
  if (auto ok = co_await ch.reply(0, {}); !ok) co_return std::unexpected(ok.error().context("handshake"));
  auto keys = auth::derive_session_keys(key, bytes_of(nonce_c), nonce_s);
  ch.rekey(keys.server_to_client, keys.client_to_server);
  ch.peer = *peer;
  ch.limit_frames(0);
  co_return result<void>{};
}

awaitable<result<channel>> connect(const endpoint& to, const auth::psk& key, const identity& me,
                                   std::chrono::milliseconds connect_timeout,
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
  if (ec) co_return fail(errc::peer, "connect to " + to.to_string() + ": " + ec.message());
  channel ch(stream.release_socket(), io_timeout);
  if (auto ok = co_await handshake_client(ch, key, me); !ok) {
    ch.close();
    co_return std::unexpected(ok.error().context(to.to_string()));
  }
  co_return ch;
}

}  // namespace migrated::transport
