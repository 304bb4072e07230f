// TCP connections (see tcp_server.hpp). A connection that fails the
// handshake is logged once and dropped; nothing it sent is acted upon.
#include "server/tcp_server.hpp"

#include <algorithm>
#include <optional>

#include "common/log.hpp"
#include "migration/destination_session.hpp"
#include "migration/measure.hpp"
#include "migration/outcome_query.hpp"
#include "migration/recovery.hpp"
#include "server/outbox.hpp"
#include "server/permissions.hpp"

namespace migrated::server {
namespace {

std::shared_ptr<spdlog::logger> logger() { return log::get("server"); }

// Out of descriptors (or memory) the accept fails at once, again and again:
// wait this long before the next one, and say so at most this often.
constexpr auto accept_backoff = std::chrono::milliseconds(100);
constexpr auto accept_warning_every = std::chrono::seconds(10);

connections::limits limits_of(const config& cfg) {
  return {cfg.limits.pending_connections, cfg.limits.pending_per_source, cfg.limits.connections};
}

}  // namespace

tcp_server::tcp_server(migration::node_context& ctx, commands& cmds, tcp::acceptor acceptor)
    : ctx_(ctx), cmds_(cmds), acceptor_(std::move(acceptor)), conns_(limits_of(ctx.cfg)) {}

void tcp_server::stop() {
  boost::system::error_code ec;
  acceptor_.close(ec);
}

awaitable<void> tcp_server::run() {
  asio::steady_timer backoff(acceptor_.get_executor());
  auto last_warning = std::chrono::steady_clock::time_point{};
  std::uint64_t failures = 0;
  for (;;) {
    boost::system::error_code ec;
    tcp::socket socket = co_await acceptor_.async_accept(asio::redirect_error(use_awaitable, ec));
    if (ec == asio::error::operation_aborted || !acceptor_.is_open()) co_return;
    if (ec) {
      ++failures;
      if (std::chrono::steady_clock::now() - last_warning >= accept_warning_every) {
        logger()->warn("accept: {} ({} times since the last warning); retrying every {} ms", ec.message(), failures,
                       accept_backoff.count());
        last_warning = std::chrono::steady_clock::now();
        failures = 0;
      }
      backoff.expires_after(accept_backoff);
      co_await backoff.async_wait(asio::redirect_error(use_awaitable, ec));
      continue;
    }
    asio::co_spawn(acceptor_.get_executor(), serve(std::move(socket)), [](std::exception_ptr e) {
      if (!e) return;
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& ex) {
        logger()->critical("connection handler crashed: {}", ex.what());
      }
    });
  }
}

// The connection is registered (connections.hpp) for exactly as long as
// this coroutine holds its channel: the entry's close action refers to it.
awaitable<void> tcp_server::serve(tcp::socket socket) {
  boost::system::error_code ec;
  const std::string source = socket.remote_endpoint(ec).address().to_string();
  // No TLS state until the ClientHello is all there (tls.hpp); then, until
  // the handshake is done, limits.handshake_ms in all and 16 KiB a frame.
  std::optional<transport::channel> ch;
  const auto cid = conns_.arrive(source, [&ch, &socket] {
    boost::system::error_code ignored;
    if (ch) ch->close();
    else socket.close(ignored);
  });
  try {
    const auto arrived = std::chrono::steady_clock::now();
    auto hello = co_await transport::await_client_hello(socket, ctx_.cfg.limits.handshake);
    if (hello) {
      const auto waited = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - arrived);
      ch.emplace(std::move(socket), ctx_.tls, ctx_.cfg.limits.handshake);
      co_await converse(*ch, cid, std::max(ctx_.cfg.limits.handshake - waited, std::chrono::milliseconds(1)));
    } else if (hello.error().code != errc::cancelled) {
      logger()->warn("connection from {} refused: {}", source, hello.error().message);
    }
  } catch (...) {
    conns_.leave(cid);
    throw;
  }
  conns_.leave(cid);
}

