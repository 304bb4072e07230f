// Unit tests for where a page link meets its migration
// (migration/page_links.hpp), over real TLS connections with the daemons'
// handshake between two nodes of a fleet: a link nobody expects, or one
// from another peer than the migration's source, is refused with its
// reason; the expected one is lent to the session, which talks over it,
// and the connection's handler gets it back (closed) when the session lets
// go; a session waits for its link only until its deadline, and a
// migration expects one link at a time. A replaceable claim takes the next
// link for its migration: the old one is closed for whatever reads it, and
// goes back to its handler when the session drops it; a stopped claim
// refuses further links.
#include <catch2/catch.hpp>

#include <optional>
#include <string>

#include "fleet.hpp"
#include "migration/page_links.hpp"
#include "transport/handshake.hpp"

using namespace migrated;
using namespace std::chrono_literals;
using migration::page_links;
using transport::channel;

namespace {

constexpr std::chrono::milliseconds io_timeout = 5000ms;
const std::string migration_id = "m-1234abcd";

void rethrow(std::exception_ptr e) {
  if (e) std::rethrow_exception(e);
}

transport::identity daemon_named(const std::string& name) { return {name, pb::ROLE_DAEMON, {}}; }

// A connection between two daemons after their handshake: `handler` is
// edge-b's end (it accepted, as the destination's listener does), `opener`
// edge-a's (the source opening the link).
struct daemons_linked {
  asio::io_context io;
  std::optional<channel> handler, opener;
  std::optional<channel> handler2, opener2;  // again()

  daemons_linked() { link(handler, opener); }
  void again() { link(handler2, opener2); }

  void link(std::optional<channel>& h, std::optional<channel>& o) {
    tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    asio::co_spawn(io, accept(h, acceptor), rethrow);
    asio::co_spawn(io, connect(io, o, acceptor.local_endpoint()), rethrow);
    io.run_for(10s);
    REQUIRE(h);
    REQUIRE(o);
    REQUIRE(h->peer.node() == "edge-a");
    io.restart();
  }

  static awaitable<void> accept(std::optional<channel>& h, tcp::acceptor& acceptor) {
    tcp::socket s = co_await acceptor.async_accept(use_awaitable);
    channel ch(std::move(s), testing::shared_fleet().tls("edge-b"), io_timeout);
    auto ok = co_await transport::handshake_server(ch, daemon_named("edge-b"), io_timeout);
    REQUIRE(ok);
    h.emplace(std::move(ch));
  }
  static awaitable<void> connect(asio::io_context& io, std::optional<channel>& o, tcp::endpoint at) {
    tcp::socket s(io);
    co_await s.async_connect(at, use_awaitable);
    channel ch(std::move(s), testing::shared_fleet().tls("edge-a"), io_timeout);
    auto ok = co_await transport::handshake_client(ch, daemon_named("edge-a"), "edge-b", io_timeout);
    REQUIRE(ok);
    o.emplace(std::move(ch));
  }
};

// The opener's side: PageLinkOpen, then the Reply's outcome.
awaitable<void> open_link(channel& ch, std::optional<result<void>>& answer) {
  pb::Envelope env;
  env.set_request_id(7);
  env.mutable_page_link_open()->set_migration_id(migration_id);
  if (auto sent = co_await ch.send(env); !sent) {
    answer = sent;
    co_return;
  }
  auto r = co_await transport::expect_reply(ch, "page link", io_timeout);
  if (!r) answer = std::unexpected(r.error());
  else answer = transport::to_result(*r);
}

// The connection's handler: reads the first request, as the listener does, and hands the link over.
awaitable<void> arrive(page_links& links, channel& ch, bool& returned) {
  auto first = co_await ch.recv(io_timeout);
  REQUIRE(first.has_value());
  REQUIRE(first->msg.has_page_link_open());
  co_await links.arrive(ch, first->msg.request_id(), first->msg.page_link_open().migration_id());
  returned = true;
}

// Opens the link with nothing (or `expected_from`) expecting it; the answer.
result<void> refused_when(const std::optional<std::string>& expected_from) {
  daemons_linked d;
  page_links links;
  std::optional<page_links::expected> claim;
  if (expected_from) {
    auto c = links.expect(d.io.get_executor(), migration_id, *expected_from);
    REQUIRE(c);
    claim.emplace(std::move(*c));
  }
  std::optional<result<void>> answer;
  bool returned = false;
  asio::co_spawn(d.io, open_link(*d.opener, answer), rethrow);
  asio::co_spawn(d.io, arrive(links, *d.handler, returned), rethrow);
  d.io.run_for(10s);
  REQUIRE(returned);  // a refused link is not held
  REQUIRE(answer.has_value());
  return *answer;
}

}  // namespace

