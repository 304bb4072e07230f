// Unit tests for common/datagram: sealing, every refusal of open(), and the
// bounds of the replay memory.
#include <chrono>
#include <cstdint>
#include <vector>

#include <catch2/catch.hpp>

#include "common/datagram.hpp"

using namespace migrated;
using namespace std::chrono_literals;
namespace dg = migrated::datagram;

namespace {

const auth::psk key{auth::bytes(32, 0x42)};
const dg::clock::time_point t0 = dg::clock::time_point(1'700'000'000'000ms);

pb::Envelope status_request(std::uint64_t id) {
  pb::Envelope env;
  env.set_request_id(id);
  env.mutable_status()->set_migration_id("m-1");
  return env;
}

// Re-encodes a sealed datagram after `edit` changed one of its fields.
std::vector<std::uint8_t> edited(const std::vector<std::uint8_t>& sealed,
                                 void (*edit)(pb::Datagram&)) {
  pb::Datagram d;
  REQUIRE(d.ParseFromArray(sealed.data(), static_cast<int>(sealed.size())));
  edit(d);
  const std::string bytes = d.SerializeAsString();
  return {bytes.begin(), bytes.end()};
}

}  // namespace

TEST_CASE("a sealed datagram opens to the same sender and body", "[datagram]") {
  dg::replay_guard guard;
  const auto sealed = dg::seal(key, "ctl-1", status_request(7), t0);
  auto opened = dg::open(key, sealed, guard, t0 + 1s);
  REQUIRE(opened);
  CHECK(opened->sender == "ctl-1");
  CHECK(opened->body.request_id() == 7);
  REQUIRE(opened->body.has_status());
  CHECK(opened->body.status().migration_id() == "m-1");
  CHECK(guard.size() == 1);
}

TEST_CASE("tampering or a wrong key fails authentication", "[datagram]") {
  dg::replay_guard guard;
  const auto sealed = dg::seal(key, "ctl-1", status_request(7), t0);
  std::vector<std::uint8_t> bad;
  SECTION("a body byte flipped") {
    bad = edited(sealed, [](pb::Datagram& d) {
      std::string body = d.body();
      body.back() ^= 0x01;
      d.set_body(body);
    });
  }
  SECTION("the tag flipped") {
    bad = edited(sealed, [](pb::Datagram& d) {
      std::string mac = d.mac();
      mac[0] ^= 0x80;
      d.set_mac(mac);
    });
  }
  SECTION("another sender claimed") {
    bad = edited(sealed, [](pb::Datagram& d) { d.set_sender("ctl-2"); });
  }
  SECTION("the timestamp moved") {
    bad = edited(sealed, [](pb::Datagram& d) { d.set_timestamp_ms(d.timestamp_ms() + 1); });
  }
  SECTION("sealed with another key") {
    bad = dg::seal(auth::psk{auth::bytes(32, 0x43)}, "ctl-1", status_request(7), t0);
  }
  auto opened = dg::open(key, bad, guard, t0);
  REQUIRE_FALSE(opened);
  CHECK(opened.error().code == errc::auth);
  CHECK(guard.size() == 0);
}

TEST_CASE("a datagram is accepted once", "[datagram]") {
  dg::replay_guard guard;
  const auto sealed = dg::seal(key, "ctl-1", status_request(7), t0);
  REQUIRE(dg::open(key, sealed, guard, t0));
  auto again = dg::open(key, sealed, guard, t0 + 2s);
  REQUIRE_FALSE(again);
  CHECK(again.error().code == errc::already_exists);
  CHECK_THAT(again.error().message, Catch::Contains("replay"));

  // Two seals of the same body are different datagrams.
  CHECK(dg::open(key, dg::seal(key, "ctl-1", status_request(7), t0), guard, t0));
}

TEST_CASE("timestamps outside max_skew are stale", "[datagram]") {
  dg::replay_guard guard;
  const auto sealed = dg::seal(key, "ctl-1", status_request(7), t0);
  SECTION("too old") {
    auto opened = dg::open(key, sealed, guard, t0 + dg::max_skew + 1ms);
    REQUIRE_FALSE(opened);
    CHECK(opened.error().code == errc::timeout);
    CHECK_THAT(opened.error().message, Catch::Contains("stale"));
  }
  SECTION("too far in the future") {
    auto opened = dg::open(key, sealed, guard, t0 - dg::max_skew - 1ms);
    REQUIRE_FALSE(opened);
    CHECK(opened.error().code == errc::timeout);
    CHECK_THAT(opened.error().message, Catch::Contains("stale"));
  }
  SECTION("at the limit") {
    CHECK(dg::open(key, sealed, guard, t0 + dg::max_skew));
  }
  SECTION("timestamps at the ends of the clock") {
    for (const auto when : {dg::clock::time_point::max(), dg::clock::time_point::min()}) {
      auto opened = dg::open(key, dg::seal(key, "ctl-1", status_request(7), when), guard, t0);
      REQUIRE_FALSE(opened);
      CHECK(opened.error().code == errc::timeout);
    }
  }
}

TEST_CASE("garbage and oversize datagrams are protocol errors", "[datagram]") {
  dg::replay_guard guard;
  SECTION("not protobuf") {
    const std::vector<std::uint8_t> junk{0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    auto opened = dg::open(key, junk, guard, t0);
    REQUIRE_FALSE(opened);
    CHECK(opened.error().code == errc::protocol);
  }
  SECTION("empty") {
    auto opened = dg::open(key, {}, guard, t0);
    REQUIRE_FALSE(opened);
    CHECK(opened.error().code == errc::protocol);
  }
  SECTION("a Datagram without a tag") {
    pb::Datagram d;
    d.set_sender("ctl-1");
    const std::string bytes = d.SerializeAsString();
    auto opened = dg::open(key, std::vector<std::uint8_t>(bytes.begin(), bytes.end()), guard, t0);
    REQUIRE_FALSE(opened);
    CHECK(opened.error().code == errc::protocol);
  }
  SECTION("oversize") {
    const std::vector<std::uint8_t> big(dg::max_datagram_bytes + 1, 0);
    auto opened = dg::open(key, big, guard, t0);
    REQUIRE_FALSE(opened);
    CHECK(opened.error().code == errc::protocol);
  }
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
