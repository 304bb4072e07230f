// Unit tests for daemon/docker/engine against a scripted fake engine: a
// unix-socket acceptor on a thread that reads each request with Beast,
// records it and answers as the test says. JSON calls round-trip; 404, 409
// and plain-text answers map as documented; a missing socket is
// "unreachable" and a silent engine a timeout; 3 MiB downloads arrive
// byte-identical in pieces of at most 1 MiB with either framing, and a sink
// can stop them; chunked uploads arrive byte-identical and /images/load's
// answer stream becomes an array or, carrying "error", an error. If a real
// engine listens at /var/run/dx-a.sock, it answers too.
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <boost/asio/buffer.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <catch2/catch.hpp>

#include "temp_dir.hpp"

#include "docker/engine.hpp"

using namespace migrated;
using namespace std::chrono_literals;
using docker::engine;
using docker::json;
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using local = asio::local::stream_protocol;

namespace {

using bytes = std::vector<std::uint8_t>;
using testing::temp_dir;

constexpr std::size_t mib = 1 << 20;

bytes noise(std::size_t n, std::uint32_t seed) {
  std::mt19937 gen(seed);
  bytes out(n);
  for (auto& b : out) b = static_cast<std::uint8_t>(gen());
  return out;
}

struct received {
  http::verb method{};
  std::string target;
  std::string content_type;
  bool chunked = false;
  std::string body;
};

// A scripted engine: serve() takes one handler per connection, in order.
// Each handler answers on the socket; read_request() records what came.
class fake_engine {
 public:
  using handler = std::function<void(local::socket&)>;

  explicit fake_engine(const temp_dir& dir) : path_(dir.path / "docker.sock"), acceptor_(io_, path_.string()) {}
  ~fake_engine() {
    ::shutdown(acceptor_.native_handle(), SHUT_RDWR);  // wakes a blocked accept
    if (thread_.joinable()) thread_.join();
  }

  const std::filesystem::path& path() const { return path_; }

  void serve(std::vector<handler> script) {
    thread_ = std::thread([this, script = std::move(script)] {
      for (const handler& h : script) {
        local::socket s(io_);
        boost::system::error_code ec;
        acceptor_.accept(s, ec);
        if (ec) return;
        try {
          h(s);
        } catch (const std::exception&) {  // the client went away; its test says so
        }
      }
    });
  }

  received request(std::size_t i) {
    std::lock_guard lock(m_);
    REQUIRE(i < got_.size());
    return got_[i];
  }

  void read_request(local::socket& s) {
    beast::flat_buffer buf;
    http::request_parser<http::string_body> p;
    p.body_limit(64 * mib);
    http::read(s, buf, p);
    received r{p.get().method(), std::string(p.get().target()),
               std::string(p.get()[http::field::content_type]), p.chunked(), p.get().body()};
    std::lock_guard lock(m_);
    got_.push_back(std::move(r));
  }

  handler answer(http::status status, std::string body, std::string type = "application/json") {
    return [=, this](local::socket& s) {
      read_request(s);
      http::response<http::string_body> res{status, 11};
      res.set(http::field::content_type, type);
      res.body() = body;
      res.prepare_payload();
      http::write(s, res);
    };
  }

  // Answers with `body` in chunks of `piece` bytes (the last one shorter).
  handler answer_chunked(const bytes& body, std::size_t piece) {
    return [=, this](local::socket& s) {
      read_request(s);
      http::response<http::empty_body> res{http::status::ok, 11};
      res.chunked(true);
      http::response_serializer<http::empty_body> sr{res};
      http::write_header(s, sr);
      for (std::size_t at = 0; at < body.size(); at += piece)
        asio::write(s, http::make_chunk(asio::buffer(body.data() + at, std::min(piece, body.size() - at))));
      asio::write(s, http::make_chunk_last());
    };
  }

  // Reads the request, then waits for the client to hang up.
  handler silent() {
    return [this](local::socket& s) {
      read_request(s);
      char c;
      boost::system::error_code ec;
      s.read_some(asio::buffer(&c, 1), ec);
    };
  }

