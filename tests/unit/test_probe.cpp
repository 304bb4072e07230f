// Unit tests for daemon/ready/probe: labels become probes (each form, the
// defaults, and every bad input named in the error); probes run against
// real loopback listeners and a small Beast HTTP server — a listener that
// appears late is waited for, a server answering 503 is retried until it
// answers 200, a closed port or a server stuck at 500 ends in errc::timeout
// naming the last failure — and against fake exec functions, including one
// that hangs past the deadline. Every test runs its io_context for a bounded
// time, so a hang fails instead of blocking the suite.
#include <algorithm>
#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <catch2/catch.hpp>

#include "ready/probe.hpp"

using namespace migrated;
using namespace std::chrono_literals;
using ready::probe;

namespace {

namespace beast = boost::beast;
namespace http = beast::http;
using labels = std::map<std::string, std::string>;
using steady = std::chrono::steady_clock;
using error_code = boost::system::error_code;

constexpr std::chrono::milliseconds test_deadline = 10000ms;  // a hang fails the test here

void rethrow(std::exception_ptr e) {
  if (e) std::rethrow_exception(e);
}

// What wait_ready returned, and after how long.
struct outcome {
  std::optional<result<double>> waited;
  std::chrono::milliseconds took{};
};

// Runs the probe; closes `server` afterwards (if given) so that its accept
// loop ends and the io_context runs out of work.
awaitable<void> run_probe(const probe& p, const ready::exec_fn& exec, outcome& out, tcp::acceptor* server) {
  const auto start = steady::now();
  out.waited = co_await ready::wait_ready(p, exec);
  out.took = std::chrono::duration_cast<std::chrono::milliseconds>(steady::now() - start);
  if (server) server->close();
}

outcome run(asio::io_context& io, const probe& p, const ready::exec_fn& exec = {}, tcp::acceptor* server = nullptr) {
  outcome out;
  asio::co_spawn(io, run_probe(p, exec, out, server), rethrow);
  io.run_for(test_deadline);
  REQUIRE(io.stopped());
  REQUIRE(out.waited.has_value());
  return out;
}

const tcp::endpoint loopback_any(asio::ip::make_address("127.0.0.1"), 0);

// A loopback port with nothing listening on it.
std::uint16_t closed_port() {
  asio::io_context io;
  tcp::acceptor a(io, loopback_any);
  return a.local_endpoint().port();
}

probe tcp_probe(std::uint16_t port, std::chrono::milliseconds timeout) {
  probe p;
  p.type = probe::kind::tcp;
  p.port = port;
  p.timeout = timeout;
  p.interval = 20ms;
  return p;
}

// Listens on `at` only after `delay`.
awaitable<void> listen_later(tcp::acceptor& acceptor, const tcp::endpoint& at, std::chrono::milliseconds delay) {
  asio::steady_timer timer(co_await asio::this_coro::executor);
  timer.expires_after(delay);
  co_await timer.async_wait(use_awaitable);
  acceptor.open(at.protocol());
  acceptor.set_option(tcp::acceptor::reuse_address(true));
  acceptor.bind(at);
  acceptor.listen();
}

// An HTTP server answering the i-th request with statuses[i] (the last one
// thereafter), until its acceptor is closed.
struct http_log {
  int requests = 0;
  std::string target;
  std::string host;
};

awaitable<void> serve_http(tcp::acceptor& acceptor, const std::vector<unsigned>& statuses, http_log& log) {
  for (;;) {
    error_code ec;
    tcp::socket socket = co_await acceptor.async_accept(asio::redirect_error(use_awaitable, ec));
    if (ec) co_return;
    beast::flat_buffer buffer;
    http::request<http::string_body> request;
    co_await http::async_read(socket, buffer, request, asio::redirect_error(use_awaitable, ec));
    if (ec) continue;
    const unsigned status = statuses[std::min<std::size_t>(log.requests, statuses.size() - 1)];
    ++log.requests;
    log.target = std::string(request.target());
    log.host = std::string(request[http::field::host]);
    http::response<http::string_body> response;
    response.result(status);
    response.version(11);
    response.keep_alive(false);
    response.body() = "status " + std::to_string(status) + "\n";
    response.prepare_payload();
    co_await http::async_write(socket, response, asio::redirect_error(use_awaitable, ec));
    socket.shutdown(tcp::socket::shutdown_both, ec);
  }
}

probe http_probe(std::uint16_t port, std::chrono::milliseconds timeout) {
  probe p = tcp_probe(port, timeout);
  p.type = probe::kind::http;
  p.path = "/health";
  return p;
}

// An exec function answering the i-th call with codes[i] (the last one thereafter).
struct fake_exec {
  std::vector<int> codes;
  int calls = 0;
  std::vector<std::string> argv;
};

ready::exec_fn exec_of(fake_exec& f) {
  return [&f](const std::vector<std::string>& argv) -> awaitable<result<int>> {
    f.argv = argv;
    const int code = f.codes[std::min<std::size_t>(f.calls, f.codes.size() - 1)];
    ++f.calls;
    co_return code;
  };
}

probe exec_probe(std::chrono::milliseconds timeout) {
  probe p;
  p.type = probe::kind::exec;
  p.command = {"sh", "-c", "test -f /ready"};
  p.timeout = timeout;
  p.interval = 20ms;
  return p;
}

}  // namespace

