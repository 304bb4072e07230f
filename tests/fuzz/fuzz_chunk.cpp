// A compressed file chunk as the receiver handles it (file_receive.cpp,
// common/zstd_codec.hpp): the announced raw size, then the zstd bytes,
// decompressed into exactly that space with one decompressor reused across
// chunks as a stream reuses it. Input: u32 raw_bytes (little-endian, taken
// modulo 1 MiB + 1 to keep runs fast; the receiver refuses more than
// wire::max_payload_bytes before it gets here), then the chunk.
// Invariant: an accepted chunk fills exactly raw_bytes and compresses back
// to bytes that decompress to the same.
#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

#include "common/zstd_codec.hpp"
#include "fuzz_support.hpp"

using namespace migrated;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 4) return 0;
  std::uint32_t raw = 0;
  for (int i = 3; i >= 0; --i) raw = (raw << 8) | data[i];
  raw %= (1u << 20) + 1;
  static zstd_decompressor dz;
  std::vector<std::uint8_t> out(raw);
  auto ok = dz.decompress(std::span(data + 4, size - 4), out);
  if (!ok) {
    FUZZ_CHECK(ok.error().code == errc::protocol, ok.error().message);
    return 0;
  }
  zstd_compressor z(1);
  std::vector<std::uint8_t> packed, back(raw);
  FUZZ_CHECK(z.compress(out, packed).has_value());
  FUZZ_CHECK(dz.decompress(packed, back).has_value());
  FUZZ_CHECK(back == out);
  return 0;
}
