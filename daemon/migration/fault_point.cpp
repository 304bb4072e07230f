// Session fault points (see fault_point.hpp). Only the I/O thread runs
// sessions, so the table of paused migrations needs no lock.
#include "migration/fault_point.hpp"

#include <signal.h>

#include <map>
#include <stdexcept>

#include "common/fault.hpp"
#include "common/log.hpp"

namespace migrated::migration::fault_point {
namespace {

constexpr auto pause_limit = std::chrono::seconds(120);
constexpr auto wait_time = std::chrono::seconds(5);  // ample for a test that polls its log every 0.2 s

std::map<std::string, asio::steady_timer*>& paused() {
  static std::map<std::string, asio::steady_timer*> table;
  return table;
}

}  // namespace

awaitable<void> reach(const std::string& migration_id, std::string_view point) {
  const std::string p(point);
  if (fault_injected(p + ".die")) {
    log::warn(*log::get("migration"), migration_id, point, "fault point {}.die: killing the daemon", p);
    ::raise(SIGKILL);
  }
  if (fault_injected(p + ".throw")) throw std::runtime_error("fault point " + p + ".throw");
  const bool wait = fault_injected(p + ".wait");
  if (!wait && !fault_injected(p + ".pause")) co_return;
  asio::steady_timer timer(co_await asio::this_coro::executor, wait ? wait_time : pause_limit);
  paused()[migration_id] = &timer;
  log::warn(*log::get("migration"), migration_id, point, "fault point {}: {}", p, wait ? "waiting" : "paused");
  boost::system::error_code ec;
  co_await timer.async_wait(asio::redirect_error(use_awaitable, ec));
  paused().erase(migration_id);
  log::info(*log::get("migration"), migration_id, point, "fault point {}: resumed", p);
}

void resume(const std::string& migration_id) {
  auto it = paused().find(migration_id);
  if (it != paused().end()) it->second->cancel();
}

}  // namespace migrated::migration::fault_point
