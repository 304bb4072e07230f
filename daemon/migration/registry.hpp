// The migrations this node takes part in — as source or destination,
// running and finished — for Status replies, Abort and a graceful stop. A
// session registers itself, updates its report as it goes and installs its
// cancel action; Abort (one migration) and stop_all (the daemon is
// stopping) run it with a reason. What a session does when cancelled is
// its own affair: it never gives up a commit exchange in flight. Finished
// entries are kept (bounded) so status can report them. A migration this
// node was the source of ends with one summary line in the log (its
// CONTAINER, PEER, METHOD, RESULT, DOWNTIME_MS: log::summary). Every
// finished report of either role also goes to the node's history on disk
// (history.hpp) and to its metrics (metrics.hpp), when it keeps them.
#pragma once

#include <deque>
#include <functional>
#include <map>
#include <string>
#include <utility>

#include "common/error.hpp"
#include "migrated.pb.h"
#include "migration/history.hpp"
#include "migration/metrics.hpp"

namespace migrated::migration {

using cancel_fn = std::function<void(const std::string& reason)>;

class registry {
 public:
  static constexpr std::size_t max_finished = 200;

  // `node`: this node's name, which a report names as its source.
  explicit registry(std::string node = {}) : node_(std::move(node)) {}

  std::string new_id() const;  // "m-" + 12 hex digits
  // Where finished reports are kept on disk (none: only the last
  // max_finished, in memory).
  void keep_history(history* h) { history_ = h; }
  const history* past() const { return history_; }
  void count_in(metrics* m) { metrics_ = m; }
  void add(const pb::Report& report, cancel_fn cancel = nullptr);
  void update(const pb::Report& report);
  void finish(const pb::Report& report);

  // Controller Abort of a migration this node is the source of:
  // errc::not_found for unknown ids, errc::invalid_argument when finished.
  result<void> abort(const std::string& id);
  // Runs the cancel action of one running migration, whatever its phase
  // (the session decides what it may still give up); false when none runs.
  bool give_up(const std::string& id, const std::string& reason);
  // Cancels every running migration (both roles) with `reason`.
  void stop_all(const std::string& reason);
  // Migrations not finished yet, of both roles.
  std::size_t running() const;

  const pb::Report* find(const std::string& id) const;
  std::vector<pb::Report> all() const;
  // true while a migration of `container` is in flight on this node.
  bool busy(const std::string& container) const;

 private:
  struct entry {
    pb::Report report;
    cancel_fn cancel;
    bool finished = false;
  };
  std::string node_;
  history* history_ = nullptr;
  metrics* metrics_ = nullptr;
  std::map<std::string, entry> entries_;
  std::deque<std::string> finished_order_;
};

}  // namespace migrated::migration
