// Unit tests for common/wire: whole frames encode and decode back to the
// same header and payload; the length prefix is checked against its limits
// before anything is read; any truncation, trailing byte, flipped bit,
// replay, reordering or key mismatch is refused; and random bytes never
// crash the decoder nor pass for a frame.
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
  wire::sealer out;
  wire::sealer in;
  const pb::Envelope env = status_request(42);

  SECTION("without a payload") {
    const bytes frame = wire::encode(out, env, {});
    CHECK(frame.size() == wire::prefix_bytes + env.ByteSizeLong() + wire::tag_bytes);
    auto d = wire::decode(in, frame);
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
    const bytes frame = wire::encode(out, env, payload);
    CHECK(frame.size() ==
          wire::prefix_bytes + env.ByteSizeLong() + payload.size() + wire::tag_bytes);
    auto d = wire::decode(in, frame);
    REQUIRE(d);
    CHECK(d->payload == payload);
    pb::Envelope back;
    REQUIRE(wire::parse_envelope(d->header_bytes, back));
    CHECK(back.SerializeAsString() == env.SerializeAsString());
  }
  SECTION("a run of frames, each sequence number advancing on both sides") {
    for (std::uint64_t i = 0; i < 10; ++i) {
      const bytes payload = pattern(i * 100);
      const bytes frame = wire::encode(out, status_request(i), payload);
      auto d = wire::decode(in, frame);
      REQUIRE(d);
      CHECK(d->payload == payload);
      pb::Envelope back;
      REQUIRE(wire::parse_envelope(d->header_bytes, back));
      CHECK(back.request_id() == i);
    }
    CHECK(out.sequence() == 10);
    CHECK(in.sequence() == 10);
  }
  SECTION("after both sides switch to the same session key") {
    const auth::bytes key(32, 0x5a);
    out.rekey(key);
    in.rekey(key);
    const bytes payload = pattern(100);
    auto d = wire::decode(in, wire::encode(out, env, payload));
    REQUIRE(d);
    CHECK(d->payload == payload);
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
  wire::sealer in;
  const auto pre = wire::encode_prefix({wire::max_header_bytes + 1, 0});
  bytes frame(pre.begin(), pre.end());
  frame.resize(64, 0);
  auto d = wire::decode(in, frame);
  REQUIRE_FALSE(d);
  CHECK(d.error().code == errc::protocol);
  CHECK_THAT(d.error().message, Catch::Contains(std::to_string(wire::max_header_bytes)));
}

TEST_CASE("a frame cut short at any length is refused as a protocol error", "[wire]") {
  wire::sealer out;
  const bytes payload = pattern(300);
  const bytes frame = wire::encode(out, status_request(7), payload);
  for (std::size_t len = 0; len < frame.size(); ++len) {
    // A copy of exactly `len` bytes, so a read past the end is visible to ASan.
    const bytes cut(frame.begin(), frame.begin() + static_cast<std::ptrdiff_t>(len));
    wire::sealer in;
    auto d = wire::decode(in, cut);
    INFO("truncated to " << len << " of " << frame.size() << " bytes");
    REQUIRE_FALSE(d);
    CHECK(d.error().code == errc::protocol);
    CHECK(in.sequence() == 0);
  }
}

TEST_CASE("bytes after the frame are refused", "[wire]") {
  wire::sealer out;
  bytes frame = wire::encode(out, status_request(7), pattern(10));
  SECTION("one byte") { frame.push_back(0); }
  SECTION("a whole second frame") {
    const bytes second = wire::encode(out, status_request(8), {});
    frame.insert(frame.end(), second.begin(), second.end());
  }
  wire::sealer in;
  auto d = wire::decode(in, frame);
  REQUIRE_FALSE(d);
  CHECK(d.error().code == errc::protocol);
  CHECK_THAT(d.error().message, Catch::Contains("trailing"));
}

TEST_CASE("a flipped bit in the header, payload or tag fails authentication", "[wire]") {
  wire::sealer out;
  const bytes payload = pattern(64);
  const bytes frame = wire::encode(out, status_request(7), payload);
  const std::size_t header_len = header_len_of(frame);
  const std::size_t payload_end = wire::prefix_bytes + header_len + payload.size();
  REQUIRE(payload_end + wire::tag_bytes == frame.size());

  std::size_t tried = 0;
  for (std::size_t i = wire::prefix_bytes; i < frame.size(); ++i) {
    for (int bit = 0; bit < 8; ++bit) {
      bytes bad = frame;
      bad[i] ^= static_cast<std::uint8_t>(1u << bit);
      wire::sealer in;
      auto d = wire::decode(in, bad);
      const char* where = i < wire::prefix_bytes + header_len ? "header"
                          : i < payload_end                    ? "payload"
                                                               : "tag";
      INFO("bit " << bit << " of byte " << i << " (" << where << ")");
      REQUIRE_FALSE(d);
      CHECK(d.error().code == errc::auth);
      CHECK(in.sequence() == 0);
      ++tried;
    }
  }
  CHECK(tried == 8 * (frame.size() - wire::prefix_bytes));
}