awaitable<void> tcp_server::converse(transport::channel& ch, connections::id cid,
                                     std::chrono::milliseconds handshake_left) {
  if (auto ok = co_await transport::handshake_server(ch, ctx_.me, handshake_left); !ok) {
    logger()->warn("connection from {} refused: {}", ch.remote(), ok.error().message);
    co_return;
  }
  if (!conns_.authenticate(cid)) {
    const result<void> busy = fail(errc::busy, ctx_.cfg.node_name + " holds " + std::to_string(conns_.authenticated()) +
                                                   " connections (limits.connections)");
    co_await ch.reply(0, busy);
    logger()->warn("{} ({}) refused: {}", ch.peer.node(), ch.remote(), busy.error().message);
    co_return;
  }
  ch.set_io_timeout(ctx_.cfg.timeouts.io);
  logger()->debug("{} ({}) connected from {}", ch.peer.node(),
                  ch.peer.role() == pb::ROLE_CONTROLLER ? "controller" : "daemon", ch.remote());
  for (;;) {
    auto f = co_await ch.recv(ctx_.cfg.limits.idle);
    if (!f) {
      if (f.error().code != errc::peer) logger()->warn("{}: {}", ch.peer.node(), f.error().message);
      co_return;
    }
    if (auto allowed = permitted(f->msg, ch.who, ctx_.cfg); !allowed) {
      logger()->warn("{} ({}) refused: {}", ch.who.name, ch.remote(), allowed.error().message);
      co_await ch.reply(f->msg.request_id(), allowed);
      continue;
    }
    if (f->msg.has_pull()) {
      migration::destination_session session(ctx_, ch);
      co_await session.run(f->msg);
      co_return;
    }
    if (f->msg.has_page_link_open() || f->msg.has_session_resume()) {
      auto* meeting = f->msg.has_page_link_open() ? ctx_.links : ctx_.resumes;
      const auto& mid = f->msg.has_page_link_open() ? f->msg.page_link_open().migration_id()
                                                    : f->msg.session_resume().migration_id();
      if (meeting) {
        co_await meeting->arrive(ch, f->msg.request_id(), mid);
      } else {
        const result<void> none = fail(errc::unsupported, "no post-copy on " + ctx_.cfg.node_name);
        co_await ch.reply(f->msg.request_id(), none);
      }
      co_return;
    }
    if (f->msg.has_probe()) {
      if (auto ok = co_await migration::answer_probe(ch, *f); !ok)
        logger()->warn("bandwidth probe from {}: {}", ch.peer.node(), ok.error().message);
      co_return;
    }
    if (f->msg.has_measure()) {
      pb::Envelope env;
      env.set_request_id(f->msg.request_id());
      auto m = co_await migration::measure(ctx_, f->msg.measure());
      if (!m) {
        const result<void> failed = std::unexpected(m.error());
        co_await ch.reply(f->msg.request_id(), failed);
        continue;
      }
      *env.mutable_measure_reply() = std::move(*m);
      co_await ch.send(env);
      continue;
    }
    if (f->msg.has_outcome_query()) {
      const pb::Envelope answer = migration::answer_outcome(ctx_, f->msg, ch.peer.node());
      co_await ch.send(answer);
      continue;
    }
    if (f->msg.has_recover()) {
      auto pid = co_await migration::recover(ctx_, f->msg.recover().migration_id());
      const result<void> outcome = pid ? result<void>{} : std::unexpected(pid.error());
      co_await ch.reply(f->msg.request_id(), outcome, f->msg.recover().migration_id());
      continue;
    }
    if (f->msg.has_migrate() && f->msg.migrate().follow()) {
      co_await follow_migration(ch, f->msg);
      continue;
    }
    const pb::Envelope answer = cmds_.answer(f->msg);
    co_await ch.send(answer);
  }
}

awaitable<void> tcp_server::follow_migration(transport::channel& ch, const pb::Envelope& req) {
  auto box = std::make_shared<outbox>(co_await asio::this_coro::executor);
  const auto rid = req.request_id();
  auto progress = [box, rid](const pb::Progress& p) {
    pb::Envelope env;
    env.set_request_id(rid);
    *env.mutable_progress() = p;
    box->push(std::move(env));
  };
  auto done = [box, rid](const pb::Report& r) {
    pb::Envelope env;
    env.set_request_id(rid);
    *env.mutable_report() = r;
    box->push(std::move(env));
    box->close();
  };
  auto id = cmds_.start_migrate(req.migrate(), progress, done);
  if (!id) {
    const result<void> refused = std::unexpected(id.error());
    co_await ch.reply(rid, refused);
    co_return;
  }
  ++following_;
  if (co_await ch.reply(rid, {}, *id)) co_await box->pump(ch);
  else box->close();  // the controller went away: the migration goes on without it
  --following_;
}

}  // namespace migrated::server