TEST_CASE("from_labels reads each probe form and keeps the defaults", "[probe]") {
  auto none = ready::from_labels(labels{{"com.example.tier", "web"}, {"migrated.readiness", "x"}});
  REQUIRE(none);
  CHECK(none->type == probe::kind::none);

  auto tcp_port = ready::from_labels(labels{{"migrated.ready.tcp", "8080"}});
  REQUIRE(tcp_port);
  CHECK(tcp_port->type == probe::kind::tcp);
  CHECK(tcp_port->host == "127.0.0.1");
  CHECK(tcp_port->port == 8080);
  CHECK(tcp_port->timeout == 30000ms);
  CHECK(tcp_port->interval == 100ms);
  CHECK(tcp_port->describe() == "tcp 127.0.0.1:8080");

  auto tcp_host = ready::from_labels(labels{{"migrated.ready.tcp", "10.0.0.5:9000"}});
  REQUIRE(tcp_host);
  CHECK(tcp_host->host == "10.0.0.5");
  CHECK(tcp_host->port == 9000);

  auto http_port = ready::from_labels(labels{{"migrated.ready.http", "8080"}});
  REQUIRE(http_port);
  CHECK(http_port->type == probe::kind::http);
  CHECK(http_port->path == "/");
  CHECK(http_port->describe() == "http GET 127.0.0.1:8080/");

  auto http_path = ready::from_labels(labels{{"migrated.ready.http", "localhost:8080/health?deep=1"},
                                             {"migrated.ready.timeout_ms", "5000"},
                                             {"migrated.ready.interval_ms", "250"}});
  REQUIRE(http_path);
  CHECK(http_path->host == "localhost");
  CHECK(http_path->port == 8080);
  CHECK(http_path->path == "/health?deep=1");
  CHECK(http_path->timeout == 5000ms);
  CHECK(http_path->interval == 250ms);

  auto http_v6 = ready::from_labels(labels{{"migrated.ready.http", "[::1]:80/x"}});
  REQUIRE(http_v6);
  CHECK(http_v6->host == "::1");
  CHECK(http_v6->describe() == "http GET [::1]:80/x");

  auto exec = ready::from_labels(labels{{"migrated.ready.exec", "test -f /ready"}});
  REQUIRE(exec);
  CHECK(exec->type == probe::kind::exec);
  CHECK(exec->command == std::vector<std::string>{"sh", "-c", "test -f /ready"});
  CHECK(exec->describe() == "exec sh -c 'test -f /ready'");
}

