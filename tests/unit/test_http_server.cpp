// The read-only HTTP endpoint of server/http_server: each route's answer
// (the report JSON of a running migration and of one only the history on
// disk still holds, 404 for an unknown id or path, also of bytes that are
// not UTF-8, 405 for a write, 400 for a bad limit), then over a real
// loopback socket with a Beast client: two requests on one connection, an
// oversized header and a body refused with no answer, and a flood of idle
// connections held to http.connections while a new one is served once one
// of them leaves. Every test runs its io_context for a bounded time, so a
// hang fails instead of blocking.
#include <chrono>
#include <optional>
#include <string>

#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "server/http_server.hpp"
#include "temp_dir.hpp"

using namespace migrated;
using namespace migrated::migration;
using migrated::server::http_server;
using namespace std::chrono_literals;
using Catch::Matchers::Contains;

namespace {

namespace beast = boost::beast;
namespace http = beast::http;
using json = nlohmann::json;
using error_code = boost::system::error_code;

pb::Report report(const std::string& id, pb::Result result) {
  pb::Report r;
  r.set_id(id);
  r.set_container("web-1");
  r.set_source("edge-a");
  r.set_destination("edge-b");
  r.set_method(pb::PRECOPY);
  r.set_result(result);
  r.set_downtime_ms(result == pb::RESULT_RUNNING ? 0 : 321.5);
  return r;
}

// A node's registry (with a history in a temporary directory) and metrics.
struct node {
  testing::temp_dir dir;
  history past{dir.path / "history"};
  metrics counted{"9.9.9"};
  registry reg{"edge-a"};
  node() {
    REQUIRE(past.open());
    reg.keep_history(&past);
    reg.count_in(&counted);
  }
};

const tcp::endpoint loopback_any(asio::ip::make_address("127.0.0.1"), 0);

}  // namespace

TEST_CASE("http: what each route answers", "[http]") {
  asio::io_context io;
  node n;
  // Finished long ago: only the history on disk knows m-old (a daemon that
  // restarted), while m-run is running.
  REQUIRE(n.past.add(report("m-old", pb::RESULT_OK), 1'700'000'000'000));
  n.reg.add(report("m-run", pb::RESULT_RUNNING));
  http_server server("edge-a", n.reg, n.counted, tcp::acceptor(io, loopback_any), 4);

  auto a = server.answer("GET", "/healthz");
  CHECK(a.status == 200);
  CHECK(a.body == "ok\n");

  a = server.answer("GET", "/metrics");
  CHECK(a.status == 200);
  CHECK_THAT(a.content_type, Contains("version=0.0.4"));
  CHECK_THAT(a.body, Contains("migrated_migrations_in_progress 1"));
  CHECK_THAT(a.body, Contains("migrated_build_info{version=\"9.9.9\"} 1"));

  a = server.answer("GET", "/v1/migrations");
  REQUIRE(a.status == 200);
  CHECK(a.content_type == "application/json");
  auto j = json::parse(a.body);
  CHECK(j["node"] == "edge-a");
  REQUIRE(j["migrations"].size() == 2);
  CHECK(j["migrations"][0]["id"] == "m-run");  // running first
  CHECK(j["migrations"][0]["result"] == "running");
  CHECK(j["migrations"][1]["id"] == "m-old");
  CHECK(j["migrations"][1]["downtime_ms"] == 321.5);
  CHECK(j["migrations"][1]["method"] == "precopy");

  j = json::parse(server.answer("GET", "/v1/migrations?limit=1").body);
  CHECK(j["migrations"].size() == 1);

  a = server.answer("GET", "/v1/migrations/m-old");
  REQUIRE(a.status == 200);
  CHECK(json::parse(a.body)["container"] == "web-1");
  CHECK(json::parse(server.answer("GET", "/v1/migrations/m-run").body)["result"] == "running");

  // The running one finishes: its report is the finished one now.
  n.reg.finish(report("m-run", pb::RESULT_OK));
  CHECK(json::parse(server.answer("GET", "/v1/migrations/m-run").body)["result"] == "ok");
  CHECK_THAT(server.answer("GET", "/metrics").body, Contains("migrated_migrations_in_progress 0"));

  a = server.answer("GET", "/v1/migrations/m-none");
  CHECK(a.status == 404);
  CHECK_THAT(json::parse(a.body)["error"].get<std::string>(), Contains("no migration m-none on edge-a"));
  for (auto bad : {"/v1/migrations?limit=0", "/v1/migrations?limit=abc", "/v1/migrations?limit=1001"}) {
    a = server.answer("GET", bad);
    CHECK(a.status == 400);
    CHECK_THAT(json::parse(a.body)["error"].get<std::string>(), Contains("limit: expected an integer 1..1000"));
  }
  // Beast lets bytes past 0x7f into a target: they come back replaced, as JSON.
  a = server.answer("GET", "/v1/migrations/m-\xff\xfe");
  CHECK(a.status == 404);
  CHECK_THAT(json::parse(a.body)["error"].get<std::string>(), Contains("no migration m-\xef\xbf\xbd"));
  CHECK(json::parse(server.answer("GET", "/\xc3(").body)["error"].is_string());
  CHECK(server.answer("GET", "/").status == 404);
  CHECK(server.answer("GET", "/metricsx").status == 404);
  CHECK(server.answer("POST", "/v1/migrations").status == 405);
  CHECK(server.answer("DELETE", "/v1/migrations/m-old").status == 405);
}

