// Unit tests for daemon/transport/handshake over real loopback TCP: two
// nodes with the same key agree on session keys in both directions; a wrong
// key, an unknown protocol version, bytes that are not a Hello and a silent
// peer each end the handshake with the right error and never hang; a
// server that answers out of turn is refused without a crash (that case
// runs in a child process, so a crash fails one test, not the run). Every
// test runs its io_context for a bounded time, so a hang fails instead of
// blocking the suite.
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <catch2/catch.hpp>

#include "common/auth.hpp"
#include "common/wire.hpp"
#include "transport/channel.hpp"
#include "transport/handshake.hpp"

using namespace migrated;
using namespace std::chrono_literals;
using transport::channel;
using transport::identity;

namespace {

using bytes = std::vector<std::uint8_t>;
using steady = std::chrono::steady_clock;

constexpr std::chrono::milliseconds io_timeout = 2000ms;   // generous: loopback never needs it
constexpr std::chrono::milliseconds short_timeout = 200ms; // for the silent-peer cases
constexpr std::chrono::milliseconds test_deadline = 5000ms; // a hang fails the test here

const auth::psk key_a{auth::bytes(32, 0xa1)};
const auth::psk key_b{auth::bytes(32, 0xb2)};

identity server_identity() { return identity{"node-a", pb::ROLE_DAEMON, {}}; }
identity client_identity() { return identity{"ctl-1", pb::ROLE_CONTROLLER, {}}; }

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
  pb::Hello peer;
  std::optional<result<transport::frame>> received;
  std::optional<result<void>> sent;
  steady::time_point finished{};
};

// The handshake on side `s` failed: its error (named in the test's output).
const error& failure(const side& s) {
  REQUIRE(s.handshake.has_value());
  REQUIRE_FALSE(*s.handshake);
  UNSCOPED_INFO(s.handshake->error().message);
  return s.handshake->error();
}

