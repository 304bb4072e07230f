// The first message of every connection, checked before anything else is
// believed: a Hello (not any other message) in this node's protocol
// version, with a nonce of auth::nonce_bytes and a node name of 1..255
// bytes. Pure, so the handshake and the fuzz target share one definition.
#pragma once

#include "common/error.hpp"
#include "migrated.pb.h"

namespace migrated::transport {

// The peer's Hello. errc::unsupported for another protocol version,
// errc::protocol for anything else that is not a well-formed Hello.
result<pb::Hello> check_hello(const pb::Envelope& msg);

}  // namespace migrated::transport
