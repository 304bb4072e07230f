// Unit tests for daemon/transport/handshake over real TLS on loopback TCP,
// with certificates made by scripts/migrated-ca (fleet.hpp): two peers of a
// fleet learn who the other is from its certificate; a stranger's
// certificate, a server with another name or a controller's certificate, a
// Hello that disagrees with its certificate or speaks another protocol
// version, bytes that are not TLS, a silent or trickling client and an
// oversized frame before the Hello each end the handshake with the right
// error and never hang. Every test runs its io_context for a bounded time,
// so a hang fails instead of blocking the suite.
#include <algorithm>
#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <catch2/catch.hpp>

#include "common/auth.hpp"
#include "common/wire.hpp"
#include "fleet.hpp"
#include "transport/channel.hpp"
#include "transport/handshake.hpp"

using namespace migrated;
using namespace std::chrono_literals;
using transport::channel;
using transport::identity;
using tls_ptr = std::shared_ptr<transport::ssl::context>;

namespace {

using bytes = std::vector<std::uint8_t>;

constexpr std::chrono::milliseconds io_timeout = 2000ms;    // generous: loopback never needs it
constexpr std::chrono::milliseconds short_timeout = 200ms;  // for the silent-peer cases
constexpr std::chrono::milliseconds test_deadline = 5000ms; // a hang fails the test here

testing::fleet& fleet() { return testing::shared_fleet(); }

// An exception escaping a task is a bug: rethrown out of run_for, Catch2
// reports it as a failure of the test.
void rethrow(std::exception_ptr e) {
  if (e) std::rethrow_exception(e);
}

struct loopback {
  asio::io_context io;
  tcp::acceptor acceptor{io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)};

  tcp::endpoint endpoint() const { return acceptor.local_endpoint(); }

  // Runs every spawned task to completion; fails if they are still running
  // after `limit`.
  void run(std::chrono::milliseconds limit = test_deadline) {
    io.run_for(limit);
    REQUIRE(io.stopped());
  }
};

// What one side of a connection saw.
struct side {
  std::optional<result<void>> handshake;
  node_identity who;
  pb::Hello peer;
  std::string cipher;
  std::optional<result<transport::frame>> received;
  std::optional<result<void>> sent;
};

const result<void>& outcome(const side& s) {
  REQUIRE(s.handshake.has_value());
  return *s.handshake;
}

// The handshake on side `s` succeeded.
void require_ok(const side& s, const char* which) {
  const result<void>& r = outcome(s);
  INFO(which << ": " << (r ? std::string("ok") : r.error().message));
  REQUIRE(r);
}

// The handshake on side `s` failed: its error (named in the test's output).
const error& failure(const side& s) {
  const result<void>& r = outcome(s);
  REQUIRE_FALSE(r);
  UNSCOPED_INFO(r.error().message);
  return r.error();
}

// Side `s` received a Reply refusing it: that Reply.
const pb::Reply& refusal(const side& s) {
  REQUIRE(s.received.has_value());
  INFO((*s.received ? std::string() : s.received->error().message));
  REQUIRE(*s.received);
  const pb::Envelope& answer = (*s.received)->msg;
  REQUIRE(answer.has_reply());
  CHECK_FALSE(answer.reply().ok());
  return answer.reply();
}

pb::Envelope request_with_id(std::uint64_t id) {
  pb::Envelope env;
  env.set_request_id(id);
  env.mutable_status()->set_migration_id("after-handshake");
  return env;
}

pb::Envelope hello(std::uint32_t version, const std::string& node, pb::Role role) {
  pb::Envelope env;
  env.set_request_id(77);
  auto* h = env.mutable_hello();
  h->set_protocol_version(version);
  h->set_node(node);
  h->set_role(role);
  return env;
}

identity peer_identity(const std::string& name) { return identity{name, pb::ROLE_DAEMON, {}}; }

const bytes client_payload(1000, 0xc1);
const bytes server_payload(3000, 0x5e);

