// Unit tests for common/wire: whole frames (prefix | header | payload)
// encode and decode back to the same header and payload; the length prefix
// is checked against its limits before anything is read; any truncation or
// trailing byte is refused; and random bytes never crash the decoder.
// (Integrity, replay and ordering are TLS's: see test_handshake.cpp.)
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <google/protobuf/stubs/logging.h>

#include "common/wire.hpp"
#include "migrated.pb.h"

using namespace migrated;

namespace {

using bytes = std::vector<std::uint8_t>;

pb::Envelope status_request(std::uint64_t id) {
  pb::Envelope env;
  env.set_request_id(id);
  env.mutable_status()->set_migration_id("m-" + std::to_string(id));
  return env;
}

bytes pattern(std::size_t n) {
  bytes out(n);
  for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<std::uint8_t>(i * 7 + 3);
  return out;
}

std::span<const std::uint8_t, wire::prefix_bytes> prefix_span(
    const std::array<std::uint8_t, wire::prefix_bytes>& a) {
  return std::span<const std::uint8_t, wire::prefix_bytes>(a);
}

// Header length of an encoded frame, read back from its prefix.
std::size_t header_len_of(const bytes& frame) {
  std::array<std::uint8_t, wire::prefix_bytes> pre{};
  std::copy_n(frame.begin(), wire::prefix_bytes, pre.begin());
  auto p = wire::decode_prefix(prefix_span(pre));
  REQUIRE(p);
  return p->header_len;
}

}  // namespace

TEST_CASE("a frame decodes to the header and payload it was encoded from", "[wire]") {
  const pb::Envelope env = status_request(42);

  SECTION("without a payload") {
    const bytes frame = wire::encode(env, {});
    CHECK(frame.size() == wire::prefix_bytes + env.ByteSizeLong());
    CHECK(header_len_of(frame) == env.ByteSizeLong());
    auto d = wire::decode(frame);
    REQUIRE(d);
    CHECK(d->payload.empty());
    pb::Envelope back;
    REQUIRE(wire::parse_envelope(d->header_bytes, back));
    CHECK(back.request_id() == 42);
    REQUIRE(back.has_status());
    CHECK(back.status().migration_id() == "m-42");
  }
  SECTION("with a payload") {
    const bytes payload = pattern(5000);
    const bytes frame = wire::encode(env, payload);
    CHECK(frame.size() == wire::prefix_bytes + env.ByteSizeLong() + payload.size());
    auto d = wire::decode(frame);
    REQUIRE(d);
    CHECK(d->payload == payload);
    pb::Envelope back;
    REQUIRE(wire::parse_envelope(d->header_bytes, back));
    CHECK(back.SerializeAsString() == env.SerializeAsString());
  }
  SECTION("a payload of the largest size allowed") {
    const bytes payload = pattern(wire::max_payload_bytes);
    const bytes frame = wire::encode(env, payload);
    auto d = wire::decode(frame);
    REQUIRE(d);
    CHECK(d->payload == payload);
  }
  SECTION("the layout is prefix, then header, then payload") {
    const bytes payload = pattern(16);
    const bytes frame = wire::encode(env, payload);
    const std::string h = env.SerializeAsString();
    const auto pre = wire::encode_prefix({std::uint32_t(h.size()), 16});
    CHECK(bytes(frame.begin(), frame.begin() + wire::prefix_bytes) == bytes(pre.begin(), pre.end()));
    CHECK(std::string(frame.begin() + wire::prefix_bytes, frame.begin() + wire::prefix_bytes + h.size()) == h);
    CHECK(bytes(frame.end() - 16, frame.end()) == payload);
  }
}

