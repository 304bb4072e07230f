// Carrying out controller commands (see commands.hpp). Each session is kept
// alive by the coroutine that runs it; `running_` lets a graceful stop wait
// for them.
#include "server/commands.hpp"

#include <chrono>

#include "common/log.hpp"

namespace migrated::server {

result<void> commands::admit(const std::string& container) const {
  if (draining_) return fail(errc::busy, ctx_.cfg.node_name + " is shutting down");
  if (container.empty()) return fail(errc::invalid_argument, "no container named");
  if (ctx_.migrations.busy(container))
    return fail(errc::busy, "a migration of " + container + " is already in progress");
  return {};
}

// The session catches what it throws (and rolls back); an exception that
// still escapes is a bug in the code around it: logged, the migration ended
// in the registry so its container is free again, the controller answered.
void commands::spawn(std::shared_ptr<migration::source_session> session, const std::string& id, done_fn done) {
  ++running_;
  asio::co_spawn(
      io_,
      [this, session, done]() -> awaitable<void> {
        pb::Report report = co_await session->run();
        --running_;
        if (done) done(report);
      },
      [this, id, done](std::exception_ptr e) {
        if (!e) return;
        --running_;
        std::string what = "unknown exception";
        try {
          std::rethrow_exception(e);
        } catch (const std::exception& ex) {
          what = ex.what();
        } catch (...) {
        }
        log::get("server")->critical("[{}] migration session crashed: {}", id, what);
        pb::Report report;
        if (const auto* known = ctx_.migrations.find(id)) report = *known;
        report.set_id(id);
        report.set_result(pb::RESULT_FAILED);
        report.set_error("internal error in the migration session: " + what);
        ctx_.migrations.finish(report);
        if (done) done(report);
      });
}

result<std::string> commands::start_migrate(const pb::MigrateRequest& req, migration::progress_fn progress,
                                            done_fn done) {
  if (auto ok = admit(req.container()); !ok) return std::unexpected(ok.error());
  if (req.destination().empty()) return fail(errc::invalid_argument, "no destination given");
  std::string id = ctx_.migrations.new_id();
  auto session = std::make_shared<migration::source_session>(ctx_, req, id, std::move(progress));
  spawn(session, id, std::move(done));
  return id;
}

result<std::string> commands::start_prepare(const pb::PrepareRequest& req, done_fn done) {
  if (auto ok = admit(req.container()); !ok) return std::unexpected(ok.error());
  if (req.destination().empty()) return fail(errc::invalid_argument, "no destination given");
  pb::MigrateRequest as_migrate;
  as_migrate.set_container(req.container());
  as_migrate.set_destination(req.destination());
  as_migrate.set_method(pb::COLD);
  as_migrate.set_runtime(req.runtime());
  std::string id = ctx_.migrations.new_id();
  auto session = std::make_shared<migration::source_session>(ctx_, as_migrate, id, nullptr, true);
  spawn(session, id, std::move(done));
  return id;
}

void commands::resume_postcopy(const migration::journal::entry& e) {
  spawn(std::make_shared<migration::source_session>(ctx_, e), e.migration_id, nullptr);
}

pb::StatusReply commands::status(const pb::StatusRequest& req) const {
  pb::StatusReply reply;
  reply.set_node(ctx_.cfg.node_name);
  *reply.mutable_caps() = ctx_.me.caps;
  reply.set_uptime_s(std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count());
  if (!req.migration_id().empty()) {
    if (auto* r = ctx_.migrations.find(req.migration_id())) *reply.add_migrations() = *r;
  } else {
    for (auto& r : ctx_.migrations.all()) *reply.add_migrations() = r;
  }
  return reply;
}

pb::HistoryReply commands::history(const pb::HistoryRequest& req) const {
  pb::HistoryReply reply;
  reply.set_node(ctx_.cfg.node_name);
  if (const auto* past = ctx_.migrations.past())
    for (auto& r : past->newest(req.limit())) *reply.add_migrations() = std::move(r);
  return reply;
}

result<void> commands::abort(const pb::AbortRequest& req) { return ctx_.migrations.abort(req.migration_id()); }

bool commands::is_command(const pb::Envelope& req) {
  return req.has_migrate() || req.has_prepare() || req.has_status() || req.has_abort_request();
}

pb::Envelope commands::answer(const pb::Envelope& req) {
  const auto rid = req.request_id();
  auto started = [rid](const result<std::string>& id) {
    return transport::make_reply(rid, id ? result<void>{} : std::unexpected(id.error()), id.value_or(""));
  };
  if (req.has_migrate()) return started(start_migrate(req.migrate(), nullptr, nullptr));
  if (req.has_prepare()) return started(start_prepare(req.prepare(), nullptr));
  if (req.has_abort_request())
    return transport::make_reply(rid, abort(req.abort_request()), req.abort_request().migration_id());
  if (req.has_status()) {
    pb::Envelope env;
    env.set_request_id(rid);
    *env.mutable_status_reply() = status(req.status());
    return env;
  }
  if (req.has_history()) {  // (TCP only: a datagram holds too few reports)
    pb::Envelope env;
    env.set_request_id(rid);
    *env.mutable_history_reply() = history(req.history());
    return env;
  }
  return transport::make_reply(rid, fail(errc::protocol, "unexpected message #" + std::to_string(req.body_case())));
}

}  // namespace migrated::server