TEST_CASE("a page link nobody expects is refused", "[pages][link]") {
  auto answer = refused_when(std::nullopt);
  REQUIRE_FALSE(answer);
  CHECK(answer.error().code == errc::not_found);
  CHECK_THAT(answer.error().message, Catch::Contains("no migration " + migration_id));
}

TEST_CASE("a page link from another peer than the migration's source is refused", "[pages][link]") {
  auto answer = refused_when(std::string("edge-c"));
  REQUIRE_FALSE(answer);
  CHECK(answer.error().code == errc::denied);
  CHECK_THAT(answer.error().message, Catch::Contains("not from edge-a"));
}

TEST_CASE("the expected page link is lent to its session until it lets go", "[pages][link]") {
  daemons_linked d;
  page_links links;
  auto claim = links.expect(d.io.get_executor(), migration_id, "edge-a");
  REQUIRE(claim);
  CHECK(links.expect(d.io.get_executor(), migration_id, "edge-a").error().code == errc::already_exists);

  std::optional<result<void>> answer;
  bool returned = false;
  std::optional<result<transport::channel*>> arrived;
  std::optional<result<transport::frame>> read_there;
  auto session = [](page_links::expected& c, std::optional<result<transport::channel*>>& got,
                    std::optional<result<transport::frame>>& read) -> awaitable<void> {
    got = co_await c.arrival(io_timeout);
    if (!*got) co_return;
    read = co_await (**got)->recv(io_timeout);  // the opener's next frame comes to the session
  };
  auto opener = [](channel& ch, std::optional<result<void>>& answer) -> awaitable<void> {
    co_await open_link(ch, answer);
    if (!*answer) co_return;
    pb::Envelope get;
    get.set_request_id(8);
    get.mutable_page_get()->set_pages(1);
    co_await ch.send(get);
  };
  // (The lambdas outlive their coroutines: they live until the end of the test.)
  asio::co_spawn(d.io, session(*claim, arrived, read_there), rethrow);
  asio::co_spawn(d.io, opener(*d.opener, answer), rethrow);
  asio::co_spawn(d.io, arrive(links, *d.handler, returned), rethrow);
  d.io.run_for(3s);
  REQUIRE(answer.has_value());
  CHECK(answer->has_value());
  REQUIRE(arrived.has_value());
  REQUIRE(arrived->has_value());
  CHECK(**arrived == &*d.handler);
  REQUIRE(read_there.has_value());
  REQUIRE(read_there->has_value());
  INFO("message #" << (*read_there)->msg.body_case());
  CHECK((*read_there)->msg.has_page_get());
  CHECK_FALSE(returned);  // the handler waits while the session holds the link

  d.io.restart();
  claim->release();
  d.io.run_for(3s);
  CHECK(returned);
  CHECK_FALSE(d.handler->is_open());
  // Released: the migration may expect a link again.
  CHECK(links.expect(d.io.get_executor(), migration_id, "edge-a").has_value());
}

TEST_CASE("a session waits for its page link only until its deadline", "[pages][link]") {
  asio::io_context io;
  page_links links;
  auto claim = links.expect(io.get_executor(), migration_id, "edge-a");
  REQUIRE(claim);
  std::optional<result<transport::channel*>> arrived;
  auto wait = [](page_links::expected& c, std::optional<result<transport::channel*>>& got) -> awaitable<void> {
    got = co_await c.arrival(200ms);
  };
  asio::co_spawn(io, wait(*claim, arrived), rethrow);
  io.run_for(3s);
  REQUIRE(arrived.has_value());
  REQUIRE_FALSE(arrived->has_value());
  CHECK(arrived->error().code == errc::timeout);
  CHECK_THAT(arrived->error().message, Catch::Contains("did not open within 200 ms"));
}

