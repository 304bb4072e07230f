// After a crash: what the journal's unfinished records say to do, and doing
// it when the daemon starts, before it serves anyone (docs/design.md,
// "After a crash"). The rules, one per record:
//
//   source accepted              the container was never stopped: thaw it
//                                if a warm-up dump left it frozen, else nothing
//   source stopping, stopped     Commit was never sent, so the destination
//                                cannot own it: bring it back here (thaw, or
//                                its images, or a fresh start)
//   source stopped, post-copy    the destination may run it, its process
//     or hybrid, still frozen    waiting on its pages: take the migration up
//                                again (source_resume.cpp), which thaws it
//                                here if the destination no longer waits
//   source committing            only the destination knows: ask it
//                                (OutcomeQuery) until it answers or
//                                timeouts.outcome_ms passes — committed: release
//                                the copy here; not committed: bring it back;
//                                no answer: keep it frozen with its images and
//                                report it lost (`migratectl recover`)
//   source committed             release the copy here
//   destination receiving,       not committed: remove whatever of it exists here
//     restored
//   destination committed        nothing: the container is this node's (the
//                                record stays to answer the source)
//
// A record that cannot be read is left in place, logged, and shown in
// status; nothing is done for its container.
#pragma once

#include <chrono>
#include <optional>
#include <vector>

#include "migration/context.hpp"
#include "migration/journal.hpp"
#include "migration/outcome_query.hpp"

namespace migrated::migration {

enum class recovery_action {
  thaw_if_frozen,  // source accepted
  bring_back,      // restore the container here
  resume,          // source: a post-copy's frozen copy; serve its pages again
  ask,             // ask the destination first
  release,         // remove the copy here: the destination owns it
  remove_copy,     // destination: remove the uncommitted copy
  keep,            // destination: committed, nothing to do
};

std::string_view name(recovery_action a);

// What a record asks for; and, for `ask`, what the destination's answer
// (or no answer: nullopt) asks for.
recovery_action decide(const journal::entry& e);
recovery_action decide_after(const std::optional<outcome>& answer);

// Runs every unfinished record's rule. The records that must ask the
// destination are answered in the background (the node serves meanwhile;
// their containers count as busy); the rest are done when this returns,
// except the post-copies to take up again: their records are returned,
// each for a session of its own (source_session's resume()).
awaitable<std::vector<journal::entry>> recover_journal(node_context& ctx);

}  // namespace migrated::migration
