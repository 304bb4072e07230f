// Adaptive compression policy (see compression.hpp).
#include "transport/compression.hpp"

#include <algorithm>

namespace migrated::transport {

int adaptive_compression::next_level(std::size_t bytes) {
  if (max_level_ <= 0 || bytes < min_bytes) return 0;
  if (skip_ > 0) {
    --skip_;
    return 0;
  }
  return level_;
}

void adaptive_compression::compressed(std::size_t raw, std::size_t packed, double ms) {
  if (raw < min_bytes) return;
  const bool gained = double(packed) < double(raw) * (1.0 - min_gain);
  const double link = link_bytes_per_ms_.load(std::memory_order_relaxed);
  const double rate = ms > 0 ? double(raw) / ms : 1e12;
  // Compression is the bottleneck when it produces less than the link takes.
  const bool too_slow = link > 0 && rate < link;
  if (!gained || (too_slow && level_ <= 1)) {
    skip_ = skip_run_;
    skip_run_ = std::min(skip_run_ * 2, max_skip);
    return;
  }
  skip_run_ = 4;
  if (too_slow) level_ = std::max(1, level_ - 1);
  else if (link > 0 && rate > 2 * link) level_ = std::min(max_level_, level_ + 1);
}

void adaptive_compression::sent(std::size_t bytes, double ms) {
  if (ms <= 0 || bytes < 4096) return;
  const double now = double(bytes) / ms;
  const double old = link_bytes_per_ms_.load(std::memory_order_relaxed);
  link_bytes_per_ms_.store(old == 0 ? now : 0.8 * old + 0.2 * now, std::memory_order_relaxed);
}

}  // namespace migrated::transport
