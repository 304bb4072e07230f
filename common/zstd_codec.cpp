// zstd compression of transfer chunks.
//
// Contexts are created once per stream and reused: allocating a compression
// context costs more than compressing a small chunk, and a migration sends
// thousands of them. Each chunk is a complete zstd frame, so the receiver
// can decompress, verify and write chunk by chunk, and a corrupt chunk is
// detected where it is rather than poisoning the rest of the stream.
//
// The receiver always knows how large a chunk must become (FileChunk's
// raw_bytes) and decompresses into exactly that space: a peer cannot make
// us allocate more, and a chunk expanding to any other size is refused.
#include "common/zstd_codec.hpp"

#include <algorithm>
#include <new>
#include <string>

#include <zstd.h>

namespace migrated {
namespace {

// Level 0 means "store" in the configuration; the caller does not compress
// then, but if it does anyway the cheapest real level is used (zstd itself
// would read 0 as its default level, 3).
int effective_level(int level) {
  if (level == 0) return 1;
  return std::clamp(level, ZSTD_minCLevel(), ZSTD_maxCLevel());
}

ZSTD_CCtx* cctx(void* p) { return static_cast<ZSTD_CCtx*>(p); }
ZSTD_DCtx* dctx(void* p) { return static_cast<ZSTD_DCtx*>(p); }

}  // namespace

zstd_compressor::zstd_compressor(int level) : ctx_(ZSTD_createCCtx()), level_(level) {
  if (ctx_ == nullptr) throw std::bad_alloc();
}

zstd_compressor::~zstd_compressor() { ZSTD_freeCCtx(cctx(ctx_)); }

result<void> zstd_compressor::compress(std::span<const std::uint8_t> in,
                                       std::vector<std::uint8_t>& out) {
  out.resize(ZSTD_compressBound(in.size()));
  const std::size_t n = ZSTD_compressCCtx(cctx(ctx_), out.data(), out.size(), in.data(),
                                          in.size(), effective_level(level_));
  if (ZSTD_isError(n)) {
    out.clear();
    return fail(errc::internal, std::string("zstd compress: ") + ZSTD_getErrorName(n));
  }
  out.resize(n);
  return {};
}

zstd_decompressor::zstd_decompressor() : ctx_(ZSTD_createDCtx()) {
  if (ctx_ == nullptr) throw std::bad_alloc();
}

zstd_decompressor::~zstd_decompressor() { ZSTD_freeDCtx(dctx(ctx_)); }

result<void> zstd_decompressor::decompress(std::span<const std::uint8_t> in,
                                           std::span<std::uint8_t> out) {
  const std::size_t n =
      ZSTD_decompressDCtx(dctx(ctx_), out.data(), out.size(), in.data(), in.size());
  if (ZSTD_isError(n))
    return fail(errc::protocol, "corrupt zstd chunk (" + std::to_string(in.size()) +
                                    " bytes, expected to expand to " +
                                    std::to_string(out.size()) + "): " + ZSTD_getErrorName(n));
  if (n != out.size())
    return fail(errc::protocol, "zstd chunk expands to " + std::to_string(n) +
                                    " bytes, expected " + std::to_string(out.size()));
  return {};
}

}  // namespace migrated
