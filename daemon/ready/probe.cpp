// Readiness probes: label parsing, then one attempt function per kind and a
// loop that retries them until the overall deadline. Attempts report their
// failure as a short phrase ("connection refused", "HTTP 503", "exit 1"); the
// last one ends up in the timeout message.
#include "ready/probe.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <memory>
#include <optional>
#include <string_view>

#include <boost/beast/core/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>

#include "common/config.hpp"

namespace migrated::ready {
namespace beast = boost::beast;
namespace http = beast::http;

namespace {

using ms = std::chrono::milliseconds;
using steady = std::chrono::steady_clock;
using error_code = boost::system::error_code;

constexpr std::string_view label_prefix = "migrated.ready.";
constexpr std::uint64_t max_label_ms = 24 * 3600 * 1000;  // longer than a day is a typo

std::string host_port(const probe& p) { return endpoint{p.host, p.port}.to_string(); }

// Leaves plain words bare and single-quotes the rest, as a shell would need.
std::string shell_quote(std::string_view arg) {
  auto plain = [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || std::string_view("_@%+=:,./-").find(c) != std::string_view::npos;
  };
  if (!arg.empty() && std::ranges::all_of(arg, plain)) return std::string(arg);
  std::string out = "'";
  for (char c : arg) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

std::optional<std::uint64_t> parse_number(std::string_view text) {
  std::uint64_t n = 0;
  auto [stop, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (text.empty() || ec != std::errc{} || stop != text.data() + text.size()) return std::nullopt;
  return n;
}

// "PORT" (host stays 127.0.0.1) or "HOST:PORT" / "[IPv6]:PORT".
result<void> parse_address(std::string_view text, probe& out) {
  if (text.find(':') == std::string_view::npos) {
    auto n = parse_number(text);
    if (!n) return fail(errc::invalid_argument, "expected PORT or HOST:PORT");
    if (*n == 0 || *n > 65535) return fail(errc::invalid_argument, "port must be 1..65535");
    out.port = static_cast<std::uint16_t>(*n);
    return {};
  }
  auto ep = parse_endpoint(text);
  if (!ep) return std::unexpected(ep.error());
  out.host = ep->host;
  out.port = ep->port;
  return {};
}

// "PORT[/path]" or "HOST:PORT[/path]".
result<void> parse_http(std::string_view text, probe& out) {
  const auto slash = text.find('/');
  if (slash != std::string_view::npos) {
    out.path = std::string(text.substr(slash));
    if (std::ranges::any_of(out.path, [](unsigned char c) { return c <= ' ' || c == 0x7f; }))
      return fail(errc::invalid_argument, "path must not contain spaces or control characters");
  }
  return parse_address(text.substr(0, slash), out);
}

std::unexpected<error> bad_label(const std::string& key, const std::string& value, std::string_view why) {
  return fail(errc::invalid_argument, "label " + key + "=\"" + value + "\": " + std::string(why));
}

std::unexpected<error> network_failure(const error_code& ec, ms budget) {
  if (ec == beast::error::timeout) return fail(errc::timeout, "no answer within " + std::to_string(budget.count()) + " ms");
  if (ec == asio::error::connection_refused) return fail(errc::io, "connection refused");
  if (ec == asio::error::eof || ec == asio::error::connection_reset || ec == http::error::end_of_stream)
    return fail(errc::io, "connection closed without an answer");
  return fail(errc::io, ec.message());
}

// Connects to the probe's host, resolving a name if need be; the resolver is
// cancelled at `deadline` like the connect.
awaitable<result<void>> connect(beast::tcp_stream& stream, const probe& p, steady::time_point deadline, ms budget) {
  error_code ec;
  std::vector<tcp::endpoint> endpoints;
  const auto address = asio::ip::make_address(p.host, ec);
  if (!ec) {
    endpoints.emplace_back(address, p.port);
  } else {
    auto resolver = std::make_shared<tcp::resolver>(stream.get_executor());
    asio::steady_timer guard(stream.get_executor());
    guard.expires_at(deadline);
    guard.async_wait([resolver](const error_code& e) { if (!e) resolver->cancel(); });
    const std::string service = std::to_string(p.port);
    auto found = co_await resolver->async_resolve(p.host, service, asio::redirect_error(use_awaitable, ec));
    guard.cancel();
    if (ec == asio::error::operation_aborted) co_return fail(errc::timeout, "resolving " + p.host + " timed out");
    if (ec) co_return fail(errc::io, "resolve " + p.host + ": " + ec.message());
    for (const auto& entry : found) endpoints.push_back(entry.endpoint());
  }
  stream.expires_at(deadline);
  co_await stream.async_connect(endpoints, asio::redirect_error(use_awaitable, ec));
  if (ec) co_return network_failure(ec, budget);
  co_return result<void>{};
}

awaitable<result<void>> try_tcp(const probe& p, ms budget) {
  beast::tcp_stream stream(co_await asio::this_coro::executor);
  co_return co_await connect(stream, p, steady::now() + budget, budget);
}

// One GET; only the status line and headers are read.
awaitable<result<void>> try_http(const probe& p, ms budget) {
  const auto deadline = steady::now() + budget;
  beast::tcp_stream stream(co_await asio::this_coro::executor);
  result<void> connected = co_await connect(stream, p, deadline, budget);
  if (!connected) co_return connected;
  http::request<http::empty_body> request{http::verb::get, p.path, 11};
  request.set(http::field::host, host_port(p));
  request.set(http::field::user_agent, "migrated-ready");
  request.set(http::field::connection, "close");
  error_code ec;
  stream.expires_at(deadline);
  co_await http::async_write(stream, request, asio::redirect_error(use_awaitable, ec));
  if (ec) co_return network_failure(ec, budget);
  beast::flat_buffer buffer;
  http::response_parser<http::empty_body> parser;
  stream.expires_at(deadline);
  co_await http::async_read_header(stream, buffer, parser, asio::redirect_error(use_awaitable, ec));
  if (ec) co_return network_failure(ec, budget);
  stream.socket().shutdown(tcp::socket::shutdown_both, ec);
  const unsigned status = parser.get().result_int();
  if (status >= 200 && status < 400) co_return result<void>{};
  co_return fail(errc::io, "HTTP " + std::to_string(status));
}

// One exec in flight. An exec cannot be cancelled, so it may outlive the
// attempt that started it: the detached task running it shares this, and
// the next attempt waits for that exec rather than starting another.
struct exec_call {
  explicit exec_call(const asio::any_io_executor& ex) : done(ex) {}
  asio::steady_timer done;  // cancelled once `outcome` is set
  std::optional<result<int>> outcome;
  exec_fn fn;
  std::vector<std::string> argv;
};

awaitable<void> run_exec(std::shared_ptr<exec_call> call) {
  result<int> r = fail(errc::internal, "exec did not finish");
  try {
    r = co_await call->fn(call->argv);
  } catch (const std::exception& e) {
    r = fail(errc::internal, std::string("exec threw: ") + e.what());
  }
  call->outcome = std::move(r);
  call->done.cancel();
}

awaitable<result<void>> try_exec(const probe& p, const exec_fn& exec, std::shared_ptr<exec_call>& call, ms budget) {
  const auto ex = co_await asio::this_coro::executor;
  if (!call || call->outcome) {
    call = std::make_shared<exec_call>(ex);
    call->fn = exec;
    call->argv = p.command;
    asio::co_spawn(ex, run_exec(call), asio::detached);
  }
  if (!call->outcome) {
    error_code ec;
    call->done.expires_after(budget);
    co_await call->done.async_wait(asio::redirect_error(use_awaitable, ec));
  }
  if (!call->outcome) co_return fail(errc::timeout, "still running after " + std::to_string(budget.count()) + " ms");
  const result<int>& r = *call->outcome;
  if (!r) co_return std::unexpected(r.error());
  if (*r != 0) co_return fail(errc::runtime, "exit " + std::to_string(*r));
  co_return result<void>{};
}

result<void> check(const probe& p, const exec_fn& exec) {
  if ((p.type == probe::kind::tcp || p.type == probe::kind::http) && p.port == 0)
    return fail(errc::invalid_argument, p.describe() + ": no port to probe");
  if (p.type == probe::kind::exec && p.command.empty())
    return fail(errc::invalid_argument, "exec probe without a command");
  if (p.type == probe::kind::exec && !exec)
    return fail(errc::unsupported, p.describe() + ": this runtime cannot run commands in a container");
  return {};
}

}  // namespace

std::string probe::describe() const {
  switch (type) {
    case kind::none: return "no probe";
    case kind::tcp: return "tcp " + host_port(*this);
    case kind::http: return "http GET " + host_port(*this) + path;
    case kind::exec: {
      std::string out = "exec";
      for (const auto& arg : command) out += " " + shell_quote(arg);
      return out;
    }
  }
  return "unknown probe";
}

result<probe> from_labels(const std::map<std::string, std::string>& labels) {
  probe p;
  const std::string* kind_label = nullptr;    // the label that chose the kind
  const std::string* tuning_label = nullptr;  // a timeout_ms or interval_ms label
  const std::string prefix(label_prefix);
  for (auto it = labels.lower_bound(prefix); it != labels.end() && it->first.starts_with(prefix); ++it) {
    const auto& [key, value] = *it;
    const std::string_view name = std::string_view(key).substr(prefix.size());
    if (value.find_first_not_of(" \t\r\n") == std::string::npos) return bad_label(key, value, "empty value");
    if (name == "timeout_ms" || name == "interval_ms") {
      const auto n = parse_number(value);
      if (!n || *n == 0 || *n > max_label_ms)
        return bad_label(key, value, "expected a positive integer of milliseconds, at most a day");
      (name == "timeout_ms" ? p.timeout : p.interval) = ms(*n);
      tuning_label = &key;
      continue;
    }
    const auto type = name == "tcp" ? probe::kind::tcp : name == "http" ? probe::kind::http
                    : name == "exec" ? probe::kind::exec : probe::kind::none;
    if (type == probe::kind::none)
      return bad_label(key, value, "unknown label (expected migrated.ready.tcp, .http, .exec, .timeout_ms or .interval_ms)");
    if (kind_label)
      return bad_label(key, value, "conflicts with " + *kind_label + "=\"" + labels.at(*kind_label) +
                                       "\": a container has one readiness probe");
    kind_label = &key;
    p.type = type;
    result<void> ok{};
    if (type == probe::kind::tcp) ok = parse_address(value, p);
    if (type == probe::kind::http) ok = parse_http(value, p);
    if (type == probe::kind::exec) p.command = {"sh", "-c", value};
    if (!ok) return bad_label(key, value, ok.error().message);
  }
  if (p.type == probe::kind::none && tuning_label)
    return bad_label(*tuning_label, labels.at(*tuning_label),
                     "no probe to apply it to (set migrated.ready.tcp, .http or .exec)");
  return p;
}

awaitable<result<double>> wait_ready(const probe& p, const exec_fn& exec) {
  if (p.type == probe::kind::none) co_return 0.0;
  if (auto ok = check(p, exec); !ok) co_return std::unexpected(ok.error());
  const auto start = steady::now();
  const auto deadline = start + p.timeout;
  asio::steady_timer pause(co_await asio::this_coro::executor);
  std::shared_ptr<exec_call> call;
  std::string last = "no attempt finished";
  for (auto now = start; now < deadline; now = steady::now()) {
    const ms budget = std::min(std::chrono::ceil<ms>(deadline - now), max_attempt);
    result<void> ok;
    if (p.type == probe::kind::tcp) ok = co_await try_tcp(p, budget);
    else if (p.type == probe::kind::http) ok = co_await try_http(p, budget);
    else ok = co_await try_exec(p, exec, call, budget);
    if (ok) co_return std::chrono::duration<double, std::milli>(steady::now() - start).count();
    last = ok.error().message;
    error_code ec;
    pause.expires_at(std::min(steady::now() + p.interval, deadline));
    co_await pause.async_wait(asio::redirect_error(use_awaitable, ec));
    if (ec) co_return fail(errc::cancelled, p.describe() + ": cancelled");
  }
  co_return fail(errc::timeout, p.describe() + " did not answer within " + std::to_string(p.timeout.count()) +
                                    " ms: " + last);
}

}  // namespace migrated::ready
