// Who may ask what. A controller's certificate lets it start, abort, measure,
// recover and follow migrations and read status; a peer's certificate lets a
// daemon that `peers:` lists take part in migrations with this node (send
// it a container, probe the link). Nothing else is permitted: a peer cannot
// start a migration, a controller cannot push a container, an unlisted
// daemon cannot do either. Checked on every request, over TCP and UDP.
#pragma once

#include "common/config.hpp"
#include "common/credentials.hpp"
#include "common/error.hpp"
#include "migrated.pb.h"

namespace migrated::server {

// errc::denied with a sentence naming who, what and why; errc::protocol
// for a message that begins no conversation (whoever sends it); success
// for a request `who` may make.
result<void> permitted(const pb::Envelope& request, const node_identity& who, const config& cfg);

}  // namespace migrated::server
