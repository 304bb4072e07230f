// Connection limits (see connections.hpp).
#include "server/connections.hpp"

#include <algorithm>

namespace migrated::server {

connections::id connections::arrive(const std::string& source, std::function<void()> close) {
  // Room first: this source's oldest pending connection, else the oldest of all.
  if (pending_by_source_[source] >= limits_.pending_per_source) {
    auto it = std::find_if(pending_.begin(), pending_.end(), [&](const entry& e) { return e.source == source; });
    if (it != pending_.end()) evict(it);
  }
  if (pending_.size() >= limits_.pending) {
    // The source holding most pending connections gives way (its oldest):
    // a flood, not a lone controller in the middle of its handshake.
    std::size_t most = 0;
    for (const auto& [src, n] : pending_by_source_) most = std::max(most, n);
    auto it = std::find_if(pending_.begin(), pending_.end(),
                           [&](const entry& e) { return pending_by_source_[e.source] == most; });
    evict(it != pending_.end() ? it : pending_.begin());
  }
  const id c = next_++;
  pending_.push_back({c, source, std::move(close)});
  ++pending_by_source_[source];
  known_[c] = false;
  return c;
}

void connections::evict(std::list<entry>::iterator it) {
  auto close = std::move(it->close);
  if (--pending_by_source_[it->source] == 0) pending_by_source_.erase(it->source);
  known_.erase(it->c);
  pending_.erase(it);
  ++evicted_;
  if (close) close();  // its coroutine ends on its own; leave() then finds nothing
}

bool connections::authenticate(id c) {
  auto k = known_.find(c);
  if (k == known_.end() || k->second) return k != known_.end();
  if (authenticated_ >= limits_.authenticated) return false;
  auto it = std::find_if(pending_.begin(), pending_.end(), [&](const entry& e) { return e.c == c; });
  if (it != pending_.end()) {
    if (--pending_by_source_[it->source] == 0) pending_by_source_.erase(it->source);
    pending_.erase(it);
  }
  k->second = true;
  ++authenticated_;
  return true;
}

void connections::leave(id c) {
  auto k = known_.find(c);
  if (k == known_.end()) return;  // evicted earlier
  if (k->second) {
    --authenticated_;
  } else {
    auto it = std::find_if(pending_.begin(), pending_.end(), [&](const entry& e) { return e.c == c; });
    if (it != pending_.end()) {
      if (--pending_by_source_[it->source] == 0) pending_by_source_.erase(it->source);
      pending_.erase(it);
    }
  }
  known_.erase(k);
}

}  // namespace migrated::server
