// Fault points inside the sessions, for tests that must stop a daemon at an
// exact place of a migration. MIGRATED_FAULT=<point>.<action> in a daemon's
// environment (common/fault.hpp), where <point> is a phase boundary reached
// by reach() (the list, with where each is, in docs/testing.md):
//   source.accepted, source.connecting, source.warmup, source.stopping,
//   source.checkpointed, source.transfer, source.restore, source.postcopy,
//   source.committing, source.released;
//   dest.receiving, dest.received, dest.restored, dest.postcopy, dest.ready,
//   dest.committed
// and <action> one of:
//   pause   the session logs "fault point <point>: paused" and waits until
//           the migration is cancelled (abort, SIGTERM) or 120 s pass
//   wait    the session logs "fault point <point>: waiting" and goes on 5 s
//           later (or when cancelled): a window for a test to change the
//           world under a migration that then carries on (fill a disk)
//   throw   the session throws, as a bug would
//   die     the daemon SIGKILLs itself
#pragma once

#include <string>
#include <string_view>

#include "asio.hpp"

namespace migrated::migration::fault_point {

awaitable<void> reach(const std::string& migration_id, std::string_view point);
// Ends a pause of this migration (its cancel() calls this).
void resume(const std::string& migration_id);

}  // namespace migrated::migration::fault_point
