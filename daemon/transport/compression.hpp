// Adaptive compression for a stream of chunks. zstd only pays when it makes
// the data smaller faster than the link would carry the difference:
// - a chunk that did not shrink by at least 3% marks the data incompressible
//   (random pages, already-compressed files): the next chunks go raw, for a
//   stretch that doubles while it stays so (4 .. 64 chunks), then it probes again;
// - when compressing runs slower than the link drains, the level drops one
//   step at a time to 1, and below that compression is skipped like
//   incompressible data; when the link is the bottleneck again it climbs back
//   towards the configured level.
// The link rate comes from the sender (another thread), hence the atomic.
#pragma once

#include <atomic>
#include <cstddef>

namespace migrated::transport {

class adaptive_compression {
 public:
  explicit adaptive_compression(int max_level) : max_level_(max_level), level_(max_level) {}

  // The level for the next chunk of `bytes`; 0: send it raw.
  int next_level(std::size_t bytes);
  // A chunk of `raw` bytes became `packed` bytes in `ms`.
  void compressed(std::size_t raw, std::size_t packed, double ms);
  // The link took `ms` to carry `bytes` (thread-safe).
  void sent(std::size_t bytes, double ms);

  static constexpr double min_gain = 0.03;  // less than 3% smaller: not worth it
  // Smaller chunks are sent raw and say nothing about the data: a zstd frame
  // alone costs more than a tiny file could save.
  static constexpr std::size_t min_bytes = 4096;
  static constexpr int max_skip = 64;

 private:
  int max_level_;
  int level_;
  int skip_ = 0;        // chunks still to send raw
  int skip_run_ = 4;    // length of the next raw stretch
  std::atomic<double> link_bytes_per_ms_{0};
};

}  // namespace migrated::transport
