// Validation of a peer's Hello; see hello.hpp.
#include "common/hello.hpp"

#include <string>

#include "common/wire.hpp"

namespace migrated::transport {
namespace {

std::string_view role_word(pb::Role r) { return r == pb::ROLE_CONTROLLER ? "controller" : "peer"; }

}  // namespace

pb::Role protocol_role(node_role r) { return r == node_role::controller ? pb::ROLE_CONTROLLER : pb::ROLE_DAEMON; }

result<void> check_hello(const pb::Envelope& msg, const node_identity& who) {
  if (!msg.has_hello()) return fail(errc::protocol, "handshake: expected Hello");
  const auto& h = msg.hello();
  if (h.protocol_version() != wire::protocol_version)
    return fail(errc::unsupported, "handshake: peer speaks protocol version " +
                                       std::to_string(h.protocol_version()) + ", this node speaks " +
                                       std::to_string(wire::protocol_version));
  if (h.node() != who.name)
    return fail(errc::auth, "handshake: the certificate names " + who.name + " but its Hello says '" +
                                h.node().substr(0, 64) + "'");
  if (h.role() != protocol_role(who.role))
    return fail(errc::auth, "handshake: " + who.name + "'s certificate makes it a " + std::string(role_name(who.role)) +
                                ", its Hello claims " + std::string(role_word(h.role())));
  return {};
}

}  // namespace migrated::transport
