// TCP framing. Every frame on a connection is
//
//   u32 header_len | u32 payload_len | header (pb::Envelope) | payload
//
// lengths big-endian. Connections are TLS 1.3 (transport/tls.hpp): TLS
// encrypts every frame and its records' tags and sequence numbers keep a
// frame from being altered, dropped, replayed or reordered unnoticed, so
// frames carry no tag of their own.
//
// Bulk bytes (file chunks) travel as the payload, not inside the protobuf,
// so they are never copied through a message. Both lengths are checked
// against their maxima before anything is allocated.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <vector>

#include "common/error.hpp"

namespace migrated::pb { class Envelope; }

namespace migrated::wire {

constexpr std::uint32_t protocol_version = 2;  // 2: TLS 1.3, certificates
constexpr std::size_t prefix_bytes = 8;
constexpr std::uint32_t max_header_bytes = 4u << 20;   // a tree manifest part; larger is a peer bug
constexpr std::uint32_t max_payload_bytes = 8u << 20;  // a chunk is at most 4 MiB raw (+ zstd bound)

struct prefix {
  std::uint32_t header_len = 0;
  std::uint32_t payload_len = 0;
};

std::array<std::uint8_t, prefix_bytes> encode_prefix(prefix p);

// errc::protocol when a length is zero (header) or over its maximum.
result<prefix> decode_prefix(std::span<const std::uint8_t, prefix_bytes> bytes);

// A whole frame as bytes, for tests and fuzzing: prefix | header | payload.
std::vector<std::uint8_t> encode(const pb::Envelope& header, std::span<const std::uint8_t> payload);

// Parses one whole frame from `bytes` (exactly one frame). Used by tests and
// fuzzing; the socket path reads the same pieces incrementally.
struct decoded {
  std::vector<std::uint8_t> header_bytes;
  std::vector<std::uint8_t> payload;
};
result<decoded> decode(std::span<const std::uint8_t> bytes);

// Parses the header bytes into an Envelope; errc::protocol when they are
// not a valid message or have no body set.
result<void> parse_envelope(std::span<const std::uint8_t> header, pb::Envelope& out);

}  // namespace migrated::wire
