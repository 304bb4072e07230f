// Destination: Ready. The container was restored or started; it is Ready
// when its readiness probe (migrated.ready.* labels, ready/probe.hpp)
// answers — after its replay hook (migrated.replay) for --method replay.
// Without a probe, Ready means the process runs. A probe that never
// answers is a failed migration: Ready{ok: false} makes the source roll back.
#include "common/log.hpp"
#include "common/names.hpp"
#include "migration/destination_session.hpp"
#include "ready/probe.hpp"

namespace migrated::migration {
namespace {

std::shared_ptr<spdlog::logger> logger() { return log::get("migration"); }

}  // namespace

// The replay hook (replay only), then the probe; what answered.
awaitable<result<std::string>> destination_session::wait_for_service() {
  auto info = co_await rt_->inspect(container_);
  if (!info) co_return std::unexpected(info.error());
  if (info->status != "running") co_return fail(errc::runtime, container_ + " is " + info->status + ", not running");
  auto probe = ready::from_labels(info->labels);
  if (!probe) co_return std::unexpected(probe.error());
  if (!info->labels.contains("migrated.ready.timeout_ms")) probe->timeout = ctx_.cfg.timeouts.ready;
  if (method_ == pb::REPLAY) {
    auto hook = info->labels.find("migrated.replay");
    if (hook == info->labels.end() || hook->second.empty())
      co_return fail(errc::invalid_argument, container_ + " has no replay hook (label migrated.replay)");
    log::info(*logger(), id_, phase::replay, "{}: replay hook {}", container_, hook->second);
    const std::vector<std::string> argv{"sh", "-c", hook->second};
    auto code = co_await rt_->exec(container_, argv, ctx_.cfg.timeouts.ready);
    if (!code) co_return std::unexpected(code.error().context("replay hook"));
    if (*code != 0) co_return fail(errc::runtime, "replay hook '" + hook->second + "' exited " + std::to_string(*code));
  }
  const std::string what = probe->type == ready::probe::kind::none ? "process running" : probe->describe();
  enter(state::waiting_ready, what);
  runtime::runtime* rt = rt_;
  const std::string id = container_;
  const auto timeout = probe->timeout;
  ready::exec_fn exec = [rt, id, timeout](const std::vector<std::string>& argv) -> awaitable<result<int>> {
    co_return co_await rt->exec(id, argv, timeout);
  };
  if (auto waited = co_await ready::wait_ready(*probe, exec); !waited) co_return std::unexpected(waited.error());
  co_return what;
}

awaitable<result<void>> destination_session::become_ready(const stopwatch& since) {
  auto outcome = co_await wait_for_service();
  pb::Envelope env;
  auto* r = env.mutable_ready();
  r->set_migration_id(id_);
  r->set_ready_ms(since.ms());
  r->set_ok(outcome.has_value());
  if (outcome) {
    r->set_probe(*outcome);
    stats_.ready_ms = since.ms();
    stats_.ready_probe = *outcome;
  } else {
    r->set_code(transport::to_code(outcome.error().code));
    r->set_message(outcome.error().message);
    log::warn(*logger(), id_, phase::ready, "{}", outcome.error().message);
  }
  if (auto sent = co_await ch_->send(env); !sent) co_return sent;
  if (!outcome) co_return std::unexpected(outcome.error());
  co_return result<void>{};
}

}  // namespace migrated::migration