 private:
  std::filesystem::path path_;
  asio::io_context io_;
  local::acceptor acceptor_;
  std::thread thread_;
  std::mutex m_;
  std::vector<received> got_;
};

std::string as_string(const bytes& b) { return {b.begin(), b.end()}; }

}  // namespace

TEST_CASE("call sends JSON under the API prefix and parses the answer", "[docker]") {
  temp_dir dir;
  fake_engine fake(dir);
  fake.serve({fake.answer(http::status::created, R"({"Id":"abc123","Warnings":[]})")});
  const engine e(fake.path());
  auto r = e.call(http::verb::post, "/containers/create?name=web-1", json{{"Image", "busybox"}});
  REQUIRE(r.has_value());
  CHECK((*r)["Id"] == "abc123");
  const received got = fake.request(0);
  CHECK(got.method == http::verb::post);
  CHECK(got.target == "/v1.41/containers/create?name=web-1");
  CHECK(got.content_type == "application/json");
  CHECK(json::parse(got.body) == json{{"Image", "busybox"}});
}

TEST_CASE("call maps error statuses and carries the engine's message", "[docker]") {
  temp_dir dir;
  fake_engine fake(dir);
  fake.serve({fake.answer(http::status::not_found, R"({"message":"No such container: x"})"),
              fake.answer(http::status::conflict, R"({"message":"Conflict. The name \"/web-1\" is in use"})"),
              fake.answer(http::status::bad_request, "  bad parameter\n", "text/plain"),
              fake.answer(http::status::internal_server_error, R"({"message":"driver failed"})")});
  const engine e(fake.path());

  auto missing = e.call(http::verb::get, "/containers/x/json");
  REQUIRE_FALSE(missing.has_value());
  CHECK(missing.error().code == errc::not_found);
  CHECK(missing.error().message == "docker GET /containers/x/json: No such container: x (HTTP 404)");
  CHECK(fake.request(0).body.empty());

  auto taken = e.call(http::verb::post, "/containers/create", json::object());
  REQUIRE_FALSE(taken.has_value());
  CHECK(taken.error().code == errc::already_exists);
  CHECK_THAT(taken.error().message, Catch::Contains("is in use") && Catch::Contains("409"));

  auto bad = e.call(http::verb::post, "/containers/x/stop");
  REQUIRE_FALSE(bad.has_value());
  CHECK(bad.error().code == errc::invalid_argument);
  CHECK(bad.error().message == "docker POST /containers/x/stop: bad parameter (HTTP 400)");

  auto broken = e.call(http::verb::delete_, "/containers/x");
  REQUIRE_FALSE(broken.has_value());
  CHECK(broken.error().code == errc::runtime);
  CHECK_THAT(broken.error().message, Catch::StartsWith("docker DELETE /containers/x: driver failed (HTTP 500)"));
}

TEST_CASE("call returns plain text as a string and an empty body as null", "[docker]") {
  temp_dir dir;
  fake_engine fake(dir);
  fake.serve({fake.answer(http::status::ok, "OK", "text/plain"), fake.answer(http::status::no_content, ""),
              fake.answer(http::status::not_modified, "")});
  const engine e(fake.path());
  auto ping = e.call(http::verb::get, "/_ping");
  REQUIRE(ping.has_value());
  CHECK(*ping == json("OK"));
  auto started = e.call(http::verb::post, "/containers/web-1/start");
  REQUIRE(started.has_value());
  CHECK(started->is_null());
  CHECK(fake.request(1).target == "/v1.41/containers/web-1/start");
  // 304: the engine's "already so" (stopping a stopped container) is what was asked.
  auto stopped = e.call(http::verb::post, "/containers/web-1/stop");
  REQUIRE(stopped.has_value());
  CHECK(stopped->is_null());
}

