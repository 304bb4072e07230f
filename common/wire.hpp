// TCP framing. Every frame on a connection is
//
//   u32 header_len | u32 payload_len | header (pb::Envelope) | payload | tag[32]
//
// lengths big-endian, tag = HMAC-SHA256(key, u64 seq | both lengths | header |
// payload). `seq` counts frames per direction from 0, so a frame cannot be
// dropped, replayed or reordered without the receiver noticing. Before the
// handshake completes the key is a fixed public constant (integrity only);
// afterwards each direction has its own session key (auth::session_keys).
//
// Bulk bytes (file chunks) travel as the payload, not inside the protobuf,
// so they are never copied through a message. Both lengths are checked
// against their maxima before anything is allocated.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <vector>

#include "common/auth.hpp"
#include "common/error.hpp"

namespace migrated::pb { class Envelope; }

namespace migrated::wire {

constexpr std::uint32_t protocol_version = 1;
constexpr std::size_t prefix_bytes = 8;
constexpr std::size_t tag_bytes = auth::mac_bytes;
constexpr std::uint32_t max_header_bytes = 4u << 20;   // a tree manifest part; larger is a peer bug
constexpr std::uint32_t max_payload_bytes = 8u << 20;  // a chunk is at most 4 MiB raw (+ zstd bound)

struct prefix {
  std::uint32_t header_len = 0;
  std::uint32_t payload_len = 0;
};

std::array<std::uint8_t, prefix_bytes> encode_prefix(prefix p);

// errc::protocol when a length is zero (header) or over its maximum.
result<prefix> decode_prefix(std::span<const std::uint8_t, prefix_bytes> bytes);

// Computes and checks frame tags for one direction of a connection.
class sealer {
 public:
  sealer();  // the public pre-handshake key
  void rekey(auth::bytes key) { key_ = std::move(key); }
  auth::mac tag(prefix p, std::span<const std::uint8_t> header,
                std::span<const std::uint8_t> payload) const;
  // Checks the tag of the next frame and advances the sequence on success.
  result<void> open(prefix p, std::span<const std::uint8_t> header,
                    std::span<const std::uint8_t> payload,
                    std::span<const std::uint8_t> tag);
  // Tags the next outgoing frame and advances the sequence.
  auth::mac seal(prefix p, std::span<const std::uint8_t> header,
                 std::span<const std::uint8_t> payload);
  std::uint64_t sequence() const { return seq_; }

 private:
  auth::bytes key_;
  std::uint64_t seq_ = 0;
};

// A whole frame as bytes, for tests and for the UDP-free paths that want one
// buffer: prefix | header | payload | tag.
std::vector<std::uint8_t> encode(sealer& s, const pb::Envelope& header,
                                 std::span<const std::uint8_t> payload);

// Parses one whole frame from `bytes` (exactly one frame). Used by tests and
// fuzzing; the socket path reads the same pieces incrementally.
struct decoded {
  std::vector<std::uint8_t> header_bytes;
  std::vector<std::uint8_t> payload;
};
result<decoded> decode(sealer& s, std::span<const std::uint8_t> bytes);

// Parses the header bytes into an Envelope; errc::protocol when they are
// not a valid message or have no body set.
result<void> parse_envelope(std::span<const std::uint8_t> header, pb::Envelope& out);

}  // namespace migrated::wire
