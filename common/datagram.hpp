// Commands as single UDP datagrams, for controllers that fire commands the
// way seed D's does. A Datagram (proto) carries sender, a random nonce, a
// timestamp and the serialized Envelope, sealed with HMAC-SHA256 under the
// psk. The receiver refuses a bad tag, a timestamp more than max_skew away
// from its clock, and any nonce it has already accepted within the window.
// Replies travel the same way. Bulk data never goes over UDP.
#pragma once

#include <chrono>
#include <cstdint>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/auth.hpp"
#include "common/error.hpp"
#include "migrated.pb.h"

namespace migrated::datagram {

constexpr std::size_t max_datagram_bytes = 65000;  // one UDP datagram
constexpr std::chrono::milliseconds max_skew{30000};

using clock = std::chrono::system_clock;

std::vector<std::uint8_t> seal(const auth::psk& key, std::string_view sender,
                               const pb::Envelope& body, clock::time_point now);

// Remembers accepted nonces for 2 * max_skew, never more than max_entries.
// A full memory refuses new nonces until old ones expire: forgetting one
// still inside the window would let its datagram be replayed. (Filling it
// takes max_entries datagrams under the key within the window.)
class replay_guard {
 public:
  static constexpr std::size_t max_entries = 100000;
  enum class verdict { fresh, replay, full };
  // fresh: remembered now; replay: seen before; full: refused, nothing forgotten.
  verdict accept(std::uint64_t nonce, clock::time_point sent, clock::time_point now);
  std::size_t size() const { return seen_.size(); }

 private:
  std::unordered_map<std::uint64_t, clock::time_point> seen_;
};

struct opened {
  std::string sender;
  pb::Envelope body;
};

// Verifies and decodes. Errors: errc::protocol (garbage, oversize),
// errc::auth (bad tag), errc::timeout (stale), errc::already_exists (replay).
result<opened> open(const auth::psk& key, std::span<const std::uint8_t> bytes,
                    replay_guard& guard, clock::time_point now);

}  // namespace migrated::datagram
