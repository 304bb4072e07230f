// Unit tests for common/datagram: sealing with a node's certificate and
// key, every refusal of open() (tampering, a stranger's certificate, replay,
// staleness, garbage) and the bounds of the replay memory.
#include <chrono>
#include <cstdint>
#include <functional>
#include <vector>

#include <catch2/catch.hpp>

#include "common/auth.hpp"
#include "common/datagram.hpp"
#include "fleet.hpp"

using namespace migrated;
using namespace std::chrono_literals;
namespace dg = migrated::datagram;

namespace {

const dg::clock::time_point t0 = dg::clock::time_point(1'700'000'000'000ms);

const credentials& controller() { return testing::shared_fleet().node("ctl-1", node_role::controller); }
const credentials& receiver() { return testing::shared_fleet().node("edge-a"); }

pb::Envelope status_request(std::uint64_t id) {
  pb::Envelope env;
  env.set_request_id(id);
  env.mutable_status()->set_migration_id("m-1");
  return env;
}

// Re-encodes a sealed datagram after `edit` changed one of its fields.
std::vector<std::uint8_t> edited(const std::vector<std::uint8_t>& sealed,
                                 const std::function<void(pb::Datagram&)>& edit) {
  pb::Datagram d;
  REQUIRE(d.ParseFromArray(sealed.data(), static_cast<int>(sealed.size())));
  edit(d);
  const std::string bytes = d.SerializeAsString();
  return {bytes.begin(), bytes.end()};
}

std::vector<std::uint8_t> serialized(const pb::Datagram& d) {
  const std::string bytes = d.SerializeAsString();
  return {bytes.begin(), bytes.end()};
}

}  // namespace

TEST_CASE("a sealed datagram opens to the sender its certificate names and the same body", "[datagram]") {
  dg::replay_guard guard;
  const auto sealed = dg::seal(controller(), status_request(7), t0);
  CHECK(sealed.size() <= dg::max_datagram_bytes);
  auto opened = dg::open(receiver(), sealed, guard, t0 + 1s);
  INFO((opened ? std::string() : opened.error().message));
  REQUIRE(opened);
  CHECK(opened->sender.name == "ctl-1");
  CHECK(opened->sender.role == node_role::controller);
  CHECK(opened->body.request_id() == 7);
  REQUIRE(opened->body.has_status());
  CHECK(opened->body.status().migration_id() == "m-1");
  CHECK(guard.size() == 1);

  // A peer's datagram names a peer.
  auto from_peer = dg::open(receiver(), dg::seal(testing::shared_fleet().node("edge-b"), status_request(8), t0),
                            guard, t0);
  REQUIRE(from_peer);
  CHECK(from_peer->sender.name == "edge-b");
  CHECK(from_peer->sender.role == node_role::peer);
}

TEST_CASE("tampering or a stranger's certificate fails authentication", "[datagram]") {
  dg::replay_guard guard;
  const auto sealed = dg::seal(controller(), status_request(7), t0);
  std::vector<std::uint8_t> bad;
  SECTION("a body byte flipped") {
    bad = edited(sealed, [](pb::Datagram& d) {
      std::string body = d.body();
      body.back() ^= 0x01;
      d.set_body(body);
    });
  }
  SECTION("the signature flipped") {
    bad = edited(sealed, [](pb::Datagram& d) {
      std::string sig = d.signature();
      sig[0] ^= 0x80;
      d.set_signature(sig);
    });
  }
  SECTION("another sender claimed") {
    bad = edited(sealed, [](pb::Datagram& d) { d.set_sender("ctl-2"); });
  }
  SECTION("the timestamp moved") {
    bad = edited(sealed, [](pb::Datagram& d) { d.set_timestamp_ms(d.timestamp_ms() + 1); });
  }
  SECTION("the nonce changed") {
    bad = edited(sealed, [](pb::Datagram& d) { d.set_nonce(d.nonce() + 1); });
  }
  SECTION("another node's certificate in place of the signer's") {
    bad = edited(sealed, [](pb::Datagram& d) {
      const auto der = testing::shared_fleet().node("edge-b").certificate_der();
      d.set_certificate(der.data(), der.size());
    });
  }
  SECTION("another node's certificate, and its name as the sender") {
    bad = edited(sealed, [](pb::Datagram& d) {
      const auto der = testing::shared_fleet().node("edge-b").certificate_der();
      d.set_certificate(der.data(), der.size());
      d.set_sender("edge-b");
    });
  }
  SECTION("a certificate byte flipped") {
    bad = edited(sealed, [](pb::Datagram& d) {
      std::string cert = d.certificate();
      cert[cert.size() - 5] ^= 0x01;
      d.set_certificate(cert);
    });
  }
  SECTION("garbage in place of the certificate") {
    bad = edited(sealed, [](pb::Datagram& d) {
      const auto junk = auth::random_bytes(200);
      d.set_certificate(junk.data(), junk.size());
    });
  }
  SECTION("an oversize certificate") {
    bad = edited(sealed, [](pb::Datagram& d) { d.set_certificate(std::string(credentials::max_certificate_bytes + 1, '\x30')); });
  }
  SECTION("sealed by a member of another fleet with the same name") {
    bad = dg::seal(testing::other_fleet().node("ctl-1", node_role::controller), status_request(7), t0);
  }
  auto opened = dg::open(receiver(), bad, guard, t0);
  REQUIRE_FALSE(opened);
  INFO(opened.error().message);
  CHECK(opened.error().code == errc::auth);
  CHECK(guard.size() == 0);
}