// Side `s` received a Reply refusing it: that Reply.
const pb::Reply& refusal(const side& s) {
  REQUIRE(s.received.has_value());
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

pb::Envelope hello(std::uint32_t version, const std::string& node, const bytes& nonce) {
  pb::Envelope env;
  auto* h = env.mutable_hello();
  h->set_protocol_version(version);
  h->set_node(node);
  h->set_role(pb::ROLE_DAEMON);
  h->set_nonce(nonce.data(), nonce.size());
  return env;
}

const bytes client_payload(1000, 0xc1);
const bytes server_payload(3000, 0x5e);

// Server: accept, handshake, then receive one frame and answer it.
awaitable<void> serve(tcp::acceptor& acceptor, const auth::psk& key, const identity& me,
                      std::chrono::milliseconds timeout, side& out) {
  tcp::socket socket = co_await acceptor.async_accept(use_awaitable);
  channel ch(std::move(socket), timeout);
  out.handshake = co_await transport::handshake_server(ch, key, me);
  out.finished = steady::now();
  if (!*out.handshake) co_return;
  out.peer = ch.peer;
  out.received = co_await ch.recv();
  const pb::Envelope answer = request_with_id(2);
  out.sent = co_await ch.send(answer, server_payload);
}

// Client: connect, handshake, then send one frame and receive the answer.
awaitable<void> dial(const tcp::endpoint& to, const auth::psk& key, const identity& me, side& out) {
  tcp::socket socket(co_await asio::this_coro::executor);
  co_await socket.async_connect(to, use_awaitable);
  channel ch(std::move(socket), io_timeout);
  out.handshake = co_await transport::handshake_client(ch, key, me);
  out.finished = steady::now();
  if (!*out.handshake) co_return;
  out.peer = ch.peer;
  const pb::Envelope request = request_with_id(1);
  out.sent = co_await ch.send(request, client_payload);
  if (!*out.sent) co_return;
  out.received = co_await ch.recv();
}

// Server that only runs the handshake (nothing after it).
awaitable<void> serve_handshake_only(tcp::acceptor& acceptor, const auth::psk& key,
                                     const identity& me, std::chrono::milliseconds timeout,
                                     side& out) {
  tcp::socket socket = co_await acceptor.async_accept(use_awaitable);
  channel ch(std::move(socket), timeout);
  out.handshake = co_await transport::handshake_server(ch, key, me);
  out.finished = steady::now();
}

// A client that does not check the server's proof and answers with a proof
// made from `key`: the server's refusal path, as an impostor would meet it.
awaitable<void> dial_skipping_server_proof(const tcp::endpoint& to, const auth::psk& key,
                                           const identity& me, side& out) {
  tcp::socket socket(co_await asio::this_coro::executor);
  co_await socket.async_connect(to, use_awaitable);
  channel ch(std::move(socket), io_timeout);
  const bytes nonce_c = auth::random_bytes(auth::nonce_bytes);
  const pb::Envelope mine = hello(wire::protocol_version, me.node, nonce_c);
  out.sent = co_await ch.send(mine);
  auto server_hello = co_await ch.recv();
  if (!server_hello || !server_hello->msg.has_hello()) {
    out.received = std::move(server_hello);
    co_return;
  }
  auto server_proof = co_await ch.recv();
  if (!server_proof) {
    out.received = std::move(server_proof);
    co_return;
  }
  const std::string& nonce_s = server_hello->msg.hello().nonce();
  const auto proof = auth::proof(key, "client", nonce_c, auth::as_bytes(nonce_s), me.node,
                                 server_hello->msg.hello().node());
  pb::Envelope env;
  env.mutable_auth()->set_mac(proof.data(), proof.size());
  out.sent = co_await ch.send(env);
  out.received = co_await ch.recv();
}

// A client that announces protocol `version` and reports what it gets back.
awaitable<void> dial_with_version(const tcp::endpoint& to, std::uint32_t version, side& out) {
  tcp::socket socket(co_await asio::this_coro::executor);
  co_await socket.async_connect(to, use_awaitable);
  channel ch(std::move(socket), io_timeout);
  const bytes nonce = auth::random_bytes(auth::nonce_bytes);
  const pb::Envelope mine = hello(version, "ctl-1", nonce);
  out.sent = co_await ch.send(mine);
  out.received = co_await ch.recv();
}

// A server that answers any Hello with a Hello of protocol `version`.
awaitable<void> serve_with_version(tcp::acceptor& acceptor, std::uint32_t version, side& out) {
  tcp::socket socket = co_await acceptor.async_accept(use_awaitable);
  channel ch(std::move(socket), io_timeout);
  out.received = co_await ch.recv();
  const bytes nonce = auth::random_bytes(auth::nonce_bytes);
  const pb::Envelope mine = hello(version, "node-a", nonce);
  out.sent = co_await ch.send(mine);
  // Stay until the client hangs up, so its error is its own verdict.
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

// A server that answers the client's Hello with Reply{ok: true} instead of
// its own Hello: a handshake cannot succeed on that, and must say so.
awaitable<void> serve_early_ok_reply(tcp::acceptor& acceptor, side& out) {
  tcp::socket socket = co_await acceptor.async_accept(use_awaitable);
  channel ch(std::move(socket), io_timeout);
  out.received = co_await ch.recv();
  const result<void> ok{};
  const std::string no_migration;
  out.sent = co_await ch.reply(0, ok, no_migration);
  auto ignored = co_await ch.recv();
  (void)ignored;
}

// Writes `data` one byte every `interval` until done or the peer is gone.
awaitable<void> trickle(tcp::socket& socket, const bytes& data, std::chrono::milliseconds interval) {
  asio::steady_timer timer(co_await asio::this_coro::executor);
  boost::system::error_code ec;
  for (std::size_t i = 0; i < data.size() && !ec; ++i) {
    timer.expires_after(interval);
    co_await timer.async_wait(asio::redirect_error(use_awaitable, ec));
    co_await asio::async_write(socket, asio::buffer(&data[i], 1),
                               asio::redirect_error(use_awaitable, ec));
  }
}

// Runs `scenario` in a child process, so that a crash (or a sanitizer
// abort) fails one test instead of ending the whole run. The child's exit
// code is the scenario's verdict; its stderr is discarded.
struct child_outcome {
  bool exited = false;
  int code = -1;
  int signal = 0;
};

child_outcome in_child(int (*scenario)()) {
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    const int devnull = ::open("/dev/null", O_WRONLY);
    if (devnull >= 0) ::dup2(devnull, STDERR_FILENO);
    ::alarm(30);  // a child that hangs is killed rather than blocking the run
    int code = 100;
    try {
      code = scenario();
    } catch (...) {
      code = 101;
    }
    ::_exit(code);
  }
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  child_outcome out;
  out.exited = WIFEXITED(status);
  if (out.exited) out.code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) out.signal = WTERMSIG(status);
  return out;
}

