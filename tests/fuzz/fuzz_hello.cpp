// The first frame's header as the handshake judges it (common/hello.hpp):
// any bytes, parsed as an Envelope, then check_hello. Invariant: what is
// accepted is a Hello of this protocol version with a nonce of the right
// length and a node name of 1..255 bytes; a refusal has a message.
#include <cstdint>
#include <span>

#include "common/auth.hpp"
#include "common/hello.hpp"
#include "common/wire.hpp"
#include "fuzz_support.hpp"

using namespace migrated;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  pb::Envelope env;
  if (!wire::parse_envelope(std::span(data, size), env)) return 0;
  auto hello = transport::check_hello(env);
  if (!hello) {
    FUZZ_CHECK(!hello.error().message.empty());
    FUZZ_CHECK(hello.error().code == errc::protocol || hello.error().code == errc::unsupported);
    return 0;
  }
  FUZZ_CHECK(env.has_hello());
  FUZZ_CHECK(hello->protocol_version() == wire::protocol_version);
  FUZZ_CHECK(hello->nonce().size() == auth::nonce_bytes);
  FUZZ_CHECK(!hello->node().empty() && hello->node().size() <= 255);
  return 0;
}
