// UDP commands (see udp_server.hpp).
#include "server/udp_server.hpp"

#include "common/log.hpp"
#include "server/permissions.hpp"

namespace migrated::server {
namespace {

std::shared_ptr<spdlog::logger> logger() { return log::get("server"); }

}  // namespace

udp_server::udp_server(migration::node_context& ctx, commands& cmds, udp::socket socket)
    : ctx_(ctx), cmds_(cmds), socket_(std::move(socket)) {}

void udp_server::stop() {
  boost::system::error_code ec;
  socket_.close(ec);
}

pb::Envelope udp_server::handle(const pb::Envelope& req, const node_identity& sender) {
  if (auto allowed = permitted(req, sender, ctx_.cfg); !allowed) return transport::make_reply(req.request_id(), allowed);
  if (!commands::is_command(req))
    return transport::make_reply(req.request_id(),
                                 fail(errc::unsupported, "this command is not accepted over UDP (use TCP)"));
  pb::Envelope out = cmds_.answer(req);  // a Migrate here is never followed
  // Keep the answer inside one datagram: the newest migrations first.
  if (out.has_status_reply()) {
    auto* status = out.mutable_status_reply();
    // Room for the certificate and signature around it.
    constexpr std::size_t room = datagram::max_datagram_bytes - credentials::max_certificate_bytes - 1024;
    while (out.ByteSizeLong() > room && status->migrations_size() > 0)
      status->mutable_migrations()->DeleteSubrange(0, 1);
  }
  return out;
}

awaitable<void> udp_server::run() {
  std::vector<std::uint8_t> buf(datagram::max_datagram_bytes + 1);
  for (;;) {
    udp::endpoint from;
    boost::system::error_code ec;
    std::size_t n = co_await socket_.async_receive_from(asio::buffer(buf), from,
                                                        asio::redirect_error(use_awaitable, ec));
    if (ec == asio::error::operation_aborted || !socket_.is_open()) co_return;
    if (ec) {
      logger()->warn("udp receive: {}", ec.message());
      continue;
    }
    auto now = datagram::clock::now();
    auto opened = datagram::open(ctx_.creds, std::span(buf.data(), n), guard_, now);
    if (!opened) {
      logger()->warn("udp datagram from {}:{} refused: {}", from.address().to_string(), from.port(),
                     opened.error().message);
      continue;
    }
    logger()->debug("udp command #{} from {} ({})", opened->body.body_case(), opened->sender.name,
                    from.address().to_string());
    auto reply = handle(opened->body, opened->sender);
    if (reply.has_reply() && reply.reply().code() == pb::DENIED)
      logger()->warn("udp command from {} ({}) refused: {}", opened->sender.name, from.address().to_string(),
                     reply.reply().message());
    auto bytes = datagram::seal(ctx_.creds, reply, datagram::clock::now());
    co_await socket_.async_send_to(asio::buffer(bytes), from, asio::redirect_error(use_awaitable, ec));
    if (ec) logger()->warn("udp reply to {}: {}", from.address().to_string(), ec.message());
  }
}

}  // namespace migrated::server
