// Fault points, as CRIU's fault_injected(): MIGRATED_FAULT=point[,point]
// in the daemon's environment makes the named step fail on purpose, so tests
// can kill a migration at a chosen place and prove the container survives.
// Points (docs/testing.md lists what each does):
//   dest.transfer.die      destination SIGKILLs itself on the final round's first chunk
//   dest.warmup.die        destination SIGKILLs itself on a warm-up round's first chunk
//   dest.restore.fail      destination's restore fails inside CRIU
//   dest.checksum.corrupt  destination corrupts a received image byte
//   source.transfer.cut    source drops the connection mid-transfer
//   source.rollback.fail   source's rollback fails: no thaw, no restore
//   <place>.pause|wait|throw|die  at a place of a session (migration/fault_point.hpp)
#pragma once

#include <string_view>

namespace migrated {

bool fault_injected(std::string_view point);

}  // namespace migrated