namespace {

// One GET on `stream`; the status, or nothing when the server closed the
// connection instead of answering.
// (Views, not strings: g++ 12 frees non-trivial coroutine parameters twice.)
awaitable<std::optional<unsigned>> get(beast::tcp_stream& stream, std::string_view target,
                                       std::string_view extra_header = {}, std::string_view body = {}) {
  http::request<http::string_body> req{body.empty() ? http::verb::get : http::verb::post,
                                       beast::string_view(target.data(), target.size()), 11};
  req.set(http::field::host, "localhost");
  if (!extra_header.empty()) req.set("X-Padding", beast::string_view(extra_header.data(), extra_header.size()));
  req.body() = std::string(body);
  req.prepare_payload();
  req.keep_alive(true);
  error_code ec;
  stream.expires_after(3s);
  co_await http::async_write(stream, req, asio::redirect_error(use_awaitable, ec));
  if (ec) co_return std::nullopt;
  beast::flat_buffer buffer;
  http::response<http::string_body> res;
  co_await http::async_read(stream, buffer, res, asio::redirect_error(use_awaitable, ec));
  if (ec) co_return std::nullopt;
  co_return res.result_int();
}

awaitable<bool> connect(beast::tcp_stream& stream, const tcp::endpoint& at) {
  error_code ec;
  stream.expires_after(3s);
  co_await stream.async_connect(at, asio::redirect_error(use_awaitable, ec));
  co_return !ec;
}

// Whether the server closes `stream` without a word (within 3 s).
awaitable<bool> closed_by_server(beast::tcp_stream& stream) {
  char byte;
  error_code ec;
  stream.expires_after(3s);
  co_await stream.async_read_some(asio::buffer(&byte, 1), asio::redirect_error(use_awaitable, ec));
  co_return ec == asio::error::eof || ec == asio::error::connection_reset;
}

void run(asio::io_context& io, awaitable<void> test, http_server& server) {
  bool done = false;
  asio::co_spawn(io, server.run(), asio::detached);
  asio::co_spawn(io, std::move(test), [&](std::exception_ptr e) {
    done = true;
    server.stop();
    if (e) std::rethrow_exception(e);
  });
  io.run_for(20s);
  REQUIRE(done);
}

}  // namespace

TEST_CASE("http: over a socket, within its limits", "[http]") {
  asio::io_context io;
  node n;
  tcp::acceptor acceptor(io, loopback_any);
  const auto at = acceptor.local_endpoint();
  http_server server("edge-a", n.reg, n.counted, std::move(acceptor), 2);
  std::optional<unsigned> first, second, oversized, with_body, refused_ok, after;
  bool flood_closed = false;
  auto test = [&]() -> awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    {  // two requests, one connection
      beast::tcp_stream s(ex);
      { const bool connected = co_await connect(s, at); REQUIRE(connected); }
      first = co_await get(s, "/healthz");
      second = co_await get(s, "/v1/migrations");
    }
    {  // a header past 8 KiB: closed, no answer
      beast::tcp_stream s(ex);
      { const bool connected = co_await connect(s, at); REQUIRE(connected); }
      const std::string padding(9000, 'x');
      oversized = co_await get(s, "/healthz", padding);
    }
    {  // a request with a body: refused the same way
      beast::tcp_stream s(ex);
      { const bool connected = co_await connect(s, at); REQUIRE(connected); }
      with_body = co_await get(s, "/v1/migrations", {}, "{}");
    }
    // Two idle connections hold both places; a third is closed at once.
    beast::tcp_stream idle1(ex), idle2(ex), third(ex);
    { const bool connected = co_await connect(idle1, at); REQUIRE(connected); }
    { const bool connected = co_await connect(idle2, at); REQUIRE(connected); }
    asio::steady_timer pause(ex);
    pause.expires_after(100ms);
    co_await pause.async_wait(use_awaitable);
    { const bool connected = co_await connect(third, at); REQUIRE(connected); }
    flood_closed = co_await closed_by_server(third);
    // One idle connection goes; a new one is served.
    idle1.close();
    pause.expires_after(200ms);
    co_await pause.async_wait(use_awaitable);
    beast::tcp_stream fresh(ex);
    { const bool connected = co_await connect(fresh, at); REQUIRE(connected); }
    after = co_await get(fresh, "/metrics");
    // The one still idle has been waiting in silence all along.
    refused_ok = co_await get(idle2, "/healthz");
  };
  run(io, test(), server);
  CHECK(first == 200u);
  CHECK(second == 200u);
  CHECK_FALSE(oversized.has_value());
  CHECK_FALSE(with_body.has_value());
  CHECK(flood_closed);
  CHECK(after == 200u);
  CHECK(refused_ok == 200u);
}
