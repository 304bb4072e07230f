// Asking and answering what became of a migration (see outcome_query.hpp).
#include "migration/outcome_query.hpp"

#include "common/log.hpp"
#include "common/names.hpp"
#include "migration/destination.hpp"
#include "migration/source_session.hpp"

namespace migrated::migration {

awaitable<result<outcome>> ask_outcome(node_context& ctx, const std::string& destination,
                                       const std::string& migration_id) {
  auto ch = co_await connect_destination(ctx, destination);
  if (!ch) co_return std::unexpected(ch.error().context("asking " + destination + " about " + migration_id));
  pb::Envelope env;
  env.set_request_id(1);
  env.mutable_outcome_query()->set_migration_id(migration_id);
  if (auto sent = co_await ch->send(env); !sent)
    co_return std::unexpected(sent.error().context("asking " + destination + " about " + migration_id));
  auto f = co_await ch->recv();
  ch->close();
  if (!f) co_return std::unexpected(f.error().context("asking " + destination + " about " + migration_id));
  if (f->msg.has_reply() && !f->msg.reply().ok())  // a destination that does not know the question
    co_return std::unexpected(transport::to_result(f->msg.reply()).error().context(destination));
  if (!f->msg.has_outcome_reply()) co_return fail(errc::protocol, destination + ": expected OutcomeReply");
  const auto& r = f->msg.outcome_reply();
  if (r.code() != pb::OK)
    co_return fail(transport::from_code(r.code()), destination + " cannot tell what became of " + migration_id + ": " +
                                                       r.message());
  co_return outcome{r.known(), r.committed()};
}

awaitable<result<outcome>> ask_outcome_until(node_context& ctx, const std::string& destination,
                                             const std::string& migration_id, std::chrono::milliseconds limit,
                                             const std::function<bool()>& stop) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  asio::steady_timer pause(co_await asio::this_coro::executor);
  for (;;) {
    auto answer = co_await ask_outcome(ctx, destination, migration_id);
    if (answer || std::chrono::steady_clock::now() >= deadline || (stop && stop())) co_return answer;
    log::info(*log::get("migration"), migration_id, phase::commit, "{}; asking again", answer.error().message);
    pause.expires_after(std::chrono::seconds(1));
    boost::system::error_code ec;
    co_await pause.async_wait(asio::redirect_error(use_awaitable, ec));
    if (stop && stop()) co_return answer;
  }
}

pb::Envelope answer_outcome(node_context& ctx, const pb::Envelope& query, const std::string& asking_node) {
  const auto& id = query.outcome_query().migration_id();
  pb::Envelope env;
  env.set_request_id(query.request_id());
  auto* r = env.mutable_outcome_reply();
  r->set_migration_id(id);
  auto refuse = [&](const error& e) {
    r->set_code(transport::to_code(e.code));
    r->set_message(e.message);
    return env;
  };
  if (!ctx.journal) return refuse(error{errc::unsupported, ctx.cfg.node_name + " keeps no journal"});
  auto e = ctx.journal->read(id);
  if (!e && e.error().code == errc::not_found) return env;  // never here, or its copy is gone
  if (!e) return refuse(e.error());
  if (e->side != journal::role::destination) return env;
  if (e->peer != asking_node)
    return refuse(error{errc::invalid_argument, id + " came from " + e->peer + ", not " + asking_node});
  r->set_known(true);
  if (e->state == journal::step::committed) {
    r->set_committed(true);
    return env;
  }
  // Not committed, and now never: the source has given it up.
  if (ctx.migrations.give_up(id, asking_node + " asked what became of it: given up"))
    log::warn(*log::get("migration"), id, phase::rollback, "{} asked for the outcome: its copy here goes", asking_node);
  return env;
}

}  // namespace migrated::migration
