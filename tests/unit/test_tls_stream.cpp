// Unit tests for daemon/transport/tls_stream (through channel, as the
// daemon uses it) over real TLS on loopback TCP: frames of every size
// around the record and buffer boundaries cross both ways at once with a
// read and a write in flight on each side; a byte changed on the wire, a
// connection cut inside a record and one closed at a frame boundary each
// end the read with the right error; a silent peer and a peer that stops
// reading meet the deadline. A relay between the two ends changes or cuts
// the bytes. Every test runs its io_context for a bounded time.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/write.hpp>
#include <catch2/catch.hpp>

#include "fleet.hpp"
#include "transport/channel.hpp"
#include "transport/tls_stream.hpp"

using namespace migrated;
using namespace std::chrono_literals;
using transport::channel;
using tls_ptr = std::shared_ptr<transport::ssl::context>;

namespace {

using bytes = std::vector<std::uint8_t>;

constexpr std::chrono::milliseconds io_timeout = 10000ms;
constexpr std::chrono::milliseconds test_deadline = 30000ms;

void rethrow(std::exception_ptr e) {
  if (e) std::rethrow_exception(e);
}

bytes pattern(std::size_t n, std::uint32_t seed) {
  bytes b(n);
  std::uint32_t x = seed * 2654435761u + 1;
  for (auto& c : b) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    c = static_cast<std::uint8_t>(x);
  }
  return b;
}

pb::Envelope numbered(std::uint64_t id) {
  pb::Envelope env;
  env.set_request_id(id);
  env.mutable_status()->set_migration_id("frame-" + std::to_string(id));
  return env;
}

// Sizes on both sides of a TLS record (16 KiB) and of the bulk buffer.
const std::vector<std::size_t> sizes{0,      1,      7,      16383,  16384,   16385,  65536,
                                     262143, 262144, 262145, 1 << 20, 3 << 20, 100};

struct end_point {
  std::optional<channel> ch;
  std::optional<result<void>> secured;
};

awaitable<void> accept_and_secure(tcp::acceptor& acceptor, const tls_ptr& tls, end_point& out) {
  tcp::socket s = co_await acceptor.async_accept(use_awaitable);
  out.ch.emplace(std::move(s), tls, io_timeout);
  out.secured = co_await out.ch->secure(channel::side::server, io_timeout);
}

awaitable<void> connect_and_secure(const tcp::endpoint& to, const tls_ptr& tls, end_point& out) {
  tcp::socket s(co_await asio::this_coro::executor);
  co_await s.async_connect(to, use_awaitable);
  out.ch.emplace(std::move(s), tls, io_timeout);
  out.secured = co_await out.ch->secure(channel::side::client, io_timeout);
}

// Sends every size of `sizes` as frames numbered from `first`.
awaitable<void> send_all(channel& ch, std::uint64_t first, std::optional<result<void>>& out) {
  for (std::size_t i = 0; i < sizes.size(); ++i) {
    const bytes payload = pattern(sizes[i], std::uint32_t(first + i));
    const pb::Envelope env = numbered(first + i);
    auto sent = co_await ch.send(env, payload);
    if (!sent) {
      out = sent;
      co_return;
    }
  }
  out = result<void>{};
}

// Receives sizes.size() frames and checks each against what send_all sent.
awaitable<void> receive_all(channel& ch, std::uint64_t first, std::optional<result<void>>& out, int& verified) {
  for (std::size_t i = 0; i < sizes.size(); ++i) {
    auto f = co_await ch.recv();
    if (!f) {
      out = std::unexpected(f.error());
      co_return;
    }
    if (f->msg.request_id() != first + i || f->payload != pattern(sizes[i], std::uint32_t(first + i))) {
      out = fail(errc::protocol, "frame " + std::to_string(first + i) + " arrived changed");
      co_return;
    }
    ++verified;
  }
  out = result<void>{};
}

// A TCP relay for one connection: bytes from the client to the server pass
// unchanged up to `flip_at` (that byte is inverted) or `cut_at` (both
// connections are closed there); the other direction passes unchanged.
struct relay {
  std::size_t flip_at = SIZE_MAX;
  std::size_t cut_at = SIZE_MAX;
  std::size_t forwarded = 0;
  // Both pumps use them; they live as long as the test.
  std::optional<tcp::socket> client, server;
};