// Verdicts of a scenario run in a child. A sanitizer that aborts the child
// exits with 1, hence codes of their own here.
constexpr int verdict_refused = 0;         // failed with errc::protocol or errc::peer
constexpr int verdict_succeeded = 10;      // the handshake went through
constexpr int verdict_wrong_code = 11;     // failed, with another code
constexpr int verdict_no_outcome = 12;     // never finished

std::string describe(const child_outcome& c) {
  if (!c.exited) return "killed by signal " + std::to_string(c.signal);
  switch (c.code) {
    case verdict_refused: return "refused the handshake";
    case verdict_succeeded: return "the handshake succeeded";
    case verdict_wrong_code: return "failed with a code other than protocol or peer";
    case verdict_no_outcome: return "the handshake never finished";
    case 1: return "aborted (exit code 1, as a sanitizer does)";
    default: return "exit code " + std::to_string(c.code);
  }
}

int early_ok_reply_scenario() {
  side server;
  side client;
  loopback net;
  const tcp::endpoint to = net.endpoint();
  const identity client_id = client_identity();
  asio::co_spawn(net.io, serve_early_ok_reply(net.acceptor, server), rethrow);
  asio::co_spawn(net.io, dial(to, key_a, client_id, client), rethrow);
  net.io.run_for(test_deadline);
  if (!client.handshake.has_value()) return verdict_no_outcome;
  if (*client.handshake) return verdict_succeeded;
  const errc code = client.handshake->error().code;
  return code == errc::protocol || code == errc::peer ? verdict_refused : verdict_wrong_code;
}

}  // namespace