TEST_CASE("a flipped bit in the prefix never yields a frame", "[wire]") {
  // A changed length makes the frame truncated, too long or over a limit
  // (errc::protocol); it can never be accepted.
  wire::sealer out;
  const bytes frame = wire::encode(out, status_request(7), pattern(64));
  for (std::size_t i = 0; i < wire::prefix_bytes; ++i) {
    for (int bit = 0; bit < 8; ++bit) {
      bytes bad = frame;
      bad[i] ^= static_cast<std::uint8_t>(1u << bit);
      wire::sealer in;
      auto d = wire::decode(in, bad);
      INFO("bit " << bit << " of prefix byte " << i);
      REQUIRE_FALSE(d);
      CHECK((d.error().code == errc::protocol || d.error().code == errc::auth));
    }
  }
}

TEST_CASE("sequence numbers refuse replayed and reordered frames", "[wire]") {
  wire::sealer out;
  const bytes first = wire::encode(out, status_request(1), pattern(10));
  const bytes second = wire::encode(out, status_request(2), pattern(20));
  wire::sealer in;

  SECTION("the same frame decoded twice") {
    REQUIRE(wire::decode(in, first));
    auto again = wire::decode(in, first);
    REQUIRE_FALSE(again);
    CHECK(again.error().code == errc::auth);
    CHECK_THAT(again.error().message, Catch::Contains("frame 1"));
  }
  SECTION("the second frame before the first") {
    auto early = wire::decode(in, second);
    REQUIRE_FALSE(early);
    CHECK(early.error().code == errc::auth);
    // The refused frame did not advance the sequence: the stream is still
    // waiting for frame 0, and accepts the frames in their order.
    CHECK(in.sequence() == 0);
    REQUIRE(wire::decode(in, first));
    REQUIRE(wire::decode(in, second));
  }
  SECTION("a frame dropped in between") {
    const bytes third = wire::encode(out, status_request(3), {});
    REQUIRE(wire::decode(in, first));
    auto gap = wire::decode(in, third);
    REQUIRE_FALSE(gap);
    CHECK(gap.error().code == errc::auth);
  }
}

TEST_CASE("frames sealed with another key fail authentication", "[wire]") {
  wire::sealer out;
  wire::sealer in;
  const auth::bytes key_a(32, 0x11);
  const auth::bytes key_b(32, 0x22);
  SECTION("only the sender rekeyed") { out.rekey(key_a); }
  SECTION("only the receiver rekeyed") { in.rekey(key_a); }
  SECTION("each side rekeyed to a different key") {
    out.rekey(key_a);
    in.rekey(key_b);
  }
  const bytes frame = wire::encode(out, status_request(1), pattern(10));
  auto d = wire::decode(in, frame);
  REQUIRE_FALSE(d);
  CHECK(d.error().code == errc::auth);
}

TEST_CASE("random bytes never crash the decoder and never decode", "[wire]") {
  std::mt19937 gen(20240611);
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_int_distribution<std::size_t> length(0, 300);
  int refused_as_protocol = 0;
  int refused_as_auth = 0;
  // Random bytes that happen to parse may hold invalid UTF-8 in a string
  // field; protobuf logs that, which is noise here.
  google::protobuf::LogSilencer quiet;
  for (int iteration = 0; iteration < 20000; ++iteration) {
    bytes garbage(length(gen));
    for (auto& b : garbage) b = static_cast<std::uint8_t>(byte(gen));
    // Every other input gets a prefix consistent with its length, so the
    // decoder also reaches the tag check rather than stopping at the prefix.
    if (iteration % 2 == 1 && garbage.size() >= wire::prefix_bytes + wire::tag_bytes + 1) {
      const std::size_t body = garbage.size() - wire::prefix_bytes - wire::tag_bytes;
      const std::size_t header = 1 + std::uniform_int_distribution<std::size_t>(0, body - 1)(gen);
      const auto pre = wire::encode_prefix(
          {static_cast<std::uint32_t>(header), static_cast<std::uint32_t>(body - header)});
      std::copy(pre.begin(), pre.end(), garbage.begin());
    }
    wire::sealer in;
    auto d = wire::decode(in, garbage);
    INFO("iteration " << iteration << ", " << garbage.size() << " bytes");
    REQUIRE_FALSE(d);
    REQUIRE((d.error().code == errc::protocol || d.error().code == errc::auth));
    (d.error().code == errc::protocol ? refused_as_protocol : refused_as_auth)++;
    CHECK(in.sequence() == 0);

    // Parsing random header bytes may or may not succeed; it must not crash.
    pb::Envelope env;
    (void)wire::parse_envelope(garbage, env);
  }
  // Both refusal paths were exercised.
  CHECK(refused_as_protocol > 1000);
  CHECK(refused_as_auth > 1000);
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