TEST_CASE("a datagram is accepted once", "[datagram]") {
  dg::replay_guard guard;
  const auto sealed = dg::seal(controller(), status_request(7), t0);
  REQUIRE(dg::open(receiver(), sealed, guard, t0));
  auto again = dg::open(receiver(), sealed, guard, t0 + 2s);
  REQUIRE_FALSE(again);
  CHECK(again.error().code == errc::already_exists);
  CHECK_THAT(again.error().message, Catch::Contains("replay"));

  // Two seals of the same body are different datagrams.
  CHECK(dg::open(receiver(), dg::seal(controller(), status_request(7), t0), guard, t0));
}

TEST_CASE("timestamps outside max_skew are stale", "[datagram]") {
  dg::replay_guard guard;
  const auto sealed = dg::seal(controller(), status_request(7), t0);
  SECTION("too old") {
    auto opened = dg::open(receiver(), sealed, guard, t0 + dg::max_skew + 1ms);
    REQUIRE_FALSE(opened);
    CHECK(opened.error().code == errc::timeout);
    CHECK_THAT(opened.error().message, Catch::Contains("stale"));
    CHECK(guard.size() == 0);
  }
  SECTION("too far in the future") {
    auto opened = dg::open(receiver(), sealed, guard, t0 - dg::max_skew - 1ms);
    REQUIRE_FALSE(opened);
    CHECK(opened.error().code == errc::timeout);
    CHECK_THAT(opened.error().message, Catch::Contains("stale"));
  }
  SECTION("at the limit") {
    CHECK(dg::open(receiver(), sealed, guard, t0 + dg::max_skew));
  }
  SECTION("timestamps at the ends of the clock") {
    for (const auto when : {dg::clock::time_point::max(), dg::clock::time_point::min()}) {
      auto opened = dg::open(receiver(), dg::seal(controller(), status_request(7), when), guard, t0);
      REQUIRE_FALSE(opened);
      CHECK(opened.error().code == errc::timeout);
    }
  }
}

TEST_CASE("a full replay memory refuses an authentic datagram as busy", "[datagram]") {
  dg::replay_guard guard;
  for (std::uint64_t n = 0; n < dg::replay_guard::max_entries; ++n)
    REQUIRE(guard.accept(n, t0, t0) == dg::replay_guard::verdict::fresh);
  // The nonce is random: it cannot be one of 0..max_entries-1 but by a 1 in 2^47 chance.
  auto opened = dg::open(receiver(), dg::seal(controller(), status_request(7), t0), guard, t0);
  REQUIRE_FALSE(opened);
  CHECK(opened.error().code == errc::busy);
  CHECK(guard.size() == dg::replay_guard::max_entries);
  // A datagram that does not verify is refused as such, never as busy.
  auto forged = dg::open(receiver(), dg::seal(testing::other_fleet().node("ctl-1", node_role::controller),
                                              status_request(7), t0), guard, t0);
  REQUIRE_FALSE(forged);
  CHECK(forged.error().code == errc::auth);
}