awaitable<void> pump(tcp::socket& from, tcp::socket& to, relay* r) {
  std::vector<std::uint8_t> buf(64 * 1024);
  boost::system::error_code ec;
  for (;;) {
    std::size_t n = co_await from.async_read_some(asio::buffer(buf), asio::redirect_error(use_awaitable, ec));
    if (ec) break;
    if (r) {
      if (r->flip_at >= r->forwarded && r->flip_at < r->forwarded + n) buf[r->flip_at - r->forwarded] ^= 0xff;
      if (r->cut_at < r->forwarded + n) n = r->cut_at - r->forwarded;
    }
    co_await asio::async_write(to, asio::buffer(buf.data(), n), asio::redirect_error(use_awaitable, ec));
    if (ec) break;
    if (r) {
      r->forwarded += n;
      if (r->forwarded >= r->cut_at) break;
    }
  }
  from.close(ec);
  to.close(ec);
}

awaitable<void> run_relay(tcp::acceptor& front, tcp::endpoint back, relay& r) {
  r.client.emplace(co_await front.async_accept(use_awaitable));
  r.server.emplace(co_await asio::this_coro::executor);
  co_await r.server->async_connect(back, use_awaitable);
  auto ex = co_await asio::this_coro::executor;
  asio::co_spawn(ex, pump(*r.server, *r.client, nullptr), rethrow);
  co_await pump(*r.client, *r.server, &r);
}

// One frame, its outcome kept.
awaitable<void> send_one(channel& ch, const pb::Envelope& env, const bytes& payload,
                         std::optional<result<void>>& out) {
  out = co_await ch.send(env, payload);
}

// One frame, then the connection closed without a word.
awaitable<void> send_then_close(channel& ch, const pb::Envelope& env, const bytes& payload,
                                std::optional<result<void>>& out) {
  out = co_await ch.send(env, payload);
  ch.close();
}

// The same frame again and again with a short deadline, until a send fails.
awaitable<void> send_until_refused(channel& ch, const pb::Envelope& env, const bytes& payload,
                                   std::optional<result<void>>& out) {
  for (int i = 0; i < 64; ++i) {
    out = co_await ch.send_within(300ms, env, payload);
    if (!*out) co_return;
  }
}

awaitable<void> recv_one(channel& ch, std::chrono::milliseconds timeout,
                         std::optional<result<transport::frame>>& out) {
  out = co_await ch.recv(timeout);
}

// One frame, then the connection closed (so the relay and the sender end).
awaitable<void> recv_then_close(channel& ch, std::optional<result<transport::frame>>& out) {
  out = co_await ch.recv();
  ch.close();
}

awaitable<void> recv_two(channel& ch, std::optional<result<transport::frame>>& first,
                         std::optional<result<transport::frame>>& second) {
  first = co_await ch.recv();
  second = co_await ch.recv();
}

struct loopback {
  asio::io_context io;
  tcp::acceptor server{io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)};
  tcp::acceptor front{io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)};
  const tls_ptr server_tls = testing::shared_fleet().tls("edge-a");
  const tls_ptr client_tls = testing::shared_fleet().tls("edge-b");
  end_point a, b;  // a: server, b: client

  // Connects b to a directly, or through `r`.
  tcp::endpoint dial_to;  // coroutines keep a reference to it

  void connect(relay* r = nullptr) {
    asio::co_spawn(io, accept_and_secure(server, server_tls, a), rethrow);
    if (r) asio::co_spawn(io, run_relay(front, server.local_endpoint(), *r), rethrow);
    dial_to = r ? front.local_endpoint() : server.local_endpoint();
    asio::co_spawn(io, connect_and_secure(dial_to, client_tls, b), rethrow);
    io.run_for(test_deadline);
    io.restart();
    REQUIRE(a.secured.has_value());
    REQUIRE(b.secured.has_value());
    INFO((*a.secured ? std::string("ok") : a.secured->error().message));
    REQUIRE(*a.secured);
    REQUIRE(*b.secured);
  }
  void run() {
    io.run_for(test_deadline);
    REQUIRE(io.stopped());
  }
};

}  // namespace