TEST_CASE("the prefix round-trips and is checked against its limits", "[wire]") {
  SECTION("lengths travel big-endian and come back unchanged") {
    const auto pre = wire::encode_prefix({0x01020304, 0x00a0b0c0});
    CHECK(pre == std::array<std::uint8_t, 8>{0x01, 0x02, 0x03, 0x04, 0x00, 0xa0, 0xb0, 0xc0});
    const auto at_limits = wire::encode_prefix({wire::max_header_bytes, wire::max_payload_bytes});
    auto p = wire::decode_prefix(prefix_span(at_limits));
    REQUIRE(p);
    CHECK(p->header_len == wire::max_header_bytes);
    CHECK(p->payload_len == wire::max_payload_bytes);
  }
  SECTION("an empty header") {
    const auto pre = wire::encode_prefix({0, 10});
    auto p = wire::decode_prefix(prefix_span(pre));
    REQUIRE_FALSE(p);
    CHECK(p.error().code == errc::protocol);
    CHECK_THAT(p.error().message, Catch::Contains("empty header"));
  }
  SECTION("a header one byte over its limit") {
    const auto pre = wire::encode_prefix({wire::max_header_bytes + 1, 0});
    auto p = wire::decode_prefix(prefix_span(pre));
    REQUIRE_FALSE(p);
    CHECK(p.error().code == errc::protocol);
    CHECK_THAT(p.error().message, Catch::Contains(std::to_string(wire::max_header_bytes)));
    CHECK_THAT(p.error().message, Catch::Contains("header"));
  }
  SECTION("a payload one byte over its limit") {
    const auto pre = wire::encode_prefix({10, wire::max_payload_bytes + 1});
    auto p = wire::decode_prefix(prefix_span(pre));
    REQUIRE_FALSE(p);
    CHECK(p.error().code == errc::protocol);
    CHECK_THAT(p.error().message, Catch::Contains(std::to_string(wire::max_payload_bytes)));
    CHECK_THAT(p.error().message, Catch::Contains("payload"));
  }
  SECTION("the largest lengths a u32 can carry") {
    const auto pre = wire::encode_prefix({0xffffffffu, 0xffffffffu});
    auto p = wire::decode_prefix(prefix_span(pre));
    REQUIRE_FALSE(p);
    CHECK(p.error().code == errc::protocol);
  }
}

TEST_CASE("decode refuses an oversized frame from its prefix alone", "[wire]") {
  // Only the 8-byte prefix and a few bytes exist: the limit must be checked
  // before the decoder looks for (or allocates) the announced bytes.
  const auto pre = wire::encode_prefix({wire::max_header_bytes + 1, 0});
  bytes frame(pre.begin(), pre.end());
  frame.resize(64, 0);
  auto d = wire::decode(frame);
  REQUIRE_FALSE(d);
  CHECK(d.error().code == errc::protocol);
  CHECK_THAT(d.error().message, Catch::Contains(std::to_string(wire::max_header_bytes)));
}

TEST_CASE("a frame cut short at any length is refused as a protocol error", "[wire]") {
  const bytes payload = pattern(300);
  const bytes frame = wire::encode(status_request(7), payload);
  for (std::size_t len = 0; len < frame.size(); ++len) {
    // A copy of exactly `len` bytes, so a read past the end is visible to ASan.
    const bytes cut(frame.begin(), frame.begin() + static_cast<std::ptrdiff_t>(len));
    auto d = wire::decode(cut);
    INFO("truncated to " << len << " of " << frame.size() << " bytes");
    REQUIRE_FALSE(d);
    CHECK(d.error().code == errc::protocol);
    CHECK_THAT(d.error().message, Catch::Contains("truncated"));
  }
}

TEST_CASE("bytes after the frame are refused", "[wire]") {
  bytes frame = wire::encode(status_request(7), pattern(10));
  SECTION("one byte") { frame.push_back(0); }
  SECTION("a whole second frame") {
    const bytes second = wire::encode(status_request(8), {});
    frame.insert(frame.end(), second.begin(), second.end());
  }
  auto d = wire::decode(frame);
  REQUIRE_FALSE(d);
  CHECK(d.error().code == errc::protocol);
  CHECK_THAT(d.error().message, Catch::Contains("trailing"));
}