// Server: accept, handshake, then receive one frame and answer it with `answer_payload`.
awaitable<void> serve(tcp::acceptor& acceptor, const tls_ptr& tls, const identity& me,
                      std::chrono::milliseconds timeout, const bytes& answer_payload, side& out) {
  tcp::socket socket = co_await acceptor.async_accept(use_awaitable);
  channel ch(std::move(socket), tls, timeout);
  out.handshake = co_await transport::handshake_server(ch, me, timeout);
  if (!*out.handshake) co_return;
  out.who = ch.who;
  out.peer = ch.peer;
  out.cipher = ch.cipher();
  out.received = co_await ch.recv();
  const pb::Envelope answer = request_with_id(2);
  out.sent = co_await ch.send(answer, answer_payload);
}

// Server that only runs the handshake (nothing after it).
awaitable<void> serve_handshake_only(tcp::acceptor& acceptor, const tls_ptr& tls, const identity& me,
                                     std::chrono::milliseconds timeout, side& out) {
  tcp::socket socket = co_await acceptor.async_accept(use_awaitable);
  channel ch(std::move(socket), tls, timeout);
  out.handshake = co_await transport::handshake_server(ch, me, timeout);
  out.who = ch.who;
}

// Client: connect, handshake (expecting `expect`), then send one frame with
// `request_payload` and receive the answer.
awaitable<void> dial(const tcp::endpoint& to, const tls_ptr& tls, const identity& me, const std::string& expect,
                     std::chrono::milliseconds timeout, const bytes& request_payload, side& out) {
  tcp::socket socket(co_await asio::this_coro::executor);
  co_await socket.async_connect(to, use_awaitable);
  channel ch(std::move(socket), tls, timeout);
  out.handshake = co_await transport::handshake_client(ch, me, expect, timeout);
  if (!*out.handshake) co_return;
  out.who = ch.who;
  out.peer = ch.peer;
  out.cipher = ch.cipher();
  const pb::Envelope request = request_with_id(1);
  out.sent = co_await ch.send(request, request_payload);
  if (!*out.sent) co_return;
  out.received = co_await ch.recv();
}

// What a hand-made client does after its TLS handshake.
enum class after_tls { send_hello, send_frame_of, say_nothing };

// A client that completes TLS itself, then (send_hello) sends `env` and
// reports the answer, (send_frame_of) sends `env` with a payload of
// `frame_bytes` minus its header, or (say_nothing) waits to be hung up on.
awaitable<void> dial_by_hand(const tcp::endpoint& to, const tls_ptr& tls, after_tls what, const pb::Envelope& env,
                             std::size_t frame_bytes, side& out) {
  tcp::socket socket(co_await asio::this_coro::executor);
  co_await socket.async_connect(to, use_awaitable);
  channel ch(std::move(socket), tls, io_timeout);
  out.handshake = co_await ch.secure(channel::side::client, io_timeout);
  if (!*out.handshake) co_return;
  out.who = ch.who;
  if (what == after_tls::send_frame_of) {
    const bytes payload(frame_bytes - env.ByteSizeLong(), 0x42);
    out.sent = co_await ch.send(env, payload);
  } else if (what == after_tls::send_hello) {
    out.sent = co_await ch.send(env);
  }
  out.received = co_await ch.recv();
}

// What a hand-made server answers to the client's first frame.
enum class answer_with { hello_of_version, ok_reply };

// A server that completes TLS, reads one frame and answers it with a Hello
// of protocol `version` or a Reply{ok}, then waits for the client to hang up.
awaitable<void> serve_by_hand(tcp::acceptor& acceptor, const tls_ptr& tls, answer_with what, std::uint32_t version,
                              side& out) {
  tcp::socket socket = co_await acceptor.async_accept(use_awaitable);
  channel ch(std::move(socket), tls, io_timeout);
  out.handshake = co_await ch.secure(channel::side::server, io_timeout);
  if (!*out.handshake) co_return;
  out.received = co_await ch.recv();
  if (what == answer_with::hello_of_version) {
    const std::string name = "edge-a";
    const pb::Envelope mine = hello(version, name, pb::ROLE_DAEMON);
    out.sent = co_await ch.send(mine);
  } else {
    const result<void> ok{};
    out.sent = co_await ch.reply(0, ok);
  }
  auto ignored = co_await ch.recv();
  (void)ignored;
}

