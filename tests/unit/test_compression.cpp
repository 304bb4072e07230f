// The adaptive compression policy: raw stretches for incompressible data,
// lower levels when the compressor is slower than the link.
#include <catch2/catch.hpp>

#include "transport/compression.hpp"

using migrated::transport::adaptive_compression;

TEST_CASE("compression: level 0 never compresses", "[compression]") {
  adaptive_compression p(0);
  for (int i = 0; i < 10; ++i) CHECK(p.next_level(1 << 20) == 0);
}

TEST_CASE("compression: incompressible data is sent raw for growing stretches", "[compression]") {
  adaptive_compression p(3);
  CHECK(p.next_level(1 << 20) == 3);
  p.compressed(1 << 20, (1 << 20) + 40, 1.0);  // grew: incompressible
  int raw = 0;
  while (p.next_level(1 << 20) == 0) ++raw;
  CHECK(raw == 4);
  p.compressed(1 << 20, 1 << 20, 1.0);  // still incompressible: a longer stretch
  raw = 0;
  while (p.next_level(1 << 20) == 0) ++raw;
  CHECK(raw == 8);
  p.compressed(1 << 20, 1 << 18, 1.0);  // compressible again: every chunk compressed
  CHECK(p.next_level(1 << 20) == 3);
  CHECK(p.next_level(1 << 20) == 3);
}

TEST_CASE("compression: a compressor slower than the link steps down, then off", "[compression]") {
  adaptive_compression p(3);
  p.sent(1 << 20, 1.0);  // the link carries 1 MiB per ms
  // Compressing 1 MiB takes 10 ms: ten times slower than the link.
  p.compressed(1 << 20, 1 << 19, 10.0);
  CHECK(p.next_level(1 << 20) == 2);
  p.compressed(1 << 20, 1 << 19, 10.0);
  CHECK(p.next_level(1 << 20) == 1);
  p.compressed(1 << 20, 1 << 19, 10.0);
  CHECK(p.next_level(1 << 20) == 0);  // at level 1 and still too slow: raw
}

TEST_CASE("compression: a slow link lets the level climb back", "[compression]") {
  adaptive_compression p(3);
  p.sent(1 << 20, 1.0);
  p.compressed(1 << 20, 1 << 19, 10.0);
  CHECK(p.next_level(1 << 20) == 2);
  for (int i = 0; i < 50; ++i) p.sent(1 << 20, 100.0);  // the link slows to 10 KiB/ms
  p.compressed(1 << 20, 1 << 19, 1.0);
  CHECK(p.next_level(1 << 20) == 3);
}

TEST_CASE("compression: tiny chunks go raw and do not count as evidence", "[compression]") {
  adaptive_compression p(3);
  CHECK(p.next_level(13) == 0);
  p.compressed(13, 40, 0.01);  // a tiny chunk that grew says nothing
  CHECK(p.next_level(1 << 20) == 3);
}
