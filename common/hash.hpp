// File checksums: XXH3-128. Frames are already authenticated on the wire;
// this checks that what reached the disk at the destination is exactly what
// the source read, after decompression and reassembly.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>

#include "common/error.hpp"

namespace migrated {

using digest128 = std::array<std::uint8_t, 16>;  // big-endian XXH128 canonical form

class xxh128_stream {
 public:
  xxh128_stream();
  ~xxh128_stream();
  xxh128_stream(const xxh128_stream&) = delete;
  xxh128_stream& operator=(const xxh128_stream&) = delete;
  void update(std::span<const std::uint8_t> data);
  digest128 digest() const;

 private:
  void* state_;
};

digest128 xxh128(std::span<const std::uint8_t> data);
// XXH3-64, as page hashes are compared (a hybrid's unchanged pages).
std::uint64_t xxh3_64(std::span<const std::uint8_t> data);
result<digest128> hash_file(const std::filesystem::path& file);
std::string to_hex(std::span<const std::uint8_t> data);
// "0x7f0012345000": an address (or a code) as error messages write it.
std::string hex(std::uint64_t v);

}  // namespace migrated
