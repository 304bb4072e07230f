// Controller commands — Migrate, Prepare, Status, Abort — as this node
// carries them out, whether they came over TCP or as a UDP datagram. A
// migration runs as its own coroutine; the command returns its id at once,
// and whoever asked may follow its progress and report.
#pragma once

#include <functional>
#include <memory>

#include "common/names.hpp"
#include "migration/context.hpp"
#include "migration/source_session.hpp"

namespace migrated::server {

class commands {
 public:
  commands(migration::node_context& ctx, asio::any_io_executor io) : ctx_(ctx), io_(std::move(io)) {}

  using done_fn = std::function<void(const pb::Report&)>;

  // Starts a migration (or a prepare); errors only for requests refused
  // outright (bad method, container already migrating, shutting down).
  result<std::string> start_migrate(const pb::MigrateRequest& req, migration::progress_fn progress, done_fn done);
  result<std::string> start_prepare(const pb::PrepareRequest& req, done_fn done);
  // A post-copy whose daemon died while it served the pages, from its
  // journal record (recover_journal found its copy still frozen).
  void resume_postcopy(const migration::journal::entry& e);

  pb::StatusReply status(const pb::StatusRequest& req) const;
  pb::HistoryReply history(const pb::HistoryRequest& req) const;
  result<void> abort(const pb::AbortRequest& req);

  // A command every transport answers the same way: Migrate (not followed),
  // Prepare, Status or Abort.
  static bool is_command(const pb::Envelope& req);
  // Carries out such a command; the answer is a Reply (with the migration
  // id) or a StatusReply.
  pb::Envelope answer(const pb::Envelope& req);

  // Refuse new work; `idle` is true once no session this node started runs.
  void drain() { draining_ = true; }
  bool idle() const { return running_ == 0; }

 private:
  result<void> admit(const std::string& container) const;
  void spawn(std::shared_ptr<migration::source_session> session, const std::string& id, done_fn done);

  migration::node_context& ctx_;
  asio::any_io_executor io_;
  std::size_t running_ = 0;
  bool draining_ = false;
  std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
};

}  // namespace migrated::server
