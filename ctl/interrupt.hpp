// Ctrl-C while `migratectl migrate` follows a migration on a terminal. The
// controller is not what moves the container — the daemon is — so an
// interrupt asks what is meant instead of just exiting:
//   a  abort: the daemon gives the migration up; the container stays at
//      (or goes back to) the source, and the report that follows says so
//   d  detach: migratectl exits 0 and the migration goes on; `migratectl
//      status ID` finds it later
//   anything else (or end of input): keep following
// Without a terminal on both stdin and stderr (a script), SIGINT keeps its
// default: migratectl ends, the migration goes on.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "asio.hpp"
#include "ctl/client.hpp"

namespace migrated::ctl {

class interrupt_prompt {
 public:
  // `on_detach` ends the following (it closes the channel the report would
  // come on); `before_question` clears a progress line left in place.
  interrupt_prompt(asio::any_io_executor ex, client& c, std::string migration_id, std::function<void()> on_detach,
                   std::function<void()> before_question);
  ~interrupt_prompt();
  bool detached() const { return *detached_; }

 private:
  struct state;
  std::shared_ptr<state> state_;
  std::shared_ptr<bool> detached_;
};

}  // namespace migrated::ctl