TEST_CASE("from_labels refuses bad labels, naming the label and its value", "[probe]") {
  struct bad_case {
    labels given;
    std::string named;  // must appear in the message
  };
  const std::vector<bad_case> cases{
      {{{"migrated.ready.tcp", "80"}, {"migrated.ready.http", "8080"}}, "label migrated.ready.tcp=\"80\""},
      {{{"migrated.ready.tcp", ""}}, "label migrated.ready.tcp=\"\""},
      {{{"migrated.ready.exec", "  "}}, "label migrated.ready.exec=\"  \""},
      {{{"migrated.ready.tcp", "0"}}, "label migrated.ready.tcp=\"0\""},
      {{{"migrated.ready.tcp", "65536"}}, "label migrated.ready.tcp=\"65536\""},
      {{{"migrated.ready.tcp", "host:70000"}}, "label migrated.ready.tcp=\"host:70000\""},
      {{{"migrated.ready.tcp", "80a"}}, "label migrated.ready.tcp=\"80a\""},
      {{{"migrated.ready.http", "web/health"}}, "label migrated.ready.http=\"web/health\""},
      {{{"migrated.ready.http", "8080/a b"}}, "label migrated.ready.http=\"8080/a b\""},
      {{{"migrated.ready.tcp", "80"}, {"migrated.ready.timeout_ms", "soon"}}, "label migrated.ready.timeout_ms=\"soon\""},
      {{{"migrated.ready.tcp", "80"}, {"migrated.ready.timeout_ms", "0"}}, "label migrated.ready.timeout_ms=\"0\""},
      {{{"migrated.ready.tcp", "80"}, {"migrated.ready.interval_ms", "-5"}}, "label migrated.ready.interval_ms=\"-5\""},
      {{{"migrated.ready.grpc", "50051"}}, "label migrated.ready.grpc=\"50051\""},
      {{{"migrated.ready.timeout_ms", "5000"}}, "label migrated.ready.timeout_ms=\"5000\""},
  };
  for (const auto& c : cases) {
    INFO("expecting: " << c.named);
    auto r = ready::from_labels(c.given);
    REQUIRE_FALSE(r);
    CHECK(r.error().code == errc::invalid_argument);
    CHECK_THAT(r.error().message, Catch::Contains(c.named));
  }
  auto both = ready::from_labels(labels{{"migrated.ready.tcp", "80"}, {"migrated.ready.http", "8080"}});
  REQUIRE_FALSE(both);
  CHECK_THAT(both.error().message, Catch::Contains("migrated.ready.http=\"8080\""));
}

TEST_CASE("kind::none is ready at once", "[probe]") {
  asio::io_context io;
  const probe p;
  auto out = run(io, p);
  REQUIRE(*out.waited);
  CHECK(**out.waited == 0.0);
}

TEST_CASE("a tcp probe succeeds against a listening port", "[probe]") {
  asio::io_context io;
  tcp::acceptor listening(io, loopback_any);
  const probe p = tcp_probe(listening.local_endpoint().port(), 2000ms);
  auto out = run(io, p);
  INFO((*out.waited ? "ok" : out.waited->error().message));
  REQUIRE(*out.waited);
  CHECK(**out.waited < 1000.0);
}

TEST_CASE("a tcp probe on a closed port times out with connection refused", "[probe]") {
  asio::io_context io;
  const std::uint16_t port = closed_port();
  const probe p = tcp_probe(port, 300ms);
  auto out = run(io, p);
  REQUIRE_FALSE(*out.waited);
  CHECK(out.waited->error().code == errc::timeout);
  CHECK(out.waited->error().message ==
        "tcp 127.0.0.1:" + std::to_string(port) + " did not answer within 300 ms: connection refused");
  CHECK(out.took >= 280ms);
  CHECK(out.took < 1500ms);
}