TEST_CASE("an absent engine is unreachable, a silent one times out", "[docker]") {
  temp_dir dir;
  const engine nobody(dir.path / "missing.sock");
  auto r = nobody.call(http::verb::get, "/_ping");
  REQUIRE_FALSE(r.has_value());
  CHECK(r.error().code == errc::runtime);
  CHECK_THAT(r.error().message, Catch::StartsWith("docker GET /_ping: Docker engine at " +
                                                  (dir.path / "missing.sock").string() + " is unreachable: "));

  fake_engine fake(dir);
  fake.serve({fake.silent(), fake.silent()});
  const engine e(fake.path());
  const auto start = std::chrono::steady_clock::now();
  auto slow = e.call(http::verb::get, "/containers/json", nullptr, 200ms);
  const auto waited = std::chrono::steady_clock::now() - start;
  REQUIRE_FALSE(slow.has_value());
  CHECK(slow.error().code == errc::timeout);
  CHECK_THAT(slow.error().message, Catch::StartsWith("docker GET /containers/json: "));
  CHECK(waited >= 150ms);
  CHECK(waited < 2s);

  auto stalled = e.download("/images/x/get", [](auto) { return true; }, 200ms);
  REQUIRE_FALSE(stalled.has_value());
  CHECK(stalled.error().code == errc::timeout);
}

TEST_CASE("download hands over a 3 MiB body in pieces of at most 1 MiB", "[docker]") {
  const bytes body = noise(3 * mib, 11);
  temp_dir dir;
  fake_engine fake(dir);
  fake.serve({fake.answer(http::status::ok, as_string(body), "application/x-tar"),
              fake.answer_chunked(body, 700 << 10), fake.answer_chunked(body, 256 << 10)});
  const engine e(fake.path());

  for (const char* framing : {"content-length", "chunked", "chunked, then stopped"}) {
    INFO(framing);
    const bool stop = std::string(framing).ends_with("stopped");
    bytes got;
    std::size_t pieces = 0, largest = 0;
    auto n = e.download("/images/migrated-test%3A1/get", [&](std::span<const std::uint8_t> piece) {
      got.insert(got.end(), piece.begin(), piece.end());
      ++pieces;
      largest = std::max(largest, piece.size());
      return !stop;
    });
    if (stop) {
      REQUIRE_FALSE(n.has_value());
      CHECK(n.error().code == errc::cancelled);
      CHECK(pieces == 1);
      continue;
    }
    REQUIRE(n.has_value());
    CHECK(*n == body.size());
    CHECK(got == body);
    CHECK(pieces >= 3);
    CHECK(largest <= mib);
  }
  CHECK(fake.request(1).target == "/v1.41/images/migrated-test%3A1/get");
  CHECK(fake.request(1).method == http::verb::get);
}

TEST_CASE("download reports an error answer as call does", "[docker]") {
  temp_dir dir;
  fake_engine fake(dir);
  fake.serve({fake.answer(http::status::not_found, R"({"message":"reference does not exist"})")});
  const engine e(fake.path());
  bool called = false;
  auto n = e.download("/images/nope/get", [&](auto) { return called = true; });
  REQUIRE_FALSE(n.has_value());
  CHECK(n.error().code == errc::not_found);
  CHECK(n.error().message == "docker GET /images/nope/get: reference does not exist (HTTP 404)");
  CHECK_FALSE(called);
}

