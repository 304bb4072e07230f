// The Engine API client's plumbing: a deadline-bound unix stream that Beast
// reads and writes synchronously, and the mapping of HTTP answers onto errc.
//
// Why not SO_RCVTIMEO on an Asio socket: Asio's synchronous operations take
// EAGAIN for "not ready yet" and poll again with no limit, so the kernel's
// timeout would be swallowed. unix_stream keeps the descriptor non-blocking
// and polls for at most the time that is left.
#include "docker/engine.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <limits>
#include <optional>
#include <type_traits>
#include <utility>
#include <vector>

#include <boost/asio/buffer.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

namespace migrated::docker {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
using boost::system::error_code;
using clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using sink_fn = std::function<bool(std::span<const std::uint8_t>)>;

constexpr std::size_t piece_bytes = 1 << 20;               // the most download hands the sink at once
constexpr std::uint64_t answer_limit_bytes = 64ull << 20;  // a larger JSON answer is an engine bug
constexpr std::size_t error_text_bytes = 4 << 10;          // an error answer is a sentence; keep that much

// A connected unix socket, a Beast SyncReadStream and SyncWriteStream. Each
// operation waits until a fixed deadline (call) or for `idle` from its start
// (download, upload), then fails with asio::error::timed_out.
class unix_stream {
 public:
  explicit unix_stream(int fd) : fd_(fd) {}
  unix_stream(unix_stream&& o) noexcept
      : fd_(std::exchange(o.fd_, -1)), deadline_(o.deadline_), idle_(o.idle_) {}
  unix_stream& operator=(unix_stream&&) = delete;
  ~unix_stream() {
    if (fd_ >= 0) ::close(fd_);
  }

  int fd() const { return fd_; }
  bool readable() const {
    pollfd p{fd_, POLLIN, 0};
    return ::poll(&p, 1, 0) > 0;
  }
  void expires_at(clock::time_point t) { deadline_ = t; }
  void expires_each(milliseconds idle) { idle_ = idle; }

  // Beast hands over one buffer at a time, or a few small ones: this moves
  // the first non-empty one, as read_some and write_some may.
  template <class Buffers>
  std::size_t read_some(const Buffers& buffers, error_code& ec) {
    const auto b = first<asio::mutable_buffer>(buffers);
    const std::size_t n = io(POLLIN, ec, [&] { return ::read(fd_, b.data(), b.size()); });
    if (!ec && n == 0 && b.size() > 0) ec = asio::error::eof;
    return n;
  }
  template <class Buffers>
  std::size_t write_some(const Buffers& buffers, error_code& ec) {
    const auto b = first<asio::const_buffer>(buffers);
    return io(POLLOUT, ec, [&] { return ::send(fd_, b.data(), b.size(), MSG_NOSIGNAL); });
  }
  // The throwing forms complete the concepts; nothing here calls them.
  template <class Buffers>
  std::size_t read_some(const Buffers& buffers) {
    return or_throw([&](error_code& ec) { return read_some(buffers, ec); });
  }
  template <class Buffers>
  std::size_t write_some(const Buffers& buffers) {
    return or_throw([&](error_code& ec) { return write_some(buffers, ec); });
  }

 private:
  template <class Op>
  std::size_t io(short events, error_code& ec, Op op) {
    const clock::time_point until = idle_.count() > 0 ? clock::now() + idle_ : deadline_;
    for (;;) {
      const ssize_t n = op();
      if (n >= 0) return static_cast<std::size_t>(n);
      if (errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK) {
        ec.assign(errno, boost::system::system_category());
        return 0;
      }
      const auto left = std::chrono::ceil<milliseconds>(until - clock::now()).count();
      if (left <= 0) {
        ec = asio::error::timed_out;
        return 0;
      }
      pollfd p{fd_, events, 0};
      ::poll(&p, 1, static_cast<int>(std::min<long long>(left, INT_MAX)));  // then retry and look at the clock
    }
  }
  template <class Buffer, class Buffers>
  static Buffer first(const Buffers& buffers) {
    for (auto it = asio::buffer_sequence_begin(buffers); it != asio::buffer_sequence_end(buffers); ++it)
      if (Buffer b = *it; b.size() > 0) return b;
    return {};
  }
  template <class Op>
  static std::size_t or_throw(Op op) {
    error_code ec;
    const std::size_t n = op(ec);
    if (ec) throw boost::system::system_error(ec);
    return n;
  }

