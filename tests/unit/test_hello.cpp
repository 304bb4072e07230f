// Unit tests for common/hello: which first messages the handshake accepts.
#include <catch2/catch.hpp>

#include "common/auth.hpp"
#include "common/hello.hpp"
#include "common/wire.hpp"

using namespace migrated;

namespace {

pb::Envelope hello(std::string node = "edge-a", std::size_t nonce = auth::nonce_bytes,
                   std::uint32_t version = wire::protocol_version) {
  pb::Envelope env;
  auto* h = env.mutable_hello();
  h->set_protocol_version(version);
  h->set_node(std::move(node));
  h->set_nonce(std::string(nonce, '\x07'));
  return env;
}

}  // namespace

TEST_CASE("a well-formed Hello is accepted as sent", "[hello]") {
  auto h = transport::check_hello(hello("edge-b"));
  REQUIRE(h);
  CHECK(h->node() == "edge-b");
  CHECK(h->nonce().size() == auth::nonce_bytes);
  CHECK(transport::check_hello(hello(std::string(255, 'n'))));
}

TEST_CASE("anything else is refused with a reason", "[hello]") {
  pb::Envelope reply;
  reply.mutable_reply()->set_ok(true);
  struct refusal { pb::Envelope msg; errc code; const char* says; };
  const refusal cases[] = {
      {reply, errc::protocol, "expected Hello"},
      {hello("edge-a", auth::nonce_bytes, wire::protocol_version + 1), errc::unsupported, "protocol version 2"},
      {hello("edge-a", auth::nonce_bytes - 1), errc::protocol, "bad nonce length"},
      {hello("edge-a", 0), errc::protocol, "bad nonce length"},
      {hello(""), errc::protocol, "bad node name"},
      {hello(std::string(256, 'n')), errc::protocol, "bad node name"},
  };
  for (const auto& c : cases) {
    auto h = transport::check_hello(c.msg);
    REQUIRE_FALSE(h);
    CHECK(h.error().code == c.code);
    CHECK_THAT(h.error().message, Catch::Contains(c.says));
  }
}
