// The room a migration's images need, and the refusal that names it.
#include <catch2/catch.hpp>

#include "migration/disk_space.hpp"
#include "temp_dir.hpp"

using namespace migrated;
using namespace migrated::migration;

TEST_CASE("images need room by method", "[disk_space]") {
  const std::uint64_t mib = 1u << 20;
  const std::uint64_t one = 256 * mib + 32 * mib + fixed_image_bytes;  // memory + 1/8 + fixed
  CHECK(image_bytes_needed(256 * mib, pb::COLD) == one);
  CHECK(image_bytes_needed(256 * mib, pb::PRECOPY) == 2 * one);  // the previous round stays beside the next
  CHECK(image_bytes_needed(256 * mib, pb::DIFF) == 0);
  CHECK(image_bytes_needed(256 * mib, pb::REPLAY) == 0);
  CHECK(image_bytes_needed(0, pb::COLD) == fixed_image_bytes);
}

TEST_CASE("a refusal names the free space and the need", "[disk_space]") {
  const std::uint64_t mib = 1u << 20;
  CHECK(check_room(400 * mib, 304 * mib, 256 * mib, "edge-b", "/var/lib/migrated", "web-1"));
  auto no = check_room(64 * mib, 304 * mib, 256 * mib, "edge-b", "/var/lib/migrated", "web-1");
  REQUIRE_FALSE(no);
  CHECK(no.error().code == errc::no_space);
  CHECK(no.error().message ==
        "edge-b's storage (/var/lib/migrated) has 64.0 MiB free; the images of web-1 need about 304.0 MiB "
        "(256.0 MiB of memory)");
}

TEST_CASE("free space is that of the directory's filesystem", "[disk_space]") {
  testing::temp_dir dir;
  auto free = free_bytes(dir.path);
  REQUIRE(free);
  CHECK(*free > 0);
  CHECK_FALSE(free_bytes(dir.path / "nosuch"));
}
