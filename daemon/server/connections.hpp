// The TCP connections this node holds, and the limits that keep a flood of
// them from wearing it down (config limits.*).
//
// A connection is pending until its peer has proven the pre-shared key; a
// pending connection costs at most a few KiB (channel::limit_frames) and
// has limits.handshake_ms to finish. Pending slots are few and cheap to
// take, so they are given up: when a source address holds
// pending_per_source of them, its oldest is closed for its new one; when
// all pending_connections are taken, the oldest of the source that holds
// most of them is. Idle or slow connections — from one address or from
// many — therefore never keep a controller that holds the key from being
// served: it holds one pending connection, for the milliseconds of its
// handshake, and a flood's sources hold more. Authenticated connections are bounded by limits.connections
// (refused, with a reason, beyond it). Only the I/O thread touches this.
#pragma once

#include <cstdint>
#include <functional>
#include <list>
#include <map>
#include <string>

namespace migrated::server {

class connections {
 public:
  struct limits {
    std::size_t pending = 64;
    std::size_t pending_per_source = 8;
    std::size_t authenticated = 256;
  };
  using id = std::uint64_t;

  explicit connections(limits l) : limits_(l) {}

  // A new connection from `source`, pending; `close` ends it if it must make room.
  id arrive(const std::string& source, std::function<void()> close);
  // Its handshake succeeded; false (and it stays pending) when every
  // authenticated slot is taken.
  bool authenticate(id c);
  // It ended (whatever its state).
  void leave(id c);

  std::size_t pending() const { return pending_.size(); }
  std::size_t authenticated() const { return authenticated_; }
  std::uint64_t evicted() const { return evicted_; }

 private:
  struct entry {
    id c;
    std::string source;
    std::function<void()> close;
  };
  void evict(std::list<entry>::iterator it);

  limits limits_;
  std::list<entry> pending_;  // oldest first
  std::map<std::string, std::size_t> pending_by_source_;
  std::map<id, bool> known_;   // id → authenticated
  std::size_t authenticated_ = 0;
  id next_ = 1;
  std::uint64_t evicted_ = 0;
};

}  // namespace migrated::server
