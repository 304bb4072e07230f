// Validation of a peer's Hello; see hello.hpp.
#include "common/hello.hpp"

#include <string>

#include "common/auth.hpp"
#include "common/wire.hpp"

namespace migrated::transport {

result<pb::Hello> check_hello(const pb::Envelope& msg) {
  if (!msg.has_hello()) return fail(errc::protocol, "handshake: expected Hello");
  const auto& h = msg.hello();
  if (h.protocol_version() != wire::protocol_version)
    return fail(errc::unsupported, "handshake: peer speaks protocol version " +
                                       std::to_string(h.protocol_version()) + ", this node speaks " +
                                       std::to_string(wire::protocol_version));
  if (h.nonce().size() != auth::nonce_bytes) return fail(errc::protocol, "handshake: bad nonce length");
  if (h.node().empty() || h.node().size() > 255) return fail(errc::protocol, "handshake: bad node name");
  return h;
}

}  // namespace migrated::transport