TEST_CASE("garbage and oversize datagrams are protocol errors", "[datagram]") {
  dg::replay_guard guard;
  SECTION("not protobuf") {
    const std::vector<std::uint8_t> junk{0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    auto opened = dg::open(receiver(), junk, guard, t0);
    REQUIRE_FALSE(opened);
    CHECK(opened.error().code == errc::protocol);
  }
  SECTION("empty") {
    auto opened = dg::open(receiver(), {}, guard, t0);
    REQUIRE_FALSE(opened);
    CHECK(opened.error().code == errc::protocol);
  }
  SECTION("a Datagram without certificate or signature") {
    pb::Datagram d;
    d.set_sender("ctl-1");
    d.set_body(status_request(1).SerializeAsString());
    SECTION("neither") {}
    SECTION("only a certificate") {
      const auto der = controller().certificate_der();
      d.set_certificate(der.data(), der.size());
    }
    SECTION("only a signature") { d.set_signature(std::string(64, 'x')); }
    auto opened = dg::open(receiver(), serialized(d), guard, t0);
    REQUIRE_FALSE(opened);
    CHECK(opened.error().code == errc::protocol);
  }
  SECTION("an oversize signature") {
    const auto sealed = dg::seal(controller(), status_request(7), t0);
    auto opened = dg::open(receiver(), edited(sealed, [](pb::Datagram& d) { d.set_signature(std::string(4096, 's')); }),
                           guard, t0);
    REQUIRE_FALSE(opened);
    CHECK(opened.error().code == errc::protocol);
  }
  SECTION("oversize") {
    const std::vector<std::uint8_t> big(dg::max_datagram_bytes + 1, 0);
    auto opened = dg::open(receiver(), big, guard, t0);
    REQUIRE_FALSE(opened);
    CHECK(opened.error().code == errc::protocol);
  }
  CHECK(guard.size() == 0);
}

TEST_CASE("replay_guard forgets entries older than twice max_skew", "[datagram]") {
  dg::replay_guard guard;
  using v = dg::replay_guard::verdict;
  CHECK(guard.accept(1, t0, t0) == v::fresh);
  CHECK(guard.accept(2, t0 + 10s, t0 + 10s) == v::fresh);
  CHECK(guard.accept(1, t0, t0 + 1s) == v::replay);
  CHECK(guard.size() == 2);

  // Just inside the window: both still remembered.
  CHECK(guard.accept(3, t0 + 2 * dg::max_skew, t0 + 2 * dg::max_skew) == v::fresh);
  CHECK(guard.size() == 3);
  // Past it for nonce 1 only.
  const auto later = t0 + 2 * dg::max_skew + 1s;
  CHECK(guard.accept(4, later, later) == v::fresh);
  CHECK(guard.size() == 3);
  CHECK(guard.accept(1, later, later) == v::fresh);  // expired, so fresh again
  CHECK(guard.accept(2, t0 + 10s, later) == v::replay);
}

TEST_CASE("a full replay_guard refuses new nonces and forgets none still in the window", "[datagram]") {
  using v = dg::replay_guard::verdict;
  dg::replay_guard guard;
  const auto now = t0 + 1s;
  // All sent in the same millisecond, so nothing expires: only the bound acts.
  for (std::uint64_t n = 0; n < dg::replay_guard::max_entries; ++n) REQUIRE(guard.accept(n, t0, now) == v::fresh);
  CHECK(guard.size() == dg::replay_guard::max_entries);
  CHECK(guard.accept(dg::replay_guard::max_entries, t0, now) == v::full);  // a new one: refused
  CHECK(guard.size() == dg::replay_guard::max_entries);
  // Every one seen is still refused as a replay: none was forgotten to make room.
  CHECK(guard.accept(0, t0, now + 5s) == v::replay);
  CHECK(guard.accept(dg::replay_guard::max_entries - 1, t0, now + 5s) == v::replay);
  // Once the window has passed, there is room again.
  const auto later = t0 + 3 * dg::max_skew;
  CHECK(guard.accept(dg::replay_guard::max_entries, later, later) == v::fresh);
  CHECK(guard.size() == 1);
}