TEST_CASE("a tcp probe waits for a listener that appears late", "[probe]") {
  asio::io_context io;
  const tcp::endpoint at(asio::ip::make_address("127.0.0.1"), closed_port());
  tcp::acceptor late(io);
  asio::co_spawn(io, listen_later(late, at, 200ms), rethrow);
  const probe p = tcp_probe(at.port(), 3000ms);
  auto out = run(io, p, {}, &late);
  INFO((*out.waited ? "ok" : out.waited->error().message));
  REQUIRE(*out.waited);
  CHECK(**out.waited >= 150.0);
  CHECK(**out.waited < 2000.0);
}

TEST_CASE("an http probe retries through 503s until the service answers 200", "[probe]") {
  asio::io_context io;
  tcp::acceptor server(io, loopback_any);
  const std::vector<unsigned> statuses{503, 503, 200};
  http_log log;
  asio::co_spawn(io, serve_http(server, statuses, log), rethrow);
  const probe p = http_probe(server.local_endpoint().port(), 3000ms);
  auto out = run(io, p, {}, &server);
  INFO((*out.waited ? "ok" : out.waited->error().message));
  REQUIRE(*out.waited);
  CHECK(log.requests >= 3);
  CHECK(log.target == "/health");
  CHECK(log.host == "127.0.0.1:" + std::to_string(p.port));
}

TEST_CASE("an http probe against a service stuck at 500 times out naming HTTP 500", "[probe]") {
  asio::io_context io;
  tcp::acceptor server(io, loopback_any);
  const std::vector<unsigned> statuses{500};
  http_log log;
  asio::co_spawn(io, serve_http(server, statuses, log), rethrow);
  const probe p = http_probe(server.local_endpoint().port(), 300ms);
  auto out = run(io, p, {}, &server);
  REQUIRE_FALSE(*out.waited);
  CHECK(out.waited->error().code == errc::timeout);
  CHECK(out.waited->error().message == p.describe() + " did not answer within 300 ms: HTTP 500");
  CHECK(log.requests >= 2);
}

TEST_CASE("an exec probe retries until the command exits 0", "[probe]") {
  asio::io_context io;
  fake_exec fake{{1, 1, 0}};
  const probe p = exec_probe(3000ms);
  auto out = run(io, p, exec_of(fake));
  INFO((*out.waited ? "ok" : out.waited->error().message));
  REQUIRE(*out.waited);
  CHECK(fake.calls == 3);
  CHECK(fake.argv == p.command);
}

TEST_CASE("an exec probe that keeps failing times out naming the exit code", "[probe]") {
  asio::io_context io;
  fake_exec fake{{1}};
  const probe p = exec_probe(300ms);
  auto out = run(io, p, exec_of(fake));
  REQUIRE_FALSE(*out.waited);
  CHECK(out.waited->error().code == errc::timeout);
  CHECK(out.waited->error().message == "exec sh -c 'test -f /ready' did not answer within 300 ms: exit 1");
  CHECK(fake.calls >= 2);
}

TEST_CASE("an exec that hangs past the deadline does not hold the probe, nor run twice", "[probe]") {
  asio::io_context io;
  int calls = 0;
  const ready::exec_fn hang = [&calls](const std::vector<std::string>&) -> awaitable<result<int>> {
    ++calls;
    asio::steady_timer timer(co_await asio::this_coro::executor);
    timer.expires_after(1500ms);
    co_await timer.async_wait(use_awaitable);
    co_return 0;
  };
  const probe p = exec_probe(300ms);
  auto out = run(io, p, hang);
  REQUIRE_FALSE(*out.waited);
  CHECK(out.waited->error().code == errc::timeout);
  CHECK_THAT(out.waited->error().message, Catch::Contains("still running"));
  CHECK(out.took < 1000ms);
  CHECK(calls == 1);
}

TEST_CASE("an exec probe without an exec function is unsupported", "[probe]") {
  asio::io_context io;
  const probe p = exec_probe(300ms);
  auto out = run(io, p);
  REQUIRE_FALSE(*out.waited);
  CHECK(out.waited->error().code == errc::unsupported);
}