// Reads everything the server sent to a raw socket until it closed.
bytes drain(tcp::socket& s) {
  bytes all;
  boost::system::error_code ec;
  std::array<std::uint8_t, 4096> buf{};
  for (;;) {
    const std::size_t n = s.read_some(asio::buffer(buf), ec);
    all.insert(all.end(), buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(n));
    if (ec) break;
  }
  return all;
}

// Writes `data` one byte every `interval` until done or the peer is gone.
awaitable<void> trickle(tcp::socket& socket, const bytes& data, std::chrono::milliseconds interval) {
  asio::steady_timer timer(co_await asio::this_coro::executor);
  boost::system::error_code ec;
  for (std::size_t i = 0; i < data.size() && !ec; ++i) {
    timer.expires_after(interval);
    co_await timer.async_wait(asio::redirect_error(use_awaitable, ec));
    co_await asio::async_write(socket, asio::buffer(&data[i], 1), asio::redirect_error(use_awaitable, ec));
  }
}

// transport::connect, reporting whom it reached.
awaitable<void> connect_and_report(const endpoint& to, const tls_ptr& tls, const identity& me,
                                   const std::string& expect, std::optional<result<node_identity>>& got) {
  auto ch = co_await transport::connect(to, tls, me, expect, io_timeout, io_timeout);
  if (!ch) {
    got = std::unexpected(ch.error());
    co_return;
  }
  got = ch->who;
  ch->close();
}

// A TLS record header announcing a 512-byte handshake record, then its bytes.
bytes tls_record_start() {
  bytes out{0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03};
  out.resize(5 + 512, 0x11);
  return out;
}

}  // namespace

TEST_CASE("two peers of a fleet: TLS 1.3, both sides learn who the other is", "[handshake]") {
  side server;
  side client;
  loopback net;
  const tcp::endpoint to = net.endpoint();  // coroutines keep references
  const tls_ptr server_tls = fleet().tls("edge-a");
  const tls_ptr client_tls = fleet().tls("edge-b");
  const identity server_id = peer_identity("edge-a");
  const identity client_id = peer_identity("edge-b");
  std::string expect;
  SECTION("expecting the server by name") { expect = "edge-a"; }
  SECTION("expecting any peer") {}
  asio::co_spawn(net.io, serve(net.acceptor, server_tls, server_id, io_timeout, server_payload, server), rethrow);
  asio::co_spawn(net.io, dial(to, client_tls, client_id, expect, io_timeout, client_payload, client), rethrow);
  net.run();

  require_ok(server, "server");
  require_ok(client, "client");
  CHECK(server.who.name == "edge-b");
  CHECK(server.who.role == node_role::peer);
  CHECK(server.peer.node() == "edge-b");
  CHECK(server.peer.role() == pb::ROLE_DAEMON);
  CHECK(server.peer.protocol_version() == wire::protocol_version);
  CHECK(client.who.name == "edge-a");
  CHECK(client.who.role == node_role::peer);
  CHECK(client.peer.node() == "edge-a");
  CHECK(client.peer.protocol_version() == wire::protocol_version);
  CHECK(client.cipher == "TLS_AES_128_GCM_SHA256");
  CHECK(server.cipher == client.cipher);

  // A frame each way over TLS.
  REQUIRE(client.sent.has_value());
  REQUIRE(*client.sent);
  REQUIRE(server.received.has_value());
  REQUIRE(*server.received);
  CHECK((*server.received)->msg.request_id() == 1);
  CHECK((*server.received)->payload == client_payload);
  REQUIRE(server.sent.has_value());
  REQUIRE(*server.sent);
  REQUIRE(client.received.has_value());
  REQUIRE(*client.received);
  CHECK((*client.received)->msg.request_id() == 2);
  CHECK((*client.received)->payload == server_payload);
}

