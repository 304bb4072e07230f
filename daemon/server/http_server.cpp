// The read-only HTTP endpoint (see http_server.hpp).
#include "server/http_server.hpp"

#include <charconv>
#include <chrono>

#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

#include "common/log.hpp"
#include "common/report_json.hpp"

namespace migrated::server {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
using json = nlohmann::ordered_json;

std::shared_ptr<spdlog::logger> logger() { return log::get("http"); }

constexpr auto first_request_within = std::chrono::seconds(5);
constexpr auto idle_within = std::chrono::seconds(30);
constexpr auto write_within = std::chrono::seconds(5);
constexpr auto accept_backoff = std::chrono::milliseconds(100);
constexpr std::size_t default_limit = 100, max_limit = 1000;

constexpr std::string_view text_plain = "text/plain; charset=utf-8";
constexpr std::string_view metrics_type = "text/plain; version=0.0.4; charset=utf-8";
constexpr std::string_view json_type = "application/json";

http_answer json_answer(unsigned status, const json& j) { return {status, std::string(json_type), json_text(j) + "\n"}; }

http_answer error_answer(unsigned status, const std::string& message) {
  return json_answer(status, json{{"error", message}});
}

// "limit=N" among the query's parameters; others are ignored.
result<std::size_t> limit_of(std::string_view query) {
  std::size_t limit = default_limit;
  while (!query.empty()) {
    const auto amp = query.find('&');
    const auto param = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
    if (!param.starts_with("limit=")) continue;
    const auto value = param.substr(6);
    const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), limit);
    if (ec != std::errc{} || end != value.data() + value.size() || limit < 1 || limit > max_limit)
      return fail(errc::invalid_argument, "limit: expected an integer 1.." + std::to_string(max_limit) + ", got '" +
                                              std::string(value) + "'");
  }
  return limit;
}

}  // namespace

http_server::http_server(std::string node, const migration::registry& registry, const migration::metrics& metrics,
                         tcp::acceptor acceptor, std::size_t max_connections)
    : node_(std::move(node)),
      registry_(registry),
      metrics_(metrics),
      acceptor_(std::move(acceptor)),
      max_connections_(max_connections ? max_connections : 1) {}

void http_server::stop() {
  boost::system::error_code ec;
  acceptor_.close(ec);
}

http_answer http_server::answer(std::string_view method, std::string_view target) const {
  const auto question = target.find('?');
  const auto path = target.substr(0, question);
  const auto query = question == std::string_view::npos ? std::string_view{} : target.substr(question + 1);
  const bool known = path == "/metrics" || path == "/healthz" || path == "/v1/migrations" ||
                     path.starts_with("/v1/migrations/");
  if (!known) return error_answer(404, "no such resource: " + std::string(path));
  if (method != "GET") return error_answer(405, "read-only: only GET is served");
  if (path == "/metrics") return {200, std::string(metrics_type), metrics_.text()};
  if (path == "/healthz") return {200, std::string(text_plain), "ok\n"};
  if (path == "/v1/migrations") return migrations(query);
  return migration(path.substr(std::string_view("/v1/migrations/").size()));
}

http_answer http_server::migrations(std::string_view query) const {
  auto limit = limit_of(query);
  if (!limit) return error_answer(400, limit.error().message);
  json list = json::array();
  for (const auto& r : registry_.all())
    if (r.result() == pb::RESULT_RUNNING && list.size() < *limit) list.push_back(report_to_json(r));
  if (const auto* past = registry_.past(); past && list.size() < *limit)  // (newest(0) would be all)
    for (const auto& r : past->newest(*limit - list.size())) list.push_back(report_to_json(r));
  return json_answer(200, json{{"node", node_}, {"migrations", std::move(list)}});
}

http_answer http_server::migration(std::string_view id) const {
  const std::string key(id);
  const pb::Report* r = registry_.find(key);
  if (!r && registry_.past()) r = registry_.past()->find(key);
  if (!r) return error_answer(404, "no migration " + key + " on " + node_);
  return json_answer(200, report_to_json(*r));
}

awaitable<void> http_server::run() {
  asio::steady_timer backoff(acceptor_.get_executor());
  for (;;) {
    boost::system::error_code ec;
    tcp::socket socket = co_await acceptor_.async_accept(asio::redirect_error(use_awaitable, ec));
    if (ec == asio::error::operation_aborted || !acceptor_.is_open()) co_return;
    if (ec) {  // out of descriptors, say: try again a little later
      logger()->debug("accept: {}", ec.message());
      backoff.expires_after(accept_backoff);
      co_await backoff.async_wait(asio::redirect_error(use_awaitable, ec));
      continue;
    }
    if (open_ >= max_connections_) {  // a flood costs a descriptor for a moment, no more
      logger()->debug("connection refused: {} open (http.connections)", open_);
      socket.close(ec);
      continue;
    }
    ++open_;
    asio::co_spawn(acceptor_.get_executor(), serve(std::move(socket)), [this](std::exception_ptr e) {
      --open_;
      if (!e) return;
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& ex) {
        logger()->error("connection handler crashed: {}", ex.what());
      }
    });
  }
}

// Requests one after another on one connection (keep-alive), each read
// whole within its deadline; anything malformed ends the connection.
awaitable<void> http_server::serve(tcp::socket socket) {
  beast::tcp_stream stream(std::move(socket));
  beast::flat_buffer buffer;
  bool first = true;
  for (;;) {
    http::request_parser<http::empty_body> parser;
    parser.header_limit(http_server::header_limit);
    stream.expires_after(first ? std::chrono::duration_cast<std::chrono::steady_clock::duration>(first_request_within)
                               : std::chrono::duration_cast<std::chrono::steady_clock::duration>(idle_within));
    first = false;
    boost::system::error_code ec;
    co_await http::async_read(stream, buffer, parser, asio::redirect_error(use_awaitable, ec));
    if (ec) {
      if (ec != http::error::end_of_stream && ec != beast::error::timeout && ec != asio::error::eof)
        logger()->debug("request refused: {}", ec.message());
      break;
    }
    const auto& req = parser.get();
    const auto a = answer(std::string_view(req.method_string().data(), req.method_string().size()),
                          std::string_view(req.target().data(), req.target().size()));
    http::response<http::string_body> res{static_cast<http::status>(a.status), req.version()};
    res.set(http::field::server, "migrated");
    res.set(http::field::content_type, a.content_type);
    res.set(http::field::cache_control, "no-store");
    if (a.status == 405) res.set(http::field::allow, "GET");
    res.keep_alive(req.keep_alive());
    res.body() = a.body;
    res.prepare_payload();
    stream.expires_after(std::chrono::duration_cast<std::chrono::steady_clock::duration>(write_within));
    co_await http::async_write(stream, res, asio::redirect_error(use_awaitable, ec));
    if (ec || !res.keep_alive()) break;
  }
  boost::system::error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
}

}  // namespace migrated::server