TEST_CASE("a chunked upload arrives whole and its answer stream is parsed", "[docker]") {
  const bytes tar = noise(2 * mib + 12345, 5);
  const std::string loaded = "{\"stream\":\"Loaded image: migrated-test:1\\n\"}\r\n{\"stream\":\"done\\n\"}\r\n";
  const std::string failed =
      "{\"stream\":\"Loading layer\\n\"}\r\n"
      "{\"errorDetail\":{\"message\":\"archive/tar: invalid tar header\"},\"error\":\"archive/tar: invalid tar "
      "header\"}\r\n";
  temp_dir dir;
  fake_engine fake(dir);
  fake.serve({fake.answer(http::status::ok, loaded), fake.answer(http::status::ok, failed)});
  const engine e(fake.path());

  auto up = e.begin_upload(http::verb::post, "/images/load?quiet=1", "application/x-tar");
  REQUIRE(up.has_value());
  const std::span<const std::uint8_t> all(tar);
  for (std::size_t at = 0, step = 300 << 10; at < all.size(); at += step, step += 100 << 10)
    REQUIRE(up->write(all.subspan(at, std::min(step, all.size() - at))).has_value());
  REQUIRE(up->write({}).has_value());
  auto answer = up->finish();
  REQUIRE(answer.has_value());
  CHECK(*answer == json::array({{{"stream", "Loaded image: migrated-test:1\n"}}, {{"stream", "done\n"}}}));
  const received got = fake.request(0);
  CHECK(got.method == http::verb::post);
  CHECK(got.target == "/v1.41/images/load?quiet=1");
  CHECK(got.content_type == "application/x-tar");
  CHECK(got.chunked);
  CHECK(got.body == as_string(tar));

  auto bad = e.begin_upload(http::verb::post, "/images/load", "application/x-tar");
  REQUIRE(bad.has_value());
  REQUIRE(bad->write(all.first(1000)).has_value());
  auto refused = bad->finish();
  REQUIRE_FALSE(refused.has_value());
  CHECK(refused.error().code == errc::runtime);
  CHECK(refused.error().message == "docker POST /images/load: archive/tar: invalid tar header");
}

TEST_CASE("an upload the engine refuses before reading it reports the engine's answer", "[docker]") {
  temp_dir dir;
  fake_engine fake(dir);
  fake.serve({[](local::socket& s) {
    beast::flat_buffer buf;
    http::request_parser<http::empty_body> p;
    http::read_header(s, buf, p);
    http::response<http::string_body> res{http::status::not_found, 11};
    res.body() = R"({"message":"No such container: ghost"})";
    res.prepare_payload();
    http::write(s, res);
  }});
  const engine e(fake.path());
  auto up = e.begin_upload(http::verb::put, "/containers/ghost/archive?path=%2F", "application/x-tar", 2s);
  REQUIRE(up.has_value());
  const bytes mb = noise(mib, 3);
  result<void> w;
  for (int i = 0; i < 16 && w; ++i) w = up->write(mb);
  auto end = w ? up->finish() : result<json>(std::unexpected(w.error()));
  REQUIRE_FALSE(end.has_value());
  CHECK(end.error().code == errc::not_found);
  CHECK(end.error().message == "docker PUT /containers/ghost/archive?path=%2F: No such container: ghost (HTTP 404)");
}

TEST_CASE("query_escape keeps unreserved characters only", "[docker]") {
  CHECK(docker::query_escape("migrated-test:1") == "migrated-test%3A1");
  CHECK(docker::query_escape("a b/c?d=e&f~_.") == "a%20b%2Fc%3Fd%3De%26f~_.");
  CHECK(docker::query_escape("\xff") == "%FF");
  CHECK(docker::query_escape("") == "");
}

TEST_CASE("a real engine answers, if one is here", "[docker]") {
  const std::filesystem::path sock = "/var/run/dx-a.sock";
  if (!std::filesystem::exists(sock) || ::access(sock.c_str(), R_OK | W_OK) != 0) return;  // no Docker here
  const engine e(sock);
  auto ping = e.call(http::verb::get, "/_ping", nullptr, 10s);
  REQUIRE(ping.has_value());
  CHECK(*ping == json("OK"));
  auto version = e.call(http::verb::get, "/version", nullptr, 10s);
  REQUIRE(version.has_value());
  CHECK((*version)["ApiVersion"].is_string());
  auto missing = e.call(http::verb::get, "/containers/migrated-no-such-container/json", nullptr, 10s);
  REQUIRE_FALSE(missing.has_value());
  CHECK(missing.error().code == errc::not_found);
  CHECK_THAT(missing.error().message, Catch::Contains("No such container: migrated-no-such-container"));
}
