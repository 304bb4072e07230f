// Registry of migrations (see registry.hpp). Single-threaded: only the I/O
// thread touches it.
#include "migration/registry.hpp"

#include <array>
#include <chrono>
#include <cstdio>

#include "common/auth.hpp"
#include "common/hash.hpp"
#include "common/log.hpp"
#include "common/names.hpp"

namespace migrated::migration {

std::string registry::new_id() const {
  auto r = auth::random_bytes(6);
  return "m-" + to_hex(r);
}

void registry::add(const pb::Report& report, cancel_fn cancel) {
  auto& e = entries_[report.id()];
  e.report = report;
  e.cancel = std::move(cancel);
  e.finished = false;
  if (metrics_) metrics_->running(running());
}

void registry::update(const pb::Report& report) {
  auto it = entries_.find(report.id());
  if (it != entries_.end()) it->second.report = report;
}

namespace {

// The log's summary of a finished migration, as its source saw it (the
// destination does not know the downtime).
void log_summary(const pb::Report& r) {
  char downtime[32];
  std::snprintf(downtime, sizeof downtime, "%.0f", r.downtime_ms());
  const std::array<log::field, 5> fields{{{"CONTAINER", r.container()},
                                          {"PEER", r.destination()},
                                          {"METHOD", std::string(method_name(r.method()))},
                                          {"RESULT", std::string(result_name(r.result()))},
                                          {"DOWNTIME_MS", downtime}}};
  const bool ok = r.result() == pb::RESULT_OK;
  std::string message = "container " + r.container() + " to " + r.destination() + ", method " +
                        std::string(method_name(r.method())) + ": " + std::string(result_name(r.result()));
  if (ok) message += ", downtime " + std::string(downtime) + " ms";
  if (!r.error().empty()) message += ": " + r.error();
  log::summary(*log::get("migration"), ok ? spdlog::level::info : spdlog::level::err, r.id(), fields, message);
}

}  // namespace

void registry::finish(const pb::Report& report) {
  auto& e = entries_[report.id()];
  e.report = report;
  e.cancel = nullptr;
  if (!e.finished) {
    e.finished = true;
    finished_order_.push_back(report.id());
    if (!node_.empty() && report.source() == node_) log_summary(report);
    if (history_ && !report.id().empty()) {
      const auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                           std::chrono::system_clock::now().time_since_epoch()).count();
      if (auto kept = history_->add(report, now); !kept) log::get("migration")->warn("{}", kept.error().message);
    }
    if (metrics_) {
      metrics_->finished(report, !node_.empty() && report.source() == node_);
      metrics_->running(running());
    }
  }
  while (finished_order_.size() > max_finished) {
    entries_.erase(finished_order_.front());
    finished_order_.pop_front();
  }
}

result<void> registry::abort(const std::string& id) {
  auto it = entries_.find(id);
  if (it == entries_.end()) return fail(errc::not_found, "no migration " + id + " on this node");
  if (it->second.finished) return fail(errc::invalid_argument, "migration " + id + " has already finished");
  // Past Commit the container belongs to the destination: nothing to give up.
  const auto& phase = it->second.report.phase();
  if (phase == "commit" || phase == "release")
    return fail(errc::invalid_argument, "migration " + id + " is committing: too late to abort");
  if (it->second.cancel) {
    auto cancel = it->second.cancel;  // it may finish the entry
    cancel("aborted by the controller");
  }
  return {};
}

bool registry::give_up(const std::string& id, const std::string& reason) {
  auto it = entries_.find(id);
  if (it == entries_.end() || it->second.finished || !it->second.cancel) return false;
  auto cancel = it->second.cancel;  // it may finish the entry
  cancel(reason);
  return true;
}

void registry::stop_all(const std::string& reason) {
  std::vector<cancel_fn> cancels;
  for (auto& [id, e] : entries_)
    if (!e.finished && e.cancel) cancels.push_back(e.cancel);
  for (auto& c : cancels) c(reason);
}

std::size_t registry::running() const {
  std::size_t n = 0;
  for (auto& [id, e] : entries_) n += e.finished ? 0 : 1;
  return n;
}

const pb::Report* registry::find(const std::string& id) const {
  auto it = entries_.find(id);
  return it == entries_.end() ? nullptr : &it->second.report;
}

std::vector<pb::Report> registry::all() const {
  std::vector<pb::Report> out;
  for (auto& [id, e] : entries_) out.push_back(e.report);
  return out;
}

bool registry::busy(const std::string& container) const {
  for (auto& [id, e] : entries_)
    if (!e.finished && e.report.container() == container) return true;
  return false;
}

}  // namespace migrated::migration