TEST_CASE("a controller's certificate makes the client a controller", "[handshake]") {
  side server;
  side client;
  loopback net;
  const tcp::endpoint to = net.endpoint();
  const tls_ptr server_tls = fleet().tls("edge-a");
  const tls_ptr client_tls = fleet().tls("ctl-1", node_role::controller);
  const identity server_id = peer_identity("edge-a");
  const identity client_id{"ctl-1", pb::ROLE_CONTROLLER, {}};
  const std::string expect = "edge-a";
  asio::co_spawn(net.io, serve(net.acceptor, server_tls, server_id, io_timeout, server_payload, server), rethrow);
  asio::co_spawn(net.io, dial(to, client_tls, client_id, expect, io_timeout, client_payload, client), rethrow);
  net.run();
  require_ok(server, "server");
  require_ok(client, "client");
  CHECK(server.who.name == "ctl-1");
  CHECK(server.who.role == node_role::controller);
  CHECK(server.peer.role() == pb::ROLE_CONTROLLER);
}

TEST_CASE("frames of the largest size round-trip over TLS after the handshake", "[handshake]") {
  side server;
  side client;
  loopback net;
  const tcp::endpoint to = net.endpoint();
  const tls_ptr server_tls = fleet().tls("edge-a");
  const tls_ptr client_tls = fleet().tls("edge-b");
  const identity server_id = peer_identity("edge-a");
  const identity client_id = peer_identity("edge-b");
  const std::string expect = "edge-a";
  bytes big(wire::max_payload_bytes);
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<std::uint8_t>(i * 131 + (i >> 13));
  bytes big_back = big;
  std::reverse(big_back.begin(), big_back.end());
  asio::co_spawn(net.io, serve(net.acceptor, server_tls, server_id, 30000ms, big_back, server), rethrow);
  asio::co_spawn(net.io, dial(to, client_tls, client_id, expect, 30000ms, big, client), rethrow);
  net.run(60000ms);
  require_ok(server, "server");
  require_ok(client, "client");
  REQUIRE(server.received.has_value());
  INFO((*server.received ? std::string() : server.received->error().message));
  REQUIRE(*server.received);
  CHECK((*server.received)->payload == big);
  REQUIRE(client.received.has_value());
  REQUIRE(*client.received);
  CHECK((*client.received)->payload == big_back);
}

TEST_CASE("a client of another fleet is refused on both sides as an authentication error", "[handshake]") {
  side server;
  side client;
  loopback net;
  const tcp::endpoint to = net.endpoint();
  const tls_ptr server_tls = fleet().tls("edge-a");
  const tls_ptr client_tls = testing::other_fleet().tls("edge-b");
  const identity server_id = peer_identity("edge-a");
  const identity client_id = peer_identity("edge-b");
  const std::string expect;
  asio::co_spawn(net.io, serve(net.acceptor, server_tls, server_id, io_timeout, server_payload, server), rethrow);
  asio::co_spawn(net.io, dial(to, client_tls, client_id, expect, io_timeout, client_payload, client), rethrow);
  net.run();

  const error& client_error = failure(client);
  CHECK(client_error.code == errc::auth);
  CHECK_THAT(client_error.message, Catch::Contains("authentication failed"));
  CHECK_FALSE(client.sent.has_value());
  const error& server_error = failure(server);
  CHECK(server_error.code == errc::auth);
  CHECK_FALSE(server.received.has_value());  // nothing read from a stranger
}

TEST_CASE("a client refuses a server its certificate does not make the one expected", "[handshake]") {
  side server;
  side client;
  loopback net;
  const tcp::endpoint to = net.endpoint();
  tls_ptr server_tls;
  std::string server_name = "edge-a";
  std::string expect;
  std::string words;
  SECTION("another node than the one expected") {
    server_tls = fleet().tls("edge-a");
    expect = "edge-c";
    words = "expected edge-c";
  }
  SECTION("a controller's certificate (as migrated-ca makes it: client use only)") {
    server_tls = fleet().tls("ctl-1", node_role::controller);
    server_name = "ctl-1";
  }
  SECTION("a controller's certificate that TLS accepts for a server") {
    auto files = fleet().issue_raw("/O=migrated/OU=controller/CN=ctl-9");
    auto creds = credentials::load(files);
    REQUIRE(creds);
    auto ctx = transport::make_tls_context(*creds);
    REQUIRE(ctx);
    server_tls = *ctx;
    server_name = "ctl-9";
    words = "a controller, not a peer daemon";
  }
  const tls_ptr client_tls = fleet().tls("edge-b");
  const identity server_id{server_name, pb::ROLE_DAEMON, {}};
  const identity client_id = peer_identity("edge-b");
  asio::co_spawn(net.io, serve(net.acceptor, server_tls, server_id, io_timeout, server_payload, server), rethrow);
  asio::co_spawn(net.io, dial(to, client_tls, client_id, expect, io_timeout, client_payload, client), rethrow);
  net.run();

  const error& client_error = failure(client);
  CHECK(client_error.code == errc::auth);
  if (!words.empty()) CHECK_THAT(client_error.message, Catch::Contains(words));
  CHECK_FALSE(client.sent.has_value());  // the client said nothing to it, not even its Hello
  // The server never got a Hello.
  CHECK_FALSE(outcome(server));
  CHECK_FALSE(server.received.has_value());
}