TEST_CASE("handshake with the same key: both sides learn each other and keys agree",
          "[handshake]") {
  side server;
  side client;
  loopback net;
  const tcp::endpoint to = net.endpoint();  // coroutines keep references
  const identity server_id = server_identity();
  const identity client_id = client_identity();
  asio::co_spawn(net.io, serve(net.acceptor, key_a, server_id, io_timeout, server), rethrow);
  asio::co_spawn(net.io, dial(to, key_a, client_id, client), rethrow);
  net.run();

  REQUIRE(server.handshake.has_value());
  REQUIRE(client.handshake.has_value());
  INFO("server: " << (*server.handshake ? "ok" : server.handshake->error().message));
  INFO("client: " << (*client.handshake ? "ok" : client.handshake->error().message));
  REQUIRE(*server.handshake);
  REQUIRE(*client.handshake);

  CHECK(server.peer.node() == "ctl-1");
  CHECK(server.peer.role() == pb::ROLE_CONTROLLER);
  CHECK(server.peer.protocol_version() == wire::protocol_version);
  CHECK(client.peer.node() == "node-a");
  CHECK(client.peer.role() == pb::ROLE_DAEMON);
  CHECK(client.peer.protocol_version() == wire::protocol_version);
  CHECK(client.peer.nonce() != server.peer.nonce());

  // A frame each way under the session keys.
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

TEST_CASE("handshake with the wrong key fails on both sides as an authentication error",
          "[handshake]") {
  side server;
  side client;
  loopback net;
  const tcp::endpoint to = net.endpoint();  // coroutines keep references
  const identity server_id = server_identity();
  const identity client_id = client_identity();
  asio::co_spawn(net.io, serve(net.acceptor, key_a, server_id, io_timeout, server), rethrow);
  asio::co_spawn(net.io, dial(to, key_b, client_id, client), rethrow);
  net.run();

  const error& client_error = failure(client);
  CHECK(client_error.code == errc::auth);
  CHECK_THAT(client_error.message, Catch::Contains("node-a"));
  CHECK_THAT(client_error.message,
             Catch::Contains("does not hold our pre-shared key"));
  CHECK_FALSE(client.sent.has_value());  // nothing was sent under a key never agreed

  // The server proves first, so the client finds the mismatch; the server's
  // operator must still see an authentication failure, not a dropped link.
  const error& server_error = failure(server);
  CHECK(server_error.code == errc::auth);
  CHECK_THAT(server_error.message, Catch::Contains("ctl-1"));
  CHECK_FALSE(server.received.has_value());
}

TEST_CASE("a client proof under another key is refused and the client told why",
          "[handshake]") {
  side server;
  side client;
  loopback net;
  const tcp::endpoint to = net.endpoint();  // coroutines keep references
  const identity server_id = server_identity();
  const identity client_id = client_identity();
  asio::co_spawn(net.io, serve_handshake_only(net.acceptor, key_a, server_id, io_timeout, server),
                 rethrow);
  asio::co_spawn(net.io, dial_skipping_server_proof(to, key_b, client_id, client),
                 rethrow);
  net.run();

  const error& server_error = failure(server);
  CHECK(server_error.code == errc::auth);
  CHECK_THAT(server_error.message, Catch::Contains("ctl-1"));
  CHECK_THAT(server_error.message,
             Catch::Contains("does not hold our pre-shared key"));

  const pb::Reply& verdict = refusal(client);
  CHECK(verdict.code() == pb::AUTH);
  CHECK_THAT(verdict.message(), Catch::Contains("refused the pre-shared key of ctl-1"));
}

TEST_CASE("a Hello of another protocol version is refused with the reason", "[handshake]") {
  side server;
  side client;
  loopback net;
  const tcp::endpoint to = net.endpoint();  // coroutines keep references
  const identity server_id = server_identity();
  asio::co_spawn(net.io, serve_handshake_only(net.acceptor, key_a, server_id, io_timeout, server),
                 rethrow);
  asio::co_spawn(net.io, dial_with_version(to, 99, client), rethrow);
  net.run();

  const error& server_error = failure(server);
  CHECK(server_error.code == errc::unsupported);
  CHECK_THAT(server_error.message, Catch::Contains("99"));

  const pb::Reply& answer = refusal(client);
  CHECK(answer.code() == pb::UNSUPPORTED);
  CHECK_THAT(answer.message(), Catch::Contains("protocol version 99"));
}

TEST_CASE("a client refuses a server of another protocol version", "[handshake]") {
  side server;
  side client;
  loopback net;
  const tcp::endpoint to = net.endpoint();  // coroutines keep references
  const identity client_id = client_identity();
  asio::co_spawn(net.io, serve_with_version(net.acceptor, 99, server), rethrow);
  asio::co_spawn(net.io, dial(to, key_a, client_id, client), rethrow);
  net.run();

  const error& client_error = failure(client);
  CHECK(client_error.code == errc::unsupported);
  CHECK_THAT(client_error.message, Catch::Contains("99"));
}

TEST_CASE("bytes that are not a Hello end the handshake without a crash", "[handshake]") {
  side server;
  loopback net;
  const identity server_id = server_identity();
  bytes garbage;
  errc expected = errc::protocol;
  bool told_why = false;
  std::string expected_words;

  SECTION("text whose first bytes announce an oversized frame") {
    const std::string text = "GET / HTTP/1.1\r\nHost: node-a\r\n\r\n";
    garbage.assign(text.begin(), text.end());
  }
  SECTION("a plausible prefix followed by random bytes (bad tag)") {
    garbage = auth::random_bytes(10 + 20 + wire::tag_bytes);
    const auto pre = wire::encode_prefix({10, 20});
    garbage.insert(garbage.begin(), pre.begin(), pre.end());
    expected = errc::auth;
  }
  SECTION("a prefix announcing a frame of 4 MiB before authentication") {
    // Within the protocol's maxima, but nobody has proven a key yet: refused
    // before the daemon allocates anything for it.
    const auto pre = wire::encode_prefix({1024, 4u << 20});
    garbage.assign(pre.begin(), pre.end());
    garbage.resize(garbage.size() + 64, 0);
    expected_words = "before authentication";
  }
  SECTION("a correctly sealed frame whose header is not a message") {
    wire::sealer s;
    const bytes header{0x00, 0x01, 0x02};
    const wire::prefix p{static_cast<std::uint32_t>(header.size()), 0};
    const auto tag = s.seal(p, header, {});
    const auto pre = wire::encode_prefix(p);
    garbage.assign(pre.begin(), pre.end());
    garbage.insert(garbage.end(), header.begin(), header.end());
    garbage.insert(garbage.end(), tag.begin(), tag.end());
  }
  SECTION("a correctly sealed frame carrying another message than Hello") {
    wire::sealer s;
    garbage = wire::encode(s, request_with_id(5), {});
    told_why = true;
  }

  asio::co_spawn(net.io, serve_handshake_only(net.acceptor, key_a, server_id, io_timeout, server),
                 rethrow);
  tcp::socket raw(net.io);
  raw.connect(net.endpoint());
  asio::write(raw, asio::buffer(garbage));
  const auto start = steady::now();
  net.run();

  const error& server_error = failure(server);
  CHECK(server_error.code == expected);
  if (!expected_words.empty()) CHECK_THAT(server_error.message, Catch::Contains(expected_words));
  CHECK(server.finished - start < io_timeout / 2);  // refused at once, not by a timeout

  if (told_why) {
    // The server answered with a Reply sealed under the public key, then closed.
    const bytes answer = drain(raw);
    wire::sealer s;
    auto frame = wire::decode(s, answer);
    REQUIRE(frame);
    pb::Envelope env;
    REQUIRE(wire::parse_envelope(frame->header_bytes, env));
    REQUIRE(env.has_reply());
    CHECK_FALSE(env.reply().ok());
    CHECK(env.reply().code() == pb::PROTOCOL);
    CHECK(env.reply().request_id() == 5);
    CHECK_THAT(env.reply().message(), Catch::Contains("expected Hello"));
  }
}

TEST_CASE("a peer that says nothing times out within the io timeout", "[handshake]") {
  side server;
  loopback net;
  const identity server_id = server_identity();
  asio::co_spawn(net.io,
                 serve_handshake_only(net.acceptor, key_a, server_id, short_timeout, server),
                 rethrow);
  tcp::socket raw(net.io);
  raw.connect(net.endpoint());

  SECTION("not a byte") {}
  SECTION("half a frame, then silence") {
    wire::sealer s;
    const bytes nonce(auth::nonce_bytes, 1);
    const bytes frame = wire::encode(s, hello(wire::protocol_version, "ctl-1", nonce), {});
    asio::write(raw, asio::buffer(frame.data(), frame.size() / 2));
  }

  const auto start = steady::now();
  net.run();
  const error& server_error = failure(server);
  CHECK(server_error.code == errc::timeout);
  const auto waited = server.finished - start;
  CHECK(waited >= short_timeout - 20ms);
  CHECK(waited < short_timeout * 5);
}

TEST_CASE("a server's refusal of the client's Hello reaches the client", "[handshake]") {
  side server;
  side client;
  loopback net;
  const tcp::endpoint to = net.endpoint();
  const identity server_id = server_identity();
  const identity nameless{"", pb::ROLE_CONTROLLER, {}};
  asio::co_spawn(net.io, serve_handshake_only(net.acceptor, key_a, server_id, io_timeout, server),
                 rethrow);
  asio::co_spawn(net.io, dial(to, key_a, nameless, client), rethrow);
  net.run();

  const error& server_error = failure(server);
  CHECK(server_error.code == errc::protocol);
  const error& client_error = failure(client);
  CHECK(client_error.code == errc::protocol);
  CHECK_THAT(client_error.message, Catch::Contains("bad node name"));
}

// Any server can send this before it has authenticated; a client that
// took the Reply for a refusal without looking at `ok` would read the error
// of a successful result (undefined behaviour), hence the child process.
TEST_CASE("a Reply{ok} in place of the server's Hello is refused without a crash",
          "[handshake]") {
  const child_outcome child = in_child(early_ok_reply_scenario);
  INFO("the client " << describe(child));
  REQUIRE(child.exited);
  CHECK(child.code == verdict_refused);
}

TEST_CASE("a peer trickling a Hello byte by byte still meets the deadline", "[handshake]") {
  // The deadline covers a whole read, not each byte: a peer cannot keep the
  // handshake alive by sending one byte at a time.
  side server;
  loopback net;
  const identity server_id = server_identity();
  asio::co_spawn(net.io,
                 serve_handshake_only(net.acceptor, key_a, server_id, short_timeout, server),
                 rethrow);
  tcp::socket raw(net.io);
  raw.connect(net.endpoint());
  wire::sealer s;
  const bytes nonce(auth::nonce_bytes, 1);
  const bytes frame = wire::encode(s, hello(wire::protocol_version, "ctl-1", nonce), {});
  asio::co_spawn(net.io, trickle(raw, frame, 40ms), rethrow);

  const auto start = steady::now();
  net.run();
  const error& server_error = failure(server);
  CHECK(server_error.code == errc::timeout);
  CHECK(server.finished - start < short_timeout * 3);
}