  int fd_;
  clock::time_point deadline_ = clock::time_point::max();
  milliseconds idle_{0};
};

std::string_view trim(std::string_view s) {
  const auto first = s.find_first_not_of(" \t\r\n");
  if (first == std::string_view::npos) return {};
  return s.substr(first, s.find_last_not_of(" \t\r\n") - first + 1);
}

// The engine's own words from an error answer: {"message": …}, else the body.
std::string engine_message(std::string_view body) {
  const json j = json::parse(body, nullptr, false);
  if (j.is_object() && j.contains("message") && j["message"].is_string()) return j["message"].get<std::string>();
  const std::string_view text = trim(body).substr(0, error_text_bytes);
  return text.empty() ? "no message" : std::string(text);
}

// One request's context for its error messages: "docker GET /_ping: …".
struct exchange {
  std::string what;
  std::string socket;
  milliseconds timeout;

  error transport(error_code ec) const {
    if (ec == asio::error::timed_out)
      return error{errc::timeout, what + ": no progress from Docker engine at " + socket + " within " +
                                      std::to_string(timeout.count()) + " ms"};
    if (ec == beast::http::error::end_of_stream || ec == beast::http::error::partial_message)
      return error{errc::io, what + ": Docker engine at " + socket + " closed the connection"};
    if (ec.category() == beast::http::make_error_code(beast::http::error::bad_version).category())
      return error{errc::protocol, what + ": bad HTTP answer from Docker engine at " + socket + ": " + ec.message()};
    return error{errc::io, what + ": Docker engine at " + socket + ": " + ec.message()};
  }