TEST_CASE("a Hello that disagrees with its certificate is refused and the client told why", "[handshake]") {
  side server;
  side client;
  loopback net;
  const tcp::endpoint to = net.endpoint();
  const tls_ptr server_tls = fleet().tls("edge-a");
  const tls_ptr client_tls = fleet().tls("edge-b");
  const identity server_id = peer_identity("edge-a");
  identity client_id;
  std::string words;
  SECTION("another node's name") {
    client_id = peer_identity("edge-z");
    words = "Hello says 'edge-z'";
  }
  SECTION("the controller role with a peer's certificate") {
    client_id = identity{"edge-b", pb::ROLE_CONTROLLER, {}};
    words = "its Hello claims controller";
  }
  const std::string expect = "edge-a";
  asio::co_spawn(net.io, serve(net.acceptor, server_tls, server_id, io_timeout, server_payload, server), rethrow);
  asio::co_spawn(net.io, dial(to, client_tls, client_id, expect, io_timeout, client_payload, client), rethrow);
  net.run();

  const error& server_error = failure(server);
  CHECK(server_error.code == errc::auth);
  CHECK_THAT(server_error.message, Catch::Contains(words));
  // The client saw the server's Reply: the same code and reason.
  const error& client_error = failure(client);
  CHECK(client_error.code == errc::auth);
  CHECK_THAT(client_error.message, Catch::Contains(words));
  CHECK_THAT(client_error.message, Catch::Contains("handshake with edge-a"));
}

TEST_CASE("a controller certificate claiming the daemon role in its Hello is refused", "[handshake]") {
  side server;
  side client;
  loopback net;
  const tcp::endpoint to = net.endpoint();
  const tls_ptr server_tls = fleet().tls("edge-a");
  const tls_ptr client_tls = fleet().tls("ctl-1", node_role::controller);
  const identity server_id = peer_identity("edge-a");
  const pb::Envelope claim = hello(wire::protocol_version, "ctl-1", pb::ROLE_DAEMON);
  asio::co_spawn(net.io, serve_handshake_only(net.acceptor, server_tls, server_id, io_timeout, server), rethrow);
  asio::co_spawn(net.io, dial_by_hand(to, client_tls, after_tls::send_hello, claim, 0, client), rethrow);
  net.run();

  const error& server_error = failure(server);
  CHECK(server_error.code == errc::auth);
  const pb::Reply& answer = refusal(client);
  CHECK(answer.code() == pb::AUTH);
  CHECK(answer.request_id() == 77);
  CHECK_THAT(answer.message(), Catch::Contains("makes it a controller"));
}

TEST_CASE("a Hello of another protocol version is refused with the reason", "[handshake]") {
  side server;
  side client;
  loopback net;
  const tcp::endpoint to = net.endpoint();
  const tls_ptr server_tls = fleet().tls("edge-a");
  const tls_ptr client_tls = fleet().tls("edge-b");
  const identity server_id = peer_identity("edge-a");
  const pb::Envelope old = hello(1, "edge-b", pb::ROLE_DAEMON);
  asio::co_spawn(net.io, serve_handshake_only(net.acceptor, server_tls, server_id, io_timeout, server), rethrow);
  asio::co_spawn(net.io, dial_by_hand(to, client_tls, after_tls::send_hello, old, 0, client), rethrow);
  net.run();

  const error& server_error = failure(server);
  CHECK(server_error.code == errc::unsupported);
  CHECK_THAT(server_error.message, Catch::Contains("version 1"));
  const pb::Reply& answer = refusal(client);
  CHECK(answer.code() == pb::UNSUPPORTED);
  CHECK_THAT(answer.message(), Catch::Contains("protocol version 1"));
}