TEST_CASE("a second link replaces a lost one for a claim that allows it", "[pages][link]") {
  daemons_linked d;
  d.again();
  page_links links;
  auto claim = links.expect(d.io.get_executor(), migration_id, "edge-a", true);
  REQUIRE(claim);
  std::optional<result<void>> answer1, answer2, answer3;
  bool returned1 = false, returned2 = false, returned3 = false;
  std::optional<result<transport::channel*>> first, second;
  auto session = [&]() -> awaitable<void> {
    first = co_await claim->arrival(io_timeout);
  };
  auto replace = [&]() -> awaitable<void> {
    co_await open_link(*d.opener2, answer2);
  };
  asio::co_spawn(d.io, session(), rethrow);
  asio::co_spawn(d.io, open_link(*d.opener, answer1), rethrow);
  asio::co_spawn(d.io, arrive(links, *d.handler, returned1), rethrow);
  d.io.run_for(2s);
  REQUIRE(first.has_value());
  REQUIRE(first->has_value());
  CHECK(**first == &*d.handler);

  // The source gave the first link up and opens another: the first is closed at once.
  d.io.restart();
  asio::co_spawn(d.io, replace(), rethrow);
  asio::co_spawn(d.io, arrive(links, *d.handler2, returned2), rethrow);
  d.io.run_for(2s);
  REQUIRE(answer2.has_value());
  CHECK(answer2->has_value());
  CHECK_FALSE(d.handler->is_open());
  CHECK_FALSE(returned1);  // the session still holds it: its reader may be on it

  d.io.restart();
  claim->drop_link();
  auto next = [&]() -> awaitable<void> { second = co_await claim->arrival(io_timeout); };
  asio::co_spawn(d.io, next(), rethrow);
  d.io.run_for(2s);
  CHECK(returned1);
  REQUIRE(second.has_value());
  REQUIRE(second->has_value());
  CHECK(**second == &*d.handler2);
  CHECK_FALSE(returned2);

  // Stopped: no further link is taken.
  d.io.restart();
  claim->stop();
  std::optional<channel> handler3, opener3;
  d.link(handler3, opener3);
  asio::co_spawn(d.io, open_link(*opener3, answer3), rethrow);
  asio::co_spawn(d.io, arrive(links, *handler3, returned3), rethrow);
  d.io.run_for(2s);
  REQUIRE(answer3.has_value());
  REQUIRE_FALSE(answer3->has_value());
  CHECK(answer3->error().code == errc::cancelled);
  CHECK(returned3);

  d.io.restart();
  claim->release();
  d.io.run_for(2s);
  CHECK(returned2);
}

TEST_CASE("a claim that does not allow it refuses a second link", "[pages][link]") {
  daemons_linked d;
  d.again();
  page_links links;
  auto claim = links.expect(d.io.get_executor(), migration_id, "edge-a");
  REQUIRE(claim);
  std::optional<result<void>> answer1, answer2;
  bool returned1 = false, returned2 = false;
  asio::co_spawn(d.io, open_link(*d.opener, answer1), rethrow);
  asio::co_spawn(d.io, arrive(links, *d.handler, returned1), rethrow);
  d.io.run_for(1s);
  d.io.restart();
  asio::co_spawn(d.io, open_link(*d.opener2, answer2), rethrow);
  asio::co_spawn(d.io, arrive(links, *d.handler2, returned2), rethrow);
  d.io.run_for(2s);
  REQUIRE(answer1.has_value());
  CHECK(answer1->has_value());
  REQUIRE(answer2.has_value());
  REQUIRE_FALSE(answer2->has_value());
  CHECK(answer2->error().code == errc::already_exists);
  CHECK(returned2);
  CHECK(d.handler->is_open());  // the first is untouched
  d.io.restart();
  claim->release();
  d.io.run_for(2s);
  CHECK(returned1);
}