  error status(unsigned code, std::string_view body) const {
    const errc c = code == 404   ? errc::not_found
                   : code == 409 ? errc::already_exists
                   : code == 400 ? errc::invalid_argument
                                 : errc::runtime;
    return error{c, what + ": " + engine_message(body) + " (HTTP " + std::to_string(code) + ")"};
  }
};

// 304 is how the engine says "already so" (start a running container, stop
// a stopped one): the caller's wish holds, so it is success too.
bool success(unsigned status) { return (status >= 200 && status < 300) || status == 304; }

exchange describe(const engine& e, http::verb method, const std::string& target, milliseconds timeout) {
  return {"docker " + std::string(http::to_string(method)) + " " + target, e.socket().string(), timeout};
}

result<unix_stream> connect(const std::filesystem::path& path, const exchange& x) {
  const clock::time_point deadline = clock::now() + x.timeout;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.native().size() >= sizeof addr.sun_path)
    return fail(errc::invalid_argument, x.what + ": socket path " + x.socket + " is too long");
  std::copy(path.native().begin(), path.native().end(), addr.sun_path);
  unix_stream s(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (s.fd() < 0) return std::unexpected(fail_errno(errno, "socket").error().context(x.what));
  // A blocking connect waits for room in a full listen backlog for at most
  // SO_SNDTIMEO, then fails with EAGAIN. A zero timeval would mean forever.
  const timeval tv{static_cast<time_t>(x.timeout.count() / 1000),
                   static_cast<suseconds_t>(std::max<long long>(x.timeout.count() % 1000 * 1000, 1))};
  ::setsockopt(s.fd(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  int r;
  do r = ::connect(s.fd(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
  while (r < 0 && errno == EINTR);
  if (r < 0 && (errno == EAGAIN || errno == EINPROGRESS)) return std::unexpected(x.transport(asio::error::timed_out));
  if (r < 0)
    return fail(errc::runtime, x.what + ": Docker engine at " + x.socket + " is unreachable: " + std::strerror(errno));
  ::fcntl(s.fd(), F_SETFL, ::fcntl(s.fd(), F_GETFL) | O_NONBLOCK);
  s.expires_at(deadline);
  return s;
}

template <class Body>
http::request<Body> make_request(http::verb method, std::string target) {
  http::request<Body> req{method, std::move(target), 11};
  req.set(http::field::host, "docker");
  req.set(http::field::user_agent, "migrated");
  req.keep_alive(false);
  return req;
}

// Connects and sends req: whole, or only its header when the body is streamed
// later (empty_body). `idle`: the timeout bounds each wait, not the exchange.
template <class Body>
result<unix_stream> send_request(const std::filesystem::path& socket, const exchange& x, http::request<Body>& req,
                                 bool idle) {
  auto s = connect(socket, x);
  if (!s) return s;
  if (idle) s->expires_each(x.timeout);
  error_code ec;
  http::request_serializer<Body> sr{req};
  if constexpr (std::is_same_v<Body, http::empty_body>)
    http::write_header(*s, sr, ec);
  else
    http::write(*s, sr, ec);
  if (ec) return std::unexpected(x.transport(ec));
  return s;
}

result<http::response<http::string_body>> read_answer(unix_stream& s, const exchange& x) {
  beast::flat_buffer buf;
  http::response_parser<http::string_body> p;
  p.body_limit(answer_limit_bytes);
  error_code ec;
  http::read(s, buf, p, ec);
  if (ec) return std::unexpected(x.transport(ec));
  return p.release();
}

// Hands the body of p to sink in pieces of at most piece_bytes: what has
// arrived, once no more is at hand or the piece is full.
result<std::uint64_t> read_pieces(unix_stream& s, beast::flat_buffer& buf, http::response_parser<http::buffer_body>& p,
                                  const exchange& x, const sink_fn& sink) {
  std::vector<std::uint8_t> piece(piece_bytes);
  std::uint64_t total = 0;
  while (!p.is_done()) {
    p.get().body().data = piece.data();
    p.get().body().size = piece.size();
    error_code ec;
    do http::read_some(s, buf, p, ec);  // and on while bytes are at hand: the engine sends 512-byte chunks
    while (!ec && !p.is_done() && (buf.size() > 0 || s.readable()));
    if (ec && ec != http::error::need_buffer) return std::unexpected(x.transport(ec));
    const std::size_t n = piece.size() - p.get().body().size;
    total += n;
    if (n > 0 && !sink({piece.data(), n}))
      return fail(errc::cancelled, x.what + ": the receiver stopped after " + std::to_string(total) + " bytes");
  }
  return total;
}

// A body that is empty → null, JSON → that, else a JSON string. With
// `lines`, a body of one JSON document per line (/images/load) → an array.
json parse_body(const std::string& body, bool lines) {
  if (trim(body).empty()) return nullptr;
  json whole = json::parse(body, nullptr, false);
  if (!whole.is_discarded()) return whole;
  if (!lines) return body;
  json items = json::array();
  for (std::size_t pos = 0; pos < body.size();) {
    const std::size_t end = std::min(body.find('\n', pos), body.size());
    const std::string_view line = trim(std::string_view(body).substr(pos, end - pos));
    pos = end + 1;
    if (line.empty()) continue;
    json item = json::parse(line, nullptr, false);
    if (item.is_discarded()) return body;
    items.push_back(std::move(item));
  }
  return items;
}

// The "error" text of an answer stream's object, as /images/load reports failure.
std::optional<std::string> stream_error(const json& answer) {
  if (answer.is_array()) {
    for (const json& item : answer)
      if (auto text = stream_error(item)) return text;
  }
  if (!answer.is_object() || !answer.contains("error") || answer["error"].is_null()) return std::nullopt;
  return answer["error"].is_string() ? answer["error"].get<std::string>() : answer["error"].dump();
}

}  // namespace

struct engine::upload::state {
  unix_stream stream;
  exchange x;

  // The engine may answer (404, 400) before it has read the body and close
  // the connection; that answer explains a failed write better than EPIPE.
  error failed_write(error_code ec) {
    if (ec == asio::error::timed_out) return x.transport(ec);
    auto answer = read_answer(stream, x);
    if (answer && !success(answer->result_int())) return x.status(answer->result_int(), answer->body());
    return x.transport(ec);
  }
};

engine::engine(std::filesystem::path socket, std::string api_prefix)
    : socket_(std::move(socket)), api_prefix_(std::move(api_prefix)) {}

result<json> engine::call(http::verb method, const std::string& target, const json& body,
                          std::chrono::milliseconds timeout) const {
  const exchange x = describe(*this, method, target, timeout);
  auto req = make_request<http::string_body>(method, api_prefix_ + target);
  if (!body.is_null()) {
    req.set(http::field::content_type, "application/json");
    req.body() = body.dump(-1, ' ', false, json::error_handler_t::replace);
  }
  req.prepare_payload();
  auto stream = send_request(socket_, x, req, false);
  if (!stream) return std::unexpected(stream.error());
  auto answer = read_answer(*stream, x);
  if (!answer) return std::unexpected(answer.error());
  if (!success(answer->result_int())) return std::unexpected(x.status(answer->result_int(), answer->body()));
  return parse_body(answer->body(), false);
}

result<std::uint64_t> engine::download(const std::string& target, const sink_fn& sink,
                                       std::chrono::milliseconds idle_timeout) const {
  const exchange x = describe(*this, http::verb::get, target, idle_timeout);
  auto req = make_request<http::empty_body>(http::verb::get, api_prefix_ + target);
  auto stream = send_request(socket_, x, req, true);
  if (!stream) return std::unexpected(stream.error());
  beast::flat_buffer buf;
  http::response_parser<http::buffer_body> p;
  p.body_limit(std::numeric_limits<std::uint64_t>::max());  // boost 1.74: none fails any content-length
  error_code ec;
  http::read_header(*stream, buf, p, ec);
  if (ec) return std::unexpected(x.transport(ec));
  const unsigned status = p.get().result_int();
  if (success(status)) return read_pieces(*stream, buf, p, x, sink);
  std::string text;
  (void)read_pieces(*stream, buf, p, x, [&](std::span<const std::uint8_t> bytes) {
    text.append(bytes.begin(), bytes.begin() + std::min(bytes.size(), error_text_bytes - text.size()));
    return text.size() < error_text_bytes;
  });
  return std::unexpected(x.status(status, text));
}

result<engine::upload> engine::begin_upload(http::verb method, const std::string& target,
                                            const std::string& content_type,
                                            std::chrono::milliseconds timeout) const {
  exchange x = describe(*this, method, target, timeout);
  auto req = make_request<http::empty_body>(method, api_prefix_ + target);
  req.set(http::field::content_type, content_type);
  req.chunked(true);
  auto stream = send_request(socket_, x, req, true);
  if (!stream) return std::unexpected(stream.error());
  return upload(std::unique_ptr<upload::state>(new upload::state{std::move(*stream), std::move(x)}));
}

engine::upload::upload(std::unique_ptr<state> s) : state_(std::move(s)) {}
engine::upload::upload(upload&&) noexcept = default;
engine::upload& engine::upload::operator=(upload&&) noexcept = default;
engine::upload::~upload() = default;

result<void> engine::upload::write(std::span<const std::uint8_t> bytes) {
  if (!state_) return fail(errc::internal, "docker upload: used after move");
  if (bytes.empty()) return {};
  error_code ec;
  asio::write(state_->stream, http::make_chunk(asio::const_buffer(bytes.data(), bytes.size())), ec);
  if (ec) return std::unexpected(state_->failed_write(ec));
  return {};
}

result<json> engine::upload::finish() {
  if (!state_) return fail(errc::internal, "docker upload: used after move");
  error_code ec;
  asio::write(state_->stream, http::make_chunk_last(), ec);
  if (ec) return std::unexpected(state_->failed_write(ec));
  const exchange& x = state_->x;
  auto answer = read_answer(state_->stream, x);
  if (!answer) return std::unexpected(answer.error());
  if (!success(answer->result_int())) return std::unexpected(x.status(answer->result_int(), answer->body()));
  json j = parse_body(answer->body(), true);
  if (auto text = stream_error(j)) return fail(errc::runtime, x.what + ": " + *text);
  return j;
}

std::string query_escape(std::string_view v) {
  static constexpr char hex[] = "0123456789ABCDEF";
  std::string out;
  for (const unsigned char c : v) {
    const bool unreserved = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                            c == '-' || c == '_' || c == '.' || c == '~';
    if (unreserved)
      out += static_cast<char>(c);
    else
      out += {'%', hex[c >> 4], hex[c & 15]};
  }
  return out;
}

}  // namespace migrated::docker
