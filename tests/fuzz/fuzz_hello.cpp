// The first frame's header as the handshake judges it (common/hello.hpp):
// any bytes, parsed as an Envelope, then check_hello against the identity
// a certificate proved (edge-a, a peer). Invariant: what is accepted is a
// Hello of this protocol version naming edge-a as a daemon; a refusal has a
// message and a documented code.
#include <cstdint>
#include <span>

#include "common/hello.hpp"
#include "common/wire.hpp"
#include "fuzz_support.hpp"

using namespace migrated;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  pb::Envelope env;
  if (!wire::parse_envelope(std::span(data, size), env)) return 0;
  const node_identity who{"edge-a", node_role::peer};
  auto ok = transport::check_hello(env, who);
  if (!ok) {
    FUZZ_CHECK(!ok.error().message.empty());
    const auto c = ok.error().code;
    FUZZ_CHECK(c == errc::protocol || c == errc::unsupported || c == errc::auth);
    return 0;
  }
  FUZZ_CHECK(env.has_hello());
  FUZZ_CHECK(env.hello().protocol_version() == wire::protocol_version);
  FUZZ_CHECK(env.hello().node() == "edge-a");
  FUZZ_CHECK(env.hello().role() == pb::ROLE_DAEMON);
  return 0;
}
