// zstd for chunks on the wire. One compressor/decompressor per stream (they
// keep their zstd contexts); each chunk is compressed independently so the
// receiver can verify and write chunk by chunk. A chunk whose compressed
// form is not smaller is sent raw (the caller checks `worth_it`).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "common/error.hpp"

namespace migrated {

class zstd_compressor {
 public:
  explicit zstd_compressor(int level);
  ~zstd_compressor();
  zstd_compressor(const zstd_compressor&) = delete;
  zstd_compressor& operator=(const zstd_compressor&) = delete;
  // Compresses `in` into `out` (resized). errc::internal on zstd failure.
  result<void> compress(std::span<const std::uint8_t> in, std::vector<std::uint8_t>& out);
  int level() const { return level_; }
  void set_level(int level) { level_ = level; }

 private:
  void* ctx_;
  int level_;
};

class zstd_decompressor {
 public:
  zstd_decompressor();
  ~zstd_decompressor();
  zstd_decompressor(const zstd_decompressor&) = delete;
  zstd_decompressor& operator=(const zstd_decompressor&) = delete;
  // Decompresses `in`, which must expand to exactly out.size() bytes;
  // errc::protocol otherwise (corrupt or lying peer).
  result<void> decompress(std::span<const std::uint8_t> in, std::span<std::uint8_t> out);

 private:
  void* ctx_;
};

}  // namespace migrated
