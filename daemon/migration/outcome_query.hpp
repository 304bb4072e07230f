// What became of a migration after Commit was sent, asked of the
// destination (OutcomeQuery / OutcomeReply, docs/protocol.md). A source
// asks when the acknowledgement of its Commit never came, and when it
// restarts with a journal record in `committing`: only the destination
// knows whether it read the Commit. It answers from its journal, and gives
// up a migration it still runs and has not committed before it answers,
// so that "not committed" stays true.
#pragma once

#include <chrono>
#include <functional>
#include <string>

#include "migration/context.hpp"

namespace migrated::migration {

struct outcome {
  bool known = false;      // the destination has a record of the migration
  bool committed = false;  // ... and it read Commit: the container is there
};

// One question on a connection of its own; an error when the destination
// cannot be reached or cannot tell.
awaitable<result<outcome>> ask_outcome(node_context& ctx, const std::string& destination,
                                       const std::string& migration_id);

// Asks again every second until an answer comes, `limit` passes or `stop`
// says so; the last error otherwise.
awaitable<result<outcome>> ask_outcome_until(node_context& ctx, const std::string& destination,
                                             const std::string& migration_id, std::chrono::milliseconds limit,
                                             const std::function<bool()>& stop);

// The destination's answer to `query` from `asking_node` (an OutcomeReply).
pb::Envelope answer_outcome(node_context& ctx, const pb::Envelope& query, const std::string& asking_node);

}  // namespace migrated::migration