TEST_CASE("a client refuses a server of another protocol version", "[handshake]") {
  side server;
  side client;
  loopback net;
  const tcp::endpoint to = net.endpoint();
  const tls_ptr server_tls = fleet().tls("edge-a");
  const tls_ptr client_tls = fleet().tls("edge-b");
  const identity client_id = peer_identity("edge-b");
  const std::string expect = "edge-a";
  asio::co_spawn(net.io, serve_by_hand(net.acceptor, server_tls, answer_with::hello_of_version, 99, server), rethrow);
  asio::co_spawn(net.io, dial(to, client_tls, client_id, expect, io_timeout, client_payload, client), rethrow);
  net.run();

  const error& client_error = failure(client);
  CHECK(client_error.code == errc::unsupported);
  CHECK_THAT(client_error.message, Catch::Contains("99"));
}

TEST_CASE("a Reply{ok} in place of the server's Hello is refused", "[handshake]") {
  side server;
  side client;
  loopback net;
  const tcp::endpoint to = net.endpoint();
  const tls_ptr server_tls = fleet().tls("edge-a");
  const tls_ptr client_tls = fleet().tls("edge-b");
  const identity client_id = peer_identity("edge-b");
  const std::string expect = "edge-a";
  asio::co_spawn(net.io, serve_by_hand(net.acceptor, server_tls, answer_with::ok_reply, 0, server), rethrow);
  asio::co_spawn(net.io, dial(to, client_tls, client_id, expect, io_timeout, client_payload, client), rethrow);
  net.run();

  const error& client_error = failure(client);
  CHECK(client_error.code == errc::protocol);
  CHECK_THAT(client_error.message, Catch::Contains("expected Hello"));
  CHECK_FALSE(client.sent.has_value());
}

TEST_CASE("before the Hello is accepted a frame may be at most 16 KiB", "[handshake]") {
  side server;
  side client;
  loopback net;
  const tcp::endpoint to = net.endpoint();
  const tls_ptr server_tls = fleet().tls("edge-a");
  const tls_ptr client_tls = fleet().tls("edge-b");
  const identity server_id = peer_identity("edge-a");
  const pb::Envelope mine = hello(wire::protocol_version, "edge-b", pb::ROLE_DAEMON);
  std::size_t frame_bytes = 0;
  bool accepted = false;
  SECTION("16 KiB exactly (header and payload)") {
    frame_bytes = 16 * 1024;
    accepted = true;
  }
  SECTION("one byte more") { frame_bytes = 16 * 1024 + 1; }
  SECTION("the protocol's largest payload") { frame_bytes = wire::max_payload_bytes; }
  asio::co_spawn(net.io, serve_handshake_only(net.acceptor, server_tls, server_id, io_timeout, server), rethrow);
  asio::co_spawn(net.io, dial_by_hand(to, client_tls, after_tls::send_frame_of, mine, frame_bytes, client), rethrow);
  net.run();

  if (accepted) {
    require_ok(server, "server");
    REQUIRE(client.received.has_value());
    REQUIRE(*client.received);
    CHECK((*client.received)->msg.has_hello());
  } else {
    const error& server_error = failure(server);
    CHECK(server_error.code == errc::protocol);
    CHECK_THAT(server_error.message, Catch::Contains("before the handshake completed"));
    CHECK_THAT(server_error.message, Catch::Contains(std::to_string(frame_bytes)));
    REQUIRE(client.received.has_value());
    CHECK_FALSE(*client.received);  // hung up on, not answered
  }
}

