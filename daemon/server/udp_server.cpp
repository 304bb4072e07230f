// UDP commands (see udp_server.hpp).
#include "server/udp_server.hpp"

#include "common/log.hpp"

namespace migrated::server {
namespace {

std::shared_ptr<spdlog::logger> logger() { return log::get("server"); }

void set_reply(pb::Envelope& env, std::uint64_t rid, const result<void>& outcome, const std::string& id) {
  auto* r = env.mutable_reply();
  r->set_ok(outcome.has_value());
  r->set_request_id(rid);
  r->set_migration_id(id);
  if (!outcome) {
    r->set_code(static_cast<pb::Code>(static_cast<int>(outcome.error().code)));
    r->set_message(outcome.error().message);
  }
}

}  // namespace

udp_server::udp_server(migration::node_context& ctx, commands& cmds, udp::socket socket)
    : ctx_(ctx), cmds_(cmds), socket_(std::move(socket)) {}

void udp_server::stop() {
  boost::system::error_code ec;
  socket_.close(ec);
}

pb::Envelope udp_server::handle(const pb::Envelope& req) {
  pb::Envelope out;
  const auto rid = req.request_id();
  out.set_request_id(rid);
  if (req.has_migrate()) {
    auto id = cmds_.start_migrate(req.migrate(), nullptr, nullptr);
    set_reply(out, rid, id ? result<void>{} : std::unexpected(id.error()), id.value_or(""));
  } else if (req.has_prepare()) {
    auto id = cmds_.start_prepare(req.prepare(), nullptr);
    set_reply(out, rid, id ? result<void>{} : std::unexpected(id.error()), id.value_or(""));
  } else if (req.has_status()) {
    auto reply = cmds_.status(req.status());
    // Keep the answer inside one datagram: the newest migrations first.
    while (reply.ByteSizeLong() > datagram::max_datagram_bytes - 512 && reply.migrations_size() > 0)
      reply.mutable_migrations()->DeleteSubrange(0, 1);
    *out.mutable_status_reply() = std::move(reply);
  } else if (req.has_abort_request()) {
    set_reply(out, rid, cmds_.abort(req.abort_request()), req.abort_request().migration_id());
  } else {
    set_reply(out, rid, fail(errc::unsupported, "this command is not accepted over UDP (use TCP)"), "");
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
    auto opened = datagram::open(ctx_.psk, std::span(buf.data(), n), guard_, now);
    if (!opened) {
      logger()->warn("udp datagram from {}:{} refused: {}", from.address().to_string(), from.port(),
                     opened.error().message);
      continue;
    }
    logger()->debug("udp command #{} from {} ({})", opened->body.body_case(), opened->sender,
                    from.address().to_string());
    auto reply = handle(opened->body);
    auto bytes = datagram::seal(ctx_.psk, ctx_.cfg.node_name, reply, datagram::clock::now());
    co_await socket_.async_send_to(asio::buffer(bytes), from, asio::redirect_error(use_awaitable, ec));
    if (ec) logger()->warn("udp reply to {}: {}", from.address().to_string(), ec.message());
  }
}

}  // namespace migrated::server
