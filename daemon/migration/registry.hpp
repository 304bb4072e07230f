// The migrations this node knows about — running and finished — for Status
// replies and for Abort. A session registers itself, updates its report as
// it goes and installs a cancel action (closing its peer link) that Abort
// triggers. Finished entries are kept (bounded) so status can report them.
#pragma once

#include <deque>
#include <functional>
#include <map>
#include <string>

#include "common/error.hpp"
#include "migrated.pb.h"

namespace migrated::migration {

class registry {
 public:
  static constexpr std::size_t max_finished = 200;

  std::string new_id() const;  // "m-" + 12 hex digits
  void add(const pb::Report& report);
  void update(const pb::Report& report);
  void finish(const pb::Report& report);

  // Installs/clears the action Abort runs for a migration.
  void on_cancel(const std::string& id, std::function<void()> cancel);
  // errc::not_found for unknown ids; errc::invalid_argument when finished.
  result<void> abort(const std::string& id);
  bool abort_requested(const std::string& id) const;

  const pb::Report* find(const std::string& id) const;
  std::vector<pb::Report> all() const;
  // true while a migration of `container` is in flight on this node.
  bool busy(const std::string& container) const;

 private:
  struct entry {
    pb::Report report;
    std::function<void()> cancel;
    bool abort_requested = false;
    bool finished = false;
  };
  std::map<std::string, entry> entries_;
  std::deque<std::string> finished_order_;
};

}  // namespace migrated::migration
