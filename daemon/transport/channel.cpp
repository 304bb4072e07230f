// Framed, authenticated I/O on one TCP connection. Deadlines come from
// beast::tcp_stream (expires_after before every operation); errors are
// turned into migrated errors here so that callers see "peer closed the
// connection" rather than an asio error code.
#include "transport/channel.hpp"

#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/error.hpp>

namespace migrated::transport {
namespace beast = boost::beast;

namespace {

std::unexpected<error> io_error(const boost::system::error_code& ec, std::string_view what,
                                const std::string& remote) {
  if (ec == beast::error::timeout)
    return fail(errc::timeout, std::string(what) + " " + remote + ": timed out");
  if (ec == asio::error::eof || ec == asio::error::connection_reset ||
      ec == asio::error::broken_pipe)
    return fail(errc::peer, std::string(what) + " " + remote + ": peer closed the connection");
  if (ec == asio::error::operation_aborted)
    return fail(errc::cancelled, std::string(what) + " " + remote + ": cancelled");
  return fail(errc::io, std::string(what) + " " + remote + ": " + ec.message());
}

}  // namespace

channel::channel(tcp::socket socket, std::chrono::milliseconds io_timeout)
    : stream_(std::move(socket)), io_timeout_(io_timeout) {
  boost::system::error_code ec;
  auto ep = stream_.socket().remote_endpoint(ec);
  remote_ = ec ? std::string("(unknown peer)") : ep.address().to_string() + ":" + std::to_string(ep.port());
  stream_.socket().set_option(tcp::no_delay(true), ec);
}

void channel::rekey(auth::bytes send_key, auth::bytes recv_key) {
  send_sealer_.rekey(std::move(send_key));
  recv_sealer_.rekey(std::move(recv_key));
}

void channel::close() {
  boost::system::error_code ec;
  stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
  stream_.socket().close(ec);
}

void channel::cancel() {
  reads_cancelled_ = true;
  stream_.cancel();
}

bool channel::is_open() const { return stream_.socket().is_open(); }

awaitable<result<void>> channel::send_within(std::chrono::milliseconds timeout, const pb::Envelope& msg,
                                             std::span<const std::uint8_t> payload) {
  if (payload.size() > wire::max_payload_bytes)
    co_return fail(errc::internal, "payload too large to send");
  std::string header = msg.SerializeAsString();
  if (header.empty() || header.size() > wire::max_header_bytes)
    co_return fail(errc::internal, "message too large to send (" + std::to_string(header.size()) + " bytes)");
  wire::prefix p{std::uint32_t(header.size()), std::uint32_t(payload.size())};
  auto hb = std::span(reinterpret_cast<const std::uint8_t*>(header.data()), header.size());
  auto tag = send_sealer_.seal(p, hb, payload);
  auto pre = wire::encode_prefix(p);
  std::array<asio::const_buffer, 4> bufs{asio::buffer(pre), asio::buffer(header),
                                         asio::buffer(payload.data(), payload.size()),
                                         asio::buffer(tag)};
  boost::system::error_code ec;
  stream_.expires_after(timeout);
  co_await asio::async_write(stream_, bufs, asio::redirect_error(use_awaitable, ec));
  if (ec) co_return io_error(ec, "send to", remote_);
  co_return result<void>{};
}

awaitable<result<frame>> channel::recv(std::chrono::milliseconds timeout) {
  if (reads_cancelled_) co_return fail(errc::cancelled, "receive from " + remote_ + ": cancelled");
  std::array<std::uint8_t, wire::prefix_bytes> pre{};
  boost::system::error_code ec;
  stream_.expires_after(timeout);
  std::size_t n = co_await asio::async_read(stream_, asio::buffer(pre), asio::redirect_error(use_awaitable, ec));
  if (ec) {
    if (ec == asio::error::eof && n > 0)
      co_return fail(errc::protocol, "receive from " + remote_ + ": truncated frame");
    co_return io_error(ec, "receive from", remote_);
  }
  auto p = wire::decode_prefix(pre);
  if (!p) co_return std::unexpected(p.error().context("receive from " + remote_));
  if (frame_limit_ && std::size_t(p->header_len) + p->payload_len > frame_limit_)
    co_return fail(errc::protocol, "receive from " + remote_ + ": a frame of " +
                                       std::to_string(std::size_t(p->header_len) + p->payload_len) +
                                       " bytes before authentication (at most " + std::to_string(frame_limit_) + ")");
  buf_.resize(std::size_t(p->header_len) + p->payload_len + wire::tag_bytes);
  stream_.expires_after(timeout);
  co_await asio::async_read(stream_, asio::buffer(buf_), asio::redirect_error(use_awaitable, ec));
  if (ec) {
    if (ec == asio::error::eof)
      co_return fail(errc::protocol, "receive from " + remote_ + ": truncated frame");
    co_return io_error(ec, "receive from", remote_);
  }
  auto all = std::span<const std::uint8_t>(buf_);
  auto header = all.first(p->header_len);
  auto payload = all.subspan(p->header_len, p->payload_len);
  auto tag = all.last(wire::tag_bytes);
  if (auto ok = recv_sealer_.open(*p, header, payload, tag); !ok)
    co_return std::unexpected(ok.error().context("receive from " + remote_));
  frame f;
  if (auto ok = wire::parse_envelope(header, f.msg); !ok)
    co_return std::unexpected(ok.error().context("receive from " + remote_));
  f.payload.assign(payload.begin(), payload.end());
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
  if (v < 0 || v > static_cast<int>(errc::busy)) return errc::peer;
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
