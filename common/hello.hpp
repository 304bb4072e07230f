// The first message of every connection after TLS, checked before anything
// else is believed: a Hello (not any other message) in this node's protocol
// version, whose node and role are those the certificate proves. Pure, so
// the handshake and the fuzz target share one definition.
#pragma once

#include "common/credentials.hpp"
#include "common/error.hpp"
#include "migrated.pb.h"

namespace migrated::transport {

// The role a certificate's identity is in the protocol's terms.
pb::Role protocol_role(node_role r);

// errc::unsupported for another protocol version, errc::auth for a Hello
// that disagrees with `who` (the certificate), errc::protocol for anything
// that is not a Hello.
result<void> check_hello(const pb::Envelope& msg, const node_identity& who);

}  // namespace migrated::transport
