// Framed I/O on one TLS connection. Deadlines come from the beast::tcp_stream
// under the TLS stream (expires_after before every operation); errors are
// turned into migrated errors here so that callers see "peer closed the
// connection" rather than an asio or OpenSSL error code. A peer that closes
// without TLS's close_notify is treated like one that sent it: the frame
// boundary, not the TLS alert, tells a cut-short message.
#include "transport/channel.hpp"

#include <boost/asio/ssl/error.hpp>
#include <boost/beast/core/error.hpp>
#include <openssl/ssl.h>

namespace migrated::transport {
namespace beast = boost::beast;

namespace {

std::unexpected<error> io_error(const boost::system::error_code& ec, std::string_view what,
                                const std::string& remote) {
  if (ec == beast::error::timeout)
    return fail(errc::timeout, std::string(what) + " " + remote + ": timed out");
  if (ec == asio::error::eof || ec == asio::error::connection_reset ||
      ec == asio::error::broken_pipe || ec == asio::ssl::error::stream_truncated)
    return fail(errc::peer, std::string(what) + " " + remote + ": peer closed the connection");
  if (ec == asio::error::operation_aborted)
    return fail(errc::cancelled, std::string(what) + " " + remote + ": cancelled");
  if (ec.category() == asio::error::get_ssl_category())
    return fail(errc::auth, std::string(what) + " " + remote + ": TLS: " + ec.message());
  return fail(errc::io, std::string(what) + " " + remote + ": " + ec.message());
}

bool closed(const boost::system::error_code& ec) {
  return ec == asio::error::eof || ec == asio::ssl::error::stream_truncated;
}

}  // namespace

channel::channel(tcp::socket socket, std::shared_ptr<ssl::context> tls, std::chrono::milliseconds io_timeout)
    : tls_(std::move(tls)), stream_(std::make_unique<tls_stream>(std::move(socket), *tls_)), io_timeout_(io_timeout) {
  boost::system::error_code ec;
  auto& sock = stream_->layer().socket();
  auto ep = sock.remote_endpoint(ec);
  remote_ = ec ? std::string("(unknown peer)") : ep.address().to_string() + ":" + std::to_string(ep.port());
  sock.set_option(tcp::no_delay(true), ec);
}

awaitable<result<void>> channel::secure(side s, std::chrono::milliseconds timeout) {
  stream_->layer().expires_after(timeout);
  const boost::system::error_code ec = co_await stream_->handshake(s == side::client);
  if (ec) {
    if (ec == beast::error::timeout) co_return fail(errc::timeout, "TLS handshake with " + remote_ + ": timed out");
    if (ec.category() == asio::error::get_ssl_category())
      co_return fail(errc::auth, "authentication failed: TLS handshake with " + remote_ + ": " + ec.message() +
                                     (s == side::client ? " (is our certificate of its fleet?)" : ""));
    co_return io_error(ec, "TLS handshake with", remote_);
  }
  auto id = peer_identity(stream_->native_handle());
  if (!id) co_return std::unexpected(id.error().context("authentication failed: " + remote_));
  who = std::move(*id);
  stream_->raise_buffers();
  co_return result<void>{};
}

std::string channel::cipher() const { return stream_ ? cipher_of(stream_->native_handle()) : "(none)"; }

void channel::close() {
  if (!stream_) return;  // moved from
  boost::system::error_code ec;
  auto& sock = stream_->layer().socket();
  sock.shutdown(tcp::socket::shutdown_both, ec);
  sock.close(ec);
}

void channel::cancel() {
  reads_cancelled_ = true;
  if (stream_) stream_->layer().cancel();
}

bool channel::is_open() const { return stream_ && stream_->layer().socket().is_open(); }

awaitable<result<void>> channel::send_within(std::chrono::milliseconds timeout, const pb::Envelope& msg,
                                             std::span<const std::uint8_t> payload) {
  if (payload.size() > wire::max_payload_bytes)
    co_return fail(errc::internal, "payload too large to send");
  std::string header = msg.SerializeAsString();
  if (header.empty() || header.size() > wire::max_header_bytes)
    co_return fail(errc::internal, "message too large to send (" + std::to_string(header.size()) + " bytes)");
  wire::prefix p{std::uint32_t(header.size()), std::uint32_t(payload.size())};
  const auto pre = wire::encode_prefix(p);
  // Prefix and header in one piece: one TLS record for a small frame.
  header.insert(header.begin(), pre.begin(), pre.end());
  const std::array<asio::const_buffer, 2> bufs{asio::buffer(header), asio::buffer(payload.data(), payload.size())};
  stream_->layer().expires_after(timeout);
  const boost::system::error_code ec = co_await stream_->write(bufs);
  if (ec) co_return io_error(ec, "send to", remote_);
  co_return result<void>{};
}

awaitable<result<frame>> channel::recv(std::chrono::milliseconds timeout) {
  if (reads_cancelled_) co_return fail(errc::cancelled, "receive from " + remote_ + ": cancelled");
  std::array<std::uint8_t, wire::prefix_bytes> pre{};
  stream_->layer().expires_after(timeout);
  const auto got_prefix = co_await stream_->read(asio::buffer(pre));
  if (got_prefix.first) {
    if (closed(got_prefix.first) && got_prefix.second > 0)
      co_return fail(errc::protocol, "receive from " + remote_ + ": truncated frame");
    co_return io_error(got_prefix.first, "receive from", remote_);
  }
  auto p = wire::decode_prefix(pre);
  if (!p) co_return std::unexpected(p.error().context("receive from " + remote_));
  if (frame_limit_ && std::size_t(p->header_len) + p->payload_len > frame_limit_)
    co_return fail(errc::protocol, "receive from " + remote_ + ": a frame of " +
                                       std::to_string(std::size_t(p->header_len) + p->payload_len) +
                                       " bytes before the handshake completed (at most " + std::to_string(frame_limit_) + ")");
  // The header, then the payload straight into the frame (no second copy).
  buf_.resize(p->header_len);
  frame f;
  f.payload.resize(p->payload_len);
  stream_->layer().expires_after(timeout);
  auto got = co_await stream_->read(asio::buffer(buf_));
  if (!got.first && !f.payload.empty()) got = co_await stream_->read(asio::buffer(f.payload));
  if (got.first) {
    if (closed(got.first)) co_return fail(errc::protocol, "receive from " + remote_ + ": truncated frame");
    co_return io_error(got.first, "receive from", remote_);
  }
  if (auto ok = wire::parse_envelope(std::span<const std::uint8_t>(buf_), f.msg); !ok)
    co_return std::unexpected(ok.error().context("receive from " + remote_));
  co_return f;
}

awaitable<result<void>> channel::reply(std::uint64_t request_id, const result<void>& outcome,
                                       const std::string& migration_id) {
  const pb::Envelope env = make_reply(request_id, outcome, migration_id);
  co_return co_await send(env);
}

awaitable<result<void>> channel::reply(std::uint64_t request_id, const result<void>& outcome) {
  const std::string none;
  co_return co_await reply(request_id, outcome, none);
}

pb::Envelope make_reply(std::uint64_t request_id, const result<void>& outcome, const std::string& migration_id) {
  pb::Envelope env;
  env.set_request_id(request_id);
  auto* r = env.mutable_reply();
  r->set_ok(outcome.has_value());
  r->set_request_id(request_id);
  r->set_migration_id(migration_id);
  if (!outcome) {
    r->set_code(to_code(outcome.error().code));
    r->set_message(outcome.error().message);
  }
  return env;
}

pb::Code to_code(errc c) { return static_cast<pb::Code>(static_cast<int>(c)); }

errc from_code(pb::Code c) {
  int v = static_cast<int>(c);
  if (v < 0 || v > static_cast<int>(errc::refused)) return errc::peer;
  return static_cast<errc>(v);
}

result<void> to_result(const pb::Reply& r) {
  if (r.ok()) return {};
  return fail(from_code(r.code()), r.message().empty() ? "refused without a reason" : r.message());
}

error aborted_by_peer(const channel& ch, const pb::Abort& a) {
  const std::string who = ch.peer.node().empty() ? ch.remote() : ch.peer.node();
  return error{errc::cancelled, who + " gave up: " + (a.reason().empty() ? "no reason given" : a.reason())};
}

awaitable<result<pb::Reply>> expect_reply(channel& ch, std::string_view what,
                                          std::chrono::milliseconds timeout) {
  auto f = co_await ch.recv(timeout);
  if (!f) co_return std::unexpected(f.error().context(what));
  if (f->msg.has_abort()) co_return std::unexpected(aborted_by_peer(ch, f->msg.abort()).context(what));
  if (!f->msg.has_reply())
    co_return fail(errc::protocol, std::string(what) + ": expected a reply, got message #" +
                                       std::to_string(f->msg.body_case()));
  co_return f->msg.reply();
}

}  // namespace migrated::transport
