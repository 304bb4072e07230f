// The destination's rounds (migration/image_rounds.hpp) against a peer that
// lies: a pagemap of a few bytes claiming 2^30 pages is refused before
// anything is sized from it, and a pages file larger than the storage's free
// space is refused as no_space before it is created.
#include <catch2/catch.hpp>

#include <fstream>

#include "images/criu_image.hpp"
#include "migration/image_rounds.hpp"
#include "migrated.pb.h"
#include "temp_dir.hpp"

using namespace migrated;

namespace {

void put_u32(std::string& out, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(char(std::uint8_t(v >> (8 * i))));
}
void put_varint(std::string& out, std::uint64_t v) {
  while (v >= 0x80) {
    out.push_back(char(std::uint8_t(v) | 0x80));
    v >>= 7;
  }
  out.push_back(char(std::uint8_t(v)));
}
void entry(std::string& out, const std::string& msg) {
  put_u32(out, std::uint32_t(msg.size()));
  out += msg;
}

// A CRIU pagemap: head {pages_id 1}, one present run of `pages` at 4 GiB.
std::string pagemap_claiming(std::uint64_t pages) {
  std::string img, head, run;
  put_u32(img, images::criu_image::img_common_magic);
  put_u32(img, images::criu_image::pagemap_magic);
  put_varint(head, 1 << 3);
  put_varint(head, 1);
  entry(img, head);
  put_varint(run, 1 << 3);
  put_varint(run, std::uint64_t(4) << 30);
  put_varint(run, 2 << 3);
  put_varint(run, pages);
  put_varint(run, 4 << 3);
  put_varint(run, 4);  // present
  entry(img, run);
  return img;
}

result<std::unique_ptr<transport::chunk_sink>> open_pages(const std::filesystem::path& base, std::uint64_t pages) {
  migration::round_receiver rounds(base);
  auto dir = rounds.begin_round(1);
  REQUIRE(dir.has_value());
  std::ofstream(*dir / "pagemap-1.img", std::ios::binary) << pagemap_claiming(pages);
  asio::thread_pool pool(1);
  auto opts = rounds.options(pool);
  pb::FileBegin b;
  b.set_path("pages-1.img");
  b.set_pagemap("pagemap-1.img");
  b.set_page_delta(true);
  b.set_size(pages * 4096);
  return opts.open_sink(b, *dir / "pages-1.img");
}

}  // namespace

TEST_CASE("a pagemap claiming 2^30 pages is refused before anything is sized from it", "[image_rounds]") {
  testing::temp_dir tmp;
  auto sink = open_pages(tmp.path, std::uint64_t(1) << 30);
  REQUIRE_FALSE(sink.has_value());
  CHECK(sink.error().code == errc::protocol);
  CHECK_THAT(sink.error().message, Catch::Matchers::Contains("claims 1073741824 pages"));
}

TEST_CASE("a pages file larger than the free storage is refused as no space", "[image_rounds]") {
  testing::temp_dir tmp;
  auto sink = open_pages(tmp.path, std::uint64_t(1) << 28);  // 1 TiB: more than this disk has free
  REQUIRE_FALSE(sink.has_value());
  CHECK(sink.error().code == errc::no_space);
  CHECK_FALSE(std::filesystem::exists(tmp.path / "round-1" / "pages-1.img"));
}

TEST_CASE("an honest pages file opens", "[image_rounds]") {
  testing::temp_dir tmp;
  auto sink = open_pages(tmp.path, 8);
  INFO((sink ? std::string() : sink.error().message));
  CHECK(sink.has_value());
}
