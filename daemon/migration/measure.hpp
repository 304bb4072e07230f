// Dirty-rate measurement, like seed D's pre_measure/measure: two checkpoints
// with --leave-running an interval apart; the pages that differ between them
// over the interval are the dirty rate. With a destination, a bandwidth
// probe to it (incompressible bytes, timed until its reply) turns that into
// predicted downtimes for cold and pre-copy migration.
#pragma once

#include "migration/context.hpp"

namespace migrated::migration {

awaitable<result<pb::MeasureReply>> measure(node_context& ctx, const pb::MeasureRequest& req);

// Destination side of the bandwidth probe: reads Probe frames until their
// payload adds up to the announced total, then replies.
awaitable<result<void>> answer_probe(transport::channel& ch, const transport::frame& first);

}  // namespace migrated::migration
