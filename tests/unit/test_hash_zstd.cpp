// Unit tests for common/hash (XXH3-128 streaming, files, hex) and
// common/zstd_codec (round trips and refusal of corrupt or lying chunks).
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "common/hash.hpp"
#include "common/zstd_codec.hpp"

using namespace migrated;
namespace fs = std::filesystem;

namespace {

std::vector<std::uint8_t> noise(std::size_t n, std::uint32_t seed) {
  std::mt19937 gen(seed);
  std::vector<std::uint8_t> out(n);
  for (auto& b : out) b = static_cast<std::uint8_t>(gen());
  return out;
}

std::vector<std::uint8_t> compressible_data(std::size_t n) {
  const std::string line = "container web-1 checkpointed page 0000 of 4096\n";
  std::vector<std::uint8_t> out(n);
  for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<std::uint8_t>(line[i % line.size()]);
  return out;
}

std::span<const std::uint8_t> bytes_of(std::string_view s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

struct temp_file {
  fs::path path;
  explicit temp_file(const std::vector<std::uint8_t>& data) {
    std::string pattern = (fs::temp_directory_path() / "migrated-hash-XXXXXX").string();
    const int fd = ::mkstemp(pattern.data());
    REQUIRE(fd >= 0);
    ::close(fd);
    path = pattern;
    std::ofstream out(path, std::ios::binary);
    out.write(reinterpret_cast<const char*>(data.data()),
              static_cast<std::streamsize>(data.size()));
  }
  ~temp_file() { fs::remove(path); }
};

}  // namespace

TEST_CASE("streaming xxh128 equals one-shot over any split", "[hash]") {
  const auto data = noise(3 << 20 | 123, 1);
  const digest128 whole = xxh128(data);
  std::mt19937 gen(2);
  for (int round = 0; round < 20; ++round) {
    xxh128_stream stream;
    std::size_t at = 0;
    while (at < data.size()) {
      const std::size_t step = std::min<std::size_t>(data.size() - at, gen() % 70000);
      stream.update({data.data() + at, step});
      at += step;
    }
    REQUIRE(stream.digest() == whole);
  }
}

TEST_CASE("xxh128 known values are stable", "[hash]") {
  const digest128 empty = xxh128(std::span<const std::uint8_t>{});
  CHECK(xxh128_stream().digest() == empty);
  CHECK(xxh128(bytes_of("")) == empty);
  CHECK(xxh128(bytes_of("a")) != empty);
  CHECK(xxh128(bytes_of("a")) == xxh128(bytes_of("a")));
  CHECK(xxh128(bytes_of("a")) != xxh128(bytes_of("b")));
  // XXH3-128 of the empty input, canonical (big-endian) form.
  CHECK(to_hex(empty) == "99aa06d3014798d86001c324468d497f");
}

TEST_CASE("digest() does not end the stream", "[hash]") {
  xxh128_stream stream;
  stream.update(bytes_of("hello "));
  CHECK(stream.digest() == xxh128(bytes_of("hello ")));
  stream.update(bytes_of("world"));
  CHECK(stream.digest() == xxh128(bytes_of("hello world")));
}

TEST_CASE("hash_file equals xxh128 of the file's bytes", "[hash]") {
  SECTION("several read chunks") {
    const auto data = noise((1 << 20) * 2 + 77, 3);
    temp_file file(data);
    auto digest = hash_file(file.path);
    REQUIRE(digest);
    CHECK(*digest == xxh128(data));
  }
  SECTION("empty file") {
    temp_file file({});
    auto digest = hash_file(file.path);
    REQUIRE(digest);
    CHECK(*digest == xxh128(std::span<const std::uint8_t>{}));
  }
  SECTION("missing file") {
    auto digest = hash_file(fs::temp_directory_path() / "migrated-no-such-file");
    REQUIRE_FALSE(digest);
    CHECK(digest.error().code == errc::not_found);
    CHECK_THAT(digest.error().message, Catch::Contains("migrated-no-such-file"));
  }
}

TEST_CASE("to_hex", "[hash]") {
  const std::vector<std::uint8_t> data{0x00, 0x01, 0x7f, 0x80, 0xab, 0xff};
  CHECK(to_hex(data) == "00017f80abff");
  CHECK(to_hex(std::span<const std::uint8_t>{}).empty());
}

TEST_CASE("zstd round trips", "[zstd]") {
  zstd_compressor compressor(3);
  zstd_decompressor decompressor;
  std::vector<std::uint8_t> packed;
  // One context for many chunks, as a stream uses it.
  for (const auto& data : {noise(100000, 4), compressible_data(1 << 20),
                           noise(1, 5), std::vector<std::uint8_t>{}}) {
    REQUIRE(compressor.compress(data, packed));
    std::vector<std::uint8_t> unpacked(data.size());
    REQUIRE(decompressor.decompress(packed, unpacked));
    CHECK(unpacked == data);
  }
  const auto text = compressible_data(1 << 20);
  REQUIRE(compressor.compress(text, packed));
  CHECK(packed.size() < text.size() / 20);
}

TEST_CASE("zstd level 0 still produces valid zstd", "[zstd]") {
  zstd_compressor compressor(0);
  CHECK(compressor.level() == 0);
  const auto data = compressible_data(50000);
  std::vector<std::uint8_t> packed;
  REQUIRE(compressor.compress(data, packed));
  std::vector<std::uint8_t> unpacked(data.size());
  REQUIRE(zstd_decompressor().decompress(packed, unpacked));
  CHECK(unpacked == data);
}

TEST_CASE("zstd refuses a chunk of the wrong size or garbage", "[zstd]") {
  zstd_compressor compressor(3);
  zstd_decompressor decompressor;
  const auto data = compressible_data(10000);
  std::vector<std::uint8_t> packed;
  REQUIRE(compressor.compress(data, packed));

  SECTION("expected size too small") {
    std::vector<std::uint8_t> out(data.size() - 1);
    auto r = decompressor.decompress(packed, out);
    REQUIRE_FALSE(r);
    CHECK(r.error().code == errc::protocol);
  }
  SECTION("expected size too large") {
    std::vector<std::uint8_t> out(data.size() + 1);
    auto r = decompressor.decompress(packed, out);
    REQUIRE_FALSE(r);
    CHECK(r.error().code == errc::protocol);
  }
  SECTION("garbage") {
    const auto junk = noise(500, 6);
    std::vector<std::uint8_t> out(data.size());
    auto r = decompressor.decompress(junk, out);
    REQUIRE_FALSE(r);
    CHECK(r.error().code == errc::protocol);
  }
  SECTION("truncated") {
    std::vector<std::uint8_t> out(data.size());
    auto r = decompressor.decompress({packed.data(), packed.size() / 2}, out);
    REQUIRE_FALSE(r);
    CHECK(r.error().code == errc::protocol);
  }
  SECTION("the context survives an error") {
    std::vector<std::uint8_t> out(data.size());
    REQUIRE_FALSE(decompressor.decompress(noise(64, 7), out));
    REQUIRE(decompressor.decompress(packed, out));
    CHECK(out == data);
  }
}