TEST_CASE("bytes that are not TLS end the handshake without a crash", "[handshake]") {
  side server;
  loopback net;
  const tls_ptr server_tls = fleet().tls("edge-a");
  const identity server_id = peer_identity("edge-a");
  bytes garbage;
  SECTION("an HTTP request") {
    const std::string text = "GET / HTTP/1.1\r\nHost: edge-a\r\n\r\n";
    garbage.assign(text.begin(), text.end());
  }
  SECTION("a frame of the protocol in the clear") {
    garbage = wire::encode(hello(wire::protocol_version, "edge-b", pb::ROLE_DAEMON), {});
  }
  SECTION("a TLS record holding a ClientHello that does not parse") {
    garbage = {0x16, 0x03, 0x01, 0x00, 0x40, 0x01, 0x00, 0x00, 0x3c};
    garbage.resize(5 + 0x40, 0xff);  // a session id of 255 bytes in a message of 60
  }
  asio::co_spawn(net.io, serve_handshake_only(net.acceptor, server_tls, server_id, io_timeout, server), rethrow);
  tcp::socket raw(net.io);
  raw.connect(net.endpoint());
  asio::write(raw, asio::buffer(garbage));
  net.run();

  const error& server_error = failure(server);
  CHECK((server_error.code == errc::auth || server_error.code == errc::protocol));
  CHECK(server_error.code != errc::timeout);  // refused, not waited out
  CHECK(server.who.name.empty());
  // What the server sent back (a TLS alert at most) holds no frame and no Hello.
  const bytes answer = drain(raw);
  CHECK(answer.size() < 64);
}

TEST_CASE("a client that says nothing times out within the handshake timeout", "[handshake]") {
  side server;
  side client;
  loopback net;
  const tls_ptr server_tls = fleet().tls("edge-a");
  const tls_ptr client_tls = fleet().tls("edge-b");
  const identity server_id = peer_identity("edge-a");
  const tcp::endpoint to = net.endpoint();
  const pb::Envelope none;
  asio::co_spawn(net.io, serve_handshake_only(net.acceptor, server_tls, server_id, short_timeout, server), rethrow);
  std::optional<tcp::socket> raw;
  SECTION("not a byte of TLS") {
    raw.emplace(net.io);
    raw->connect(net.endpoint());
  }
  SECTION("TLS, then no Hello") {
    asio::co_spawn(net.io, dial_by_hand(to, client_tls, after_tls::say_nothing, none, 0, client), rethrow);
  }
  net.run();
  const error& server_error = failure(server);
  CHECK(server_error.code == errc::timeout);
}

TEST_CASE("a client trickling TLS byte by byte still meets the deadline", "[handshake]") {
  // The deadline covers the whole TLS handshake, not each byte: a client
  // cannot keep the connection alive by sending one byte at a time (the
  // record below would take 20 s at this pace).
  side server;
  loopback net;
  const tls_ptr server_tls = fleet().tls("edge-a");
  const identity server_id = peer_identity("edge-a");
  asio::co_spawn(net.io, serve_handshake_only(net.acceptor, server_tls, server_id, short_timeout, server), rethrow);
  tcp::socket raw(net.io);
  raw.connect(net.endpoint());
  const bytes record = tls_record_start();
  asio::co_spawn(net.io, trickle(raw, record, 40ms), rethrow);
  net.run();
  const error& server_error = failure(server);
  CHECK(server_error.code == errc::timeout);
}

// Accepts one connection and waits for its ClientHello as the daemon does.
awaitable<void> accept_and_await_hello(tcp::acceptor& acceptor, std::chrono::milliseconds timeout,
                                       std::optional<result<void>>& out) {
  tcp::socket socket = co_await acceptor.async_accept(use_awaitable);
  out = co_await transport::await_client_hello(socket, timeout);
}