TEST_CASE("a flipped bit in the prefix changes the lengths and never yields the frame", "[wire]") {
  // A changed length makes the frame truncated, too long or over a limit.
  const bytes frame = wire::encode(status_request(7), pattern(64));
  for (std::size_t i = 0; i < wire::prefix_bytes; ++i) {
    for (int bit = 0; bit < 8; ++bit) {
      bytes bad = frame;
      bad[i] ^= static_cast<std::uint8_t>(1u << bit);
      auto d = wire::decode(bad);
      INFO("bit " << bit << " of prefix byte " << i);
      REQUIRE_FALSE(d);
      CHECK(d.error().code == errc::protocol);
    }
  }
}

TEST_CASE("random bytes never crash the decoder", "[wire]") {
  std::mt19937 gen(20240611);
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_int_distribution<std::size_t> length(0, 300);
  int decoded = 0;
  int refused = 0;
  // Random bytes that happen to parse may hold invalid UTF-8 in a string
  // field; protobuf logs that, which is noise here.
  google::protobuf::LogSilencer quiet;
  for (int iteration = 0; iteration < 20000; ++iteration) {
    bytes garbage(length(gen));
    for (auto& b : garbage) b = static_cast<std::uint8_t>(byte(gen));
    // Every other input gets a prefix consistent with its length, so the
    // decoder gets past the prefix to the header and payload.
    if (iteration % 2 == 1 && garbage.size() >= wire::prefix_bytes + 1) {
      const std::size_t body = garbage.size() - wire::prefix_bytes;
      const std::size_t header = 1 + std::uniform_int_distribution<std::size_t>(0, body - 1)(gen);
      const auto pre = wire::encode_prefix(
          {static_cast<std::uint32_t>(header), static_cast<std::uint32_t>(body - header)});
      std::copy(pre.begin(), pre.end(), garbage.begin());
    }
    auto d = wire::decode(garbage);
    INFO("iteration " << iteration << ", " << garbage.size() << " bytes");
    if (d) {
      // Only a consistent prefix decodes, and then into exactly the bytes given.
      REQUIRE(wire::prefix_bytes + d->header_bytes.size() + d->payload.size() == garbage.size());
      REQUIRE(std::equal(d->header_bytes.begin(), d->header_bytes.end(), garbage.begin() + wire::prefix_bytes));
      ++decoded;
      pb::Envelope env;
      (void)wire::parse_envelope(d->header_bytes, env);
    } else {
      REQUIRE(d.error().code == errc::protocol);
      ++refused;
    }
    // Parsing random header bytes may or may not succeed; it must not crash.
    pb::Envelope env;
    (void)wire::parse_envelope(garbage, env);
  }
  // Both paths were exercised.
  CHECK(decoded > 1000);
  CHECK(refused > 1000);
}

TEST_CASE("parse_envelope refuses bytes that are not a message", "[wire]") {
  pb::Envelope env;
  bytes bad;
  SECTION("field number zero") { bad = {0x00}; }
  SECTION("a varint that never ends") { bad = {0x08, 0x80, 0x80}; }
  SECTION("an invalid wire type") { bad = {0x0f, 0x01}; }
  SECTION("a length running past the end") { bad = {0xa2, 0x01, 0x10, 'a'}; }
  auto ok = wire::parse_envelope(bad, env);
  REQUIRE_FALSE(ok);
  CHECK(ok.error().code == errc::protocol);
  CHECK_THAT(ok.error().message, Catch::Contains("not a valid message"));
}

TEST_CASE("parse_envelope refuses an Envelope with no body", "[wire]") {
  bytes raw;
  SECTION("only a request id") {
    pb::Envelope env;
    env.set_request_id(9);
    const std::string s = env.SerializeAsString();
    raw.assign(s.begin(), s.end());
  }
  SECTION("a body field this node does not know (a newer peer)") {
    // Field 99, length-delimited, 3 bytes: an unknown oneof member.
    raw = {0x08, 0x09, 0x9a, 0x06, 0x03, 'n', 'e', 'w'};
  }
  SECTION("no bytes at all") {}
  pb::Envelope out;
  auto ok = wire::parse_envelope(raw, out);
  REQUIRE_FALSE(ok);
  CHECK(ok.error().code == errc::protocol);
  CHECK_THAT(ok.error().message, Catch::Contains("no known message"));
}
