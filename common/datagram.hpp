// Commands as single UDP datagrams, for controllers that fire commands the
// way seed D's does. A Datagram (proto) carries sender, a random nonce, a
// timestamp and the serialized Envelope, with the sender's certificate and
// its signature over all of them (common/credentials.hpp). The receiver
// refuses a certificate not of its fleet, a bad signature, a timestamp more
// than max_skew away from its clock, and any nonce it has already accepted
// within the window; what the sender may ask is the caller's check (its
// role). Replies travel the same way. Bulk data never goes over UDP.
#pragma once

#include <chrono>
#include <cstdint>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/credentials.hpp"
#include "common/error.hpp"
#include "migrated.pb.h"

namespace migrated::datagram {

constexpr std::size_t max_datagram_bytes = 65000;  // one UDP datagram
constexpr std::chrono::milliseconds max_skew{30000};

using clock = std::chrono::system_clock;

// Signed by `me`, who is named as the sender.
std::vector<std::uint8_t> seal(const credentials& me, const pb::Envelope& body, clock::time_point now);

// Remembers accepted nonces for 2 * max_skew, never more than max_entries.
// A full memory refuses new nonces until old ones expire: forgetting one
// still inside the window would let its datagram be replayed. (Filling it
// takes max_entries datagrams signed by members of the fleet within the window.)
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
  node_identity sender;  // as its certificate proves
  pb::Envelope body;
};

// Verifies against `trust`'s fleet CA and decodes. Errors: errc::protocol
// (garbage, oversize), errc::auth (certificate or signature), errc::timeout
// (stale), errc::already_exists (replay), errc::busy (replay memory full).
result<opened> open(const credentials& trust, std::span<const std::uint8_t> bytes,
                    replay_guard& guard, clock::time_point now);

}  // namespace migrated::datagram