TEST_CASE("frames of every size cross both ways at once, a read and a write in flight on each side", "[tls]") {
  loopback net;
  net.connect();
  std::optional<result<void>> a_sent, b_sent, a_got, b_got;
  int a_verified = 0, b_verified = 0;
  asio::co_spawn(net.io, send_all(*net.a.ch, 1000, a_sent), rethrow);
  asio::co_spawn(net.io, receive_all(*net.a.ch, 2000, a_got, a_verified), rethrow);
  asio::co_spawn(net.io, send_all(*net.b.ch, 2000, b_sent), rethrow);
  asio::co_spawn(net.io, receive_all(*net.b.ch, 1000, b_got, b_verified), rethrow);
  net.run();
  for (auto* r : {&a_sent, &b_sent, &a_got, &b_got}) {
    REQUIRE(r->has_value());
    INFO((**r ? std::string("ok") : (*r)->error().message));
    REQUIRE(**r);
  }
  CHECK(a_verified == int(sizes.size()));
  CHECK(b_verified == int(sizes.size()));
}

TEST_CASE("a byte changed on the wire is refused as an authentication error, nothing of the frame delivered", "[tls]") {
  loopback net;
  relay r;
  r.flip_at = 300 * 1024;  // well past the handshake, inside the frame's records
  net.connect(&r);
  std::optional<result<void>> sent;
  std::optional<result<transport::frame>> got;
  const bytes payload = pattern(1 << 20, 7);
  const pb::Envelope env = numbered(1);
  asio::co_spawn(net.io, send_one(*net.b.ch, env, payload, sent), rethrow);
  asio::co_spawn(net.io, recv_then_close(*net.a.ch, got), rethrow);
  net.run();
  REQUIRE(r.forwarded > r.flip_at);
  REQUIRE(got.has_value());
  REQUIRE_FALSE(*got);
  INFO(got->error().message);
  CHECK(got->error().code == errc::auth);
  CHECK_THAT(got->error().message, Catch::Contains("TLS"));
}

TEST_CASE("a connection cut inside a frame is a truncated frame; closed between frames, the peer closed", "[tls]") {
  loopback net;
  relay r;
  SECTION("cut in the middle of a TLS record of a frame") {
    r.cut_at = 200 * 1024 + 123;
    net.connect(&r);
    std::optional<result<transport::frame>> got;
    std::optional<result<void>> sent;
    const bytes payload = pattern(1 << 20, 9);
    const pb::Envelope env = numbered(1);
    asio::co_spawn(net.io, send_one(*net.b.ch, env, payload, sent), rethrow);
    asio::co_spawn(net.io, recv_one(*net.a.ch, io_timeout, got), rethrow);
    net.run();
    REQUIRE(got.has_value());
    REQUIRE_FALSE(*got);
    INFO(got->error().message);
    CHECK(got->error().code == errc::protocol);
    CHECK_THAT(got->error().message, Catch::Contains("truncated frame"));
  }
  SECTION("closed after a whole frame") {
    net.connect();
    std::optional<result<transport::frame>> first, second;
    std::optional<result<void>> sent;
    const bytes payload = pattern(70000, 3);
    const pb::Envelope env = numbered(5);
    asio::co_spawn(net.io, send_then_close(*net.b.ch, env, payload, sent), rethrow);
    asio::co_spawn(net.io, recv_two(*net.a.ch, first, second), rethrow);
    net.run();
    REQUIRE(sent.has_value());
    REQUIRE(*sent);
    REQUIRE(first.has_value());
    REQUIRE(*first);
    CHECK((*first)->payload == payload);
    REQUIRE(second.has_value());
    REQUIRE_FALSE(*second);
    INFO(second->error().message);
    CHECK(second->error().code == errc::peer);
  }
}

TEST_CASE("a silent peer and a peer that stops reading meet the deadline", "[tls]") {
  loopback net;
  net.connect();
  const auto start = std::chrono::steady_clock::now();
  SECTION("nothing arrives") {
    std::optional<result<transport::frame>> got;
    asio::co_spawn(net.io, recv_one(*net.a.ch, 300ms, got), rethrow);
    net.run();
    REQUIRE(got.has_value());
    REQUIRE_FALSE(*got);
    CHECK(got->error().code == errc::timeout);
  }
  SECTION("nothing is read") {
    // edge-a never reads: the socket buffers fill and a send waits.
    std::optional<result<void>> sent;
    const bytes payload = pattern(wire::max_payload_bytes, 11);
    const pb::Envelope env = numbered(1);
    asio::co_spawn(net.io, send_until_refused(*net.b.ch, env, payload, sent), rethrow);
    net.run();
    REQUIRE(sent.has_value());
    REQUIRE_FALSE(*sent);
    INFO(sent->error().message);
    CHECK(sent->error().code == errc::timeout);
  }
  CHECK(std::chrono::steady_clock::now() - start < 20s);
}