TEST_CASE("a client that stops halfway through its ClientHello: let go at once if it closed, else at the deadline",
          "[handshake]") {
  loopback net;
  std::optional<result<void>> waited;
  asio::co_spawn(net.io, accept_and_await_hello(net.acceptor, 2000ms, waited), rethrow);
  tcp::socket raw(net.io);
  raw.connect(net.endpoint());
  const bytes record = tls_record_start();
  asio::write(raw, asio::buffer(record.data(), record.size() / 2));
  bool closes = false;
  SECTION("and shuts down its side") {
    closes = true;
    raw.shutdown(tcp::socket::shutdown_send);
  }
  SECTION("and stays silent") {}
  const auto start = std::chrono::steady_clock::now();
  net.run();
  const auto took = std::chrono::steady_clock::now() - start;
  REQUIRE(waited.has_value());
  REQUIRE_FALSE(*waited);
  INFO(waited->error().message);
  if (closes) {
    CHECK(waited->error().code == errc::peer);
    CHECK(took < 1000ms);
  } else {
    CHECK(waited->error().code == errc::timeout);
    CHECK(took >= 1900ms);
  }
}

TEST_CASE("connect resolves, connects and authenticates the peer it expects", "[handshake]") {
  side server;
  loopback net;
  const tls_ptr server_tls = fleet().tls("edge-a");
  const tls_ptr client_tls = fleet().tls("edge-b");
  const identity server_id = peer_identity("edge-a");
  const identity client_id = peer_identity("edge-b");
  const endpoint to{"127.0.0.1", net.endpoint().port()};
  std::string expect;
  bool ok = true;
  SECTION("by its name") { expect = "edge-a"; }
  SECTION("any peer") {}
  SECTION("another name") {
    expect = "edge-q";
    ok = false;
  }
  std::optional<result<node_identity>> got;
  asio::co_spawn(net.io, serve_handshake_only(net.acceptor, server_tls, server_id, io_timeout, server), rethrow);
  asio::co_spawn(net.io, connect_and_report(to, client_tls, client_id, expect, got), rethrow);
  net.run();
  REQUIRE(got.has_value());
  if (ok) {
    INFO((*got ? std::string() : got->error().message));
    REQUIRE(*got);
    CHECK((*got)->name == "edge-a");
    require_ok(server, "server");
    CHECK(server.who.name == "edge-b");
  } else {
    REQUIRE_FALSE(*got);
    CHECK(got->error().code == errc::auth);
    CHECK_THAT(got->error().message, Catch::Contains("expected edge-q"));
    CHECK_THAT(got->error().message, Catch::Contains(to.to_string()));
  }
}

TEST_CASE("check_hello: shape, version, node and role against the certificate", "[handshake]") {
  const node_identity peer{"edge-b", node_role::peer};
  const node_identity ctl{"ctl-1", node_role::controller};
  CHECK(transport::check_hello(hello(wire::protocol_version, "edge-b", pb::ROLE_DAEMON), peer));
  CHECK(transport::check_hello(hello(wire::protocol_version, "ctl-1", pb::ROLE_CONTROLLER), ctl));
  auto code_of = [](const pb::Envelope& env, const node_identity& who) {
    auto r = transport::check_hello(env, who);
    REQUIRE_FALSE(r);
    return r.error().code;
  };
  CHECK(code_of(request_with_id(1), peer) == errc::protocol);
  CHECK(code_of(hello(wire::protocol_version + 1, "edge-b", pb::ROLE_DAEMON), peer) == errc::unsupported);
  CHECK(code_of(hello(wire::protocol_version, "edge-c", pb::ROLE_DAEMON), peer) == errc::auth);
  CHECK(code_of(hello(wire::protocol_version, "", pb::ROLE_DAEMON), peer) == errc::auth);
  CHECK(code_of(hello(wire::protocol_version, "edge-b", pb::ROLE_CONTROLLER), peer) == errc::auth);
  CHECK(code_of(hello(wire::protocol_version, "ctl-1", pb::ROLE_DAEMON), ctl) == errc::auth);
  CHECK(transport::protocol_role(node_role::peer) == pb::ROLE_DAEMON);
  CHECK(transport::protocol_role(node_role::controller) == pb::ROLE_CONTROLLER);
  // A claimed name is quoted only in part: a long one cannot flood a log.
  auto r = transport::check_hello(hello(wire::protocol_version, std::string(10000, 'x'), pb::ROLE_DAEMON), peer);
  REQUIRE_FALSE(r);
  CHECK(r.error().message.size() < 400);
}
