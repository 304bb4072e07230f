// Unit tests for images/page_set: pagemaps written by CRIU 4.1.1 on a real
// container (tests/unit/fixtures/criu-4.1.1), pagemaps built here byte by
// byte in CRIU's format (flag and compatibility cases CRIU 4.1.1 does not
// write), garbage and truncation, and the lookups the delta code relies on.
#include <fcntl.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "temp_dir.hpp"

#include "images/page_set.hpp"

using namespace migrated;
using namespace migrated::images;
namespace fs = std::filesystem;

namespace {

const fs::path fixtures = fs::path(__FILE__).parent_path() / "fixtures" / "criu-4.1.1";

// Facts about CRIU's format, stated independently of the code under test.
constexpr std::uint32_t img_common_magic = 0x54564319;
constexpr std::uint32_t pagemap_magic = 0x56084025;
constexpr std::uint32_t inventory_magic = 0x58313116;
constexpr std::uint32_t pe_parent = 1, pe_lazy = 2, pe_present = 4;

struct temp_dir : testing::temp_dir {
  // Rewritten in place rather than truncated: freeing blocks is slow on
  // some filesystems, and the tests write hundreds of pagemaps.
  void write(const std::string& name, const std::vector<std::uint8_t>& data) const {
    const int fd = ::open((path / name).c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    REQUIRE(fd >= 0);
    REQUIRE(::pwrite(fd, data.data(), data.size(), 0) == ssize_t(data.size()));
    REQUIRE(::ftruncate(fd, off_t(data.size())) == 0);
    ::close(fd);
  }
};

std::vector<std::uint8_t> read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

void put_u32(std::vector<std::uint8_t>& out, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(std::uint8_t(v >> (8 * i)));
}
void put_varint(std::vector<std::uint8_t>& out, std::uint64_t v) {
  while (v >= 0x80) { out.push_back(std::uint8_t(v) | 0x80); v >>= 7; }
  out.push_back(std::uint8_t(v));
}
void put_field(std::vector<std::uint8_t>& msg, std::uint32_t number, std::uint64_t v) {
  put_varint(msg, std::uint64_t(number) << 3);
  put_varint(msg, v);
}

// A pagemap image as CRIU writes it.
struct pagemap_bytes {
  std::vector<std::uint8_t> bytes;
  explicit pagemap_bytes(bool common_magic = true) {
    if (common_magic) put_u32(bytes, img_common_magic);
    put_u32(bytes, pagemap_magic);
  }
  pagemap_bytes& entry(const std::vector<std::uint8_t>& msg) {
    put_u32(bytes, std::uint32_t(msg.size()));
    bytes.insert(bytes.end(), msg.begin(), msg.end());
    return *this;
  }
  pagemap_bytes& head(std::uint64_t pages_id) {
    std::vector<std::uint8_t> m;
    put_field(m, 1, pages_id);
    return entry(m);
  }
  // CRIU 4.1: vaddr = 1, nr_pages = 2, flags = 4.
  pagemap_bytes& run(std::uint64_t vaddr, std::uint64_t nr_pages, std::optional<std::uint32_t> flags = pe_present) {
    std::vector<std::uint8_t> m;
    put_field(m, 1, vaddr);
    put_field(m, 2, nr_pages);
    if (flags) put_field(m, 4, *flags);
    return entry(m);
  }
};

result<page_set> parse(const std::vector<std::uint8_t>& bytes, const std::string& name = "pagemap-7.img") {
  static const temp_dir dir;
  dir.write(name, bytes);
  return read_page_set(dir.path, name);
}

void require_protocol(const result<page_set>& r, const std::string& name = "pagemap-7.img") {
  REQUIRE_FALSE(r.has_value());
  CHECK(r.error().code == errc::protocol);
  CHECK(r.error().message.find(name) != std::string::npos);
}

}  // namespace

TEST_CASE("pagemaps written by CRIU 4.1.1 parse", "[page_set]") {
  auto tiny = read_page_set(fixtures, "tiny-1-pagemap-1.img");
  REQUIRE(tiny);
  CHECK(tiny->pagemap_name == "tiny-1-pagemap-1.img");
  CHECK(tiny->pages_name == "pages-1.img");
  REQUIRE(tiny->runs.size() == 7);
  CHECK(tiny->runs[0].vaddr == 0x401000);
  CHECK(tiny->runs[0].nr_pages == 1);
  CHECK(tiny->runs[0].flags == pe_present);            // file-backed private
  CHECK(tiny->runs[2].vaddr == 0x4a7000);
  CHECK(tiny->runs[2].flags == (pe_present | pe_lazy));  // anonymous private
  CHECK(tiny->runs[2].first_page == 6);
  CHECK(tiny->runs[6].vaddr == 0x7ffdf3587000);         // the stack
  for (const auto& run : tiny->runs) CHECK(run.has_data);
  CHECK(tiny->stored_pages == 23);
  CHECK(tiny->stored_pages * page_bytes == fs::file_size(fixtures / "tiny-1-pages-1.img"));

  // 6 MiB of heap: one mapping, yet several runs, cut every 256 pages.
  auto dirtier = read_page_set(fixtures, "dirtier-1-pagemap-1.img");
  REQUIRE(dirtier);
  CHECK(dirtier->runs.size() == 15);
  CHECK(dirtier->stored_pages == 1555);  // its pages file held 6369280 bytes
  CHECK(dirtier->runs[7].nr_pages == 256);
  CHECK(dirtier->runs[7].vaddr == dirtier->runs[6].vaddr + 249 * page_bytes);
}

TEST_CASE("the flags decide which runs are in the pages file", "[page_set]") {
  auto r = parse(pagemap_bytes()
                     .head(42)
                     .run(0x10000, 2, pe_present)
                     .run(0x20000, 3, pe_parent)  // in the parent dump
                     .run(0x30000, 1, pe_lazy)    // --lazy-pages: served on demand
                     .run(0x40000, 4, pe_present | pe_lazy)
                     .run(0x50000, 1, 0)
                     .bytes);
  REQUIRE(r);
  CHECK(r->pages_name == "pages-42.img");
  REQUIRE(r->runs.size() == 5);
  const bool data[] = {true, false, false, true, false};
  const std::uint64_t first[] = {0, 2, 2, 2, 6};
  for (std::size_t i = 0; i < 5; ++i) {
    CHECK(r->runs[i].has_data == data[i]);
    CHECK(r->runs[i].first_page == first[i]);
  }
  CHECK(r->runs[3].flags == (pe_present | pe_lazy));
  CHECK(r->stored_pages == 6);
}

TEST_CASE("older and newer pagemap entries parse", "[page_set]") {
  SECTION("no flags field: in_parent decides, as CRIU's own compatibility code does") {
    std::vector<std::uint8_t> parent, present;
    put_field(parent, 1, 0x1000); put_field(parent, 2, 2); put_field(parent, 3, 1);
    put_field(present, 1, 0x5000); put_field(present, 2, 3);
    auto r = parse(pagemap_bytes().head(1).entry(parent).entry(present).bytes);
    REQUIRE(r);
    CHECK(r->runs[0].flags == pe_parent);
    CHECK_FALSE(r->runs[0].has_data);
    CHECK(r->runs[1].flags == pe_present);
    CHECK(r->stored_pages == 3);
  }
  SECTION("a 64-bit nr_pages in field 5 replaces field 2") {
    std::vector<std::uint8_t> m;
    put_field(m, 1, 0x1000); put_field(m, 2, 0); put_field(m, 4, pe_present); put_field(m, 5, 300);
    auto r = parse(pagemap_bytes().head(1).entry(m).bytes);
    REQUIRE(r);
    CHECK(r->runs[0].nr_pages == 300);
  }
  SECTION("unknown fields of every wire type are skipped") {
    std::vector<std::uint8_t> m;
    put_field(m, 1, 0x1000);
    put_varint(m, (9 << 3) | 2); put_varint(m, 3); m.insert(m.end(), {1, 2, 3});  // bytes
    put_varint(m, (10 << 3) | 1); m.insert(m.end(), 8, 0xee);                     // fixed64
    put_varint(m, (11 << 3) | 5); m.insert(m.end(), 4, 0xee);                     // fixed32
    put_field(m, 200, 7);                                                          // high number
    put_field(m, 2, 2);
    auto r = parse(pagemap_bytes().head(1).entry(m).bytes);
    REQUIRE(r);
    CHECK(r->runs[0].nr_pages == 2);
    CHECK(r->stored_pages == 2);
  }
  SECTION("images with only the pagemap magic (before the common magic)") {
    auto r = parse(pagemap_bytes(false).head(3).run(0x1000, 1).bytes);
    REQUIRE(r);
    CHECK(r->pages_name == "pages-3.img");
  }
  SECTION("a pagemap with no runs") {
    auto r = parse(pagemap_bytes().head(1).bytes);
    REQUIRE(r);
    CHECK(r->runs.empty());
    CHECK(r->stored_pages == 0);
  }
}

TEST_CASE("garbage pagemaps are protocol errors naming the file", "[page_set]") {
  std::vector<std::uint8_t> bad_varint = {0x08};
  bad_varint.insert(bad_varint.end(), 10, 0xff);
  std::vector<std::uint8_t> group = {(1 << 3) | 3};
  std::vector<std::uint8_t> no_vaddr, long_bytes;
  put_field(no_vaddr, 2, 1);
  put_field(long_bytes, 1, 0x1000);
  put_varint(long_bytes, (9 << 3) | 2);
  put_varint(long_bytes, 50);
  std::vector<std::uint8_t> wrong_magic;
  put_u32(wrong_magic, img_common_magic);
  put_u32(wrong_magic, inventory_magic);
  std::vector<std::uint8_t> pages_data(4096, 0x90);

  const std::vector<std::vector<std::uint8_t>> cases = {
      {},
      {0x19, 0x43, 0x56},
      {0x19, 0x43, 0x56, 0x54},  // common magic alone
      wrong_magic,
      pages_data,  // a pages file is not a pagemap
      pagemap_bytes().bytes,                                          // no head
      [] { auto b = pagemap_bytes().head(1).bytes; b.pop_back(); return b; }(),
      [] { auto b = pagemap_bytes().head(1).bytes; b.push_back(9); return b; }(),  // cut length
      [] { auto b = pagemap_bytes().head(1).bytes; put_u32(b, 100); return b; }(),  // past the end
      pagemap_bytes().entry({}).bytes,                                // head without pages_id
      pagemap_bytes().head(1).entry(bad_varint).bytes,
      pagemap_bytes().head(1).entry(group).bytes,
      pagemap_bytes().head(1).entry({0x00, 0x01}).bytes,              // field number 0
      pagemap_bytes().head(1).entry(no_vaddr).bytes,
      pagemap_bytes().head(1).entry(long_bytes).bytes,
      pagemap_bytes().head(1).run(0x1001, 1).bytes,                   // not page aligned
      pagemap_bytes().head(1).run(0x1000, 0).bytes,                   // empty run
      pagemap_bytes().head(1).run(0x1000, 1ull << 32).bytes,          // too many pages
      pagemap_bytes().head(1).run(0xfffffffffffff000ull, 2).bytes,    // wraps the address space
      pagemap_bytes().head(1).run(0x4000, 4).run(0x6000, 1).bytes,    // overlap
      pagemap_bytes().head(1).run(0x4000, 1).run(0x2000, 1).bytes,    // out of order
      pagemap_bytes().head(1).run(0x4000, 1).run(0x4000, 1).bytes,    // repeated
  };
  for (std::size_t i = 0; i < cases.size(); ++i) {
    INFO("case " << i);
    require_protocol(parse(cases[i]));
  }
}

TEST_CASE("a truncated or mutated real pagemap never crashes the reader", "[page_set]") {
  const auto whole = read_file(fixtures / "dirtier-2-pagemap-1.img");
  REQUIRE(whole.size() == 265);
  const auto full = parse(whole);
  REQUIRE(full);
  // Cut everywhere: a cut at an entry boundary is a shorter valid pagemap
  // (the format cannot tell), any other cut is an error.
  std::size_t valid_cuts = 0;
  for (std::size_t len = 0; len < whole.size(); ++len) {
    auto r = parse({whole.begin(), whole.begin() + std::ptrdiff_t(len)});
    if (r) {
      ++valid_cuts;
      CHECK(r->runs.size() < full->runs.size());
    } else {
      require_protocol(r);
    }
  }
  CHECK(valid_cuts == full->runs.size());  // after the head and after each run but the last
  std::mt19937 gen(7);
  for (int i = 0; i < 300; ++i) {
    auto bytes = whole;
    for (int k = 0, n = 1 + int(gen() % 4); k < n; ++k) bytes[gen() % bytes.size()] = std::uint8_t(gen());
    auto r = parse(bytes);
    if (!r) require_protocol(r);
  }
}

TEST_CASE("missing pagemaps are not_found", "[page_set]") {
  temp_dir dir;
  auto r = read_page_set(dir.path, "pagemap-1.img");
  REQUIRE_FALSE(r);
  CHECK(r.error().code == errc::not_found);
}

TEST_CASE("find and vaddr_of are inverse over stored pages", "[page_set]") {
  auto r = parse(pagemap_bytes()
                     .head(1)
                     .run(0x10000, 3)
                     .run(0x13000, 2)             // adjacent to the first
                     .run(0x20000, 4, pe_parent)  // not stored
                     .run(0x7f0000000000, 5)
                     .bytes);
  REQUIRE(r);
  const page_set& set = *r;
  REQUIRE(set.stored_pages == 10);
  for (std::uint64_t i = 0; i < set.stored_pages; ++i) {
    const std::uint64_t v = set.vaddr_of(i);
    CHECK(set.find(v) == i);
  }
  CHECK(set.vaddr_of(0) == 0x10000);
  CHECK(set.vaddr_of(4) == 0x14000);
  CHECK(set.vaddr_of(5) == 0x7f0000000000);
  CHECK(set.vaddr_of(9) == 0x7f0000004000);
  CHECK_THROWS_AS(set.vaddr_of(10), std::out_of_range);

  CHECK_FALSE(set.find(0));
  CHECK_FALSE(set.find(0xf000));
  CHECK_FALSE(set.find(0x15000));   // just past the second run
  CHECK_FALSE(set.find(0x21000));   // in the parent, not in this file
  CHECK_FALSE(set.find(0x10001));   // not page aligned
  CHECK_FALSE(set.find(0x7f0000005000));
  CHECK_FALSE(set.find(~std::uint64_t(0) & ~std::uint64_t(0xfff)));

  page_set empty;
  CHECK_FALSE(empty.find(0x1000));
  CHECK_THROWS_AS(empty.vaddr_of(0), std::out_of_range);
}

TEST_CASE("same_layout compares stored pages, not how CRIU cut the runs", "[page_set]") {
  auto base = parse(pagemap_bytes().head(1).run(0x10000, 8).run(0x40000, 2).bytes);
  auto split = parse(pagemap_bytes().head(2).run(0x10000, 3).run(0x13000, 5).run(0x40000, 2).bytes);
  auto with_parent =
      parse(pagemap_bytes().head(1).run(0x10000, 8).run(0x20000, 4, pe_parent).run(0x40000, 2).bytes);
  auto shorter = parse(pagemap_bytes().head(1).run(0x10000, 7).run(0x40000, 3).bytes);
  auto moved = parse(pagemap_bytes().head(1).run(0x10000, 8).run(0x41000, 2).bytes);
  auto not_stored = parse(pagemap_bytes().head(1).run(0x10000, 8).run(0x40000, 2, pe_lazy).bytes);
  REQUIRE((base && split && with_parent && shorter && moved && not_stored));
  CHECK(base->same_layout(*base));
  CHECK(base->same_layout(*split));
  CHECK(split->same_layout(*base));
  CHECK(base->same_layout(*with_parent));
  CHECK_FALSE(base->same_layout(*shorter));  // same page count, other vaddrs
  CHECK_FALSE(base->same_layout(*moved));
  CHECK_FALSE(base->same_layout(*not_stored));

  auto t1 = read_page_set(fixtures, "tiny-1-pagemap-1.img");
  auto t2 = read_page_set(fixtures, "tiny-2-pagemap-1.img");
  auto d1 = read_page_set(fixtures, "dirtier-1-pagemap-1.img");
  auto d2 = read_page_set(fixtures, "dirtier-2-pagemap-1.img");
  REQUIRE((t1 && t2 && d1 && d2));
  CHECK(t1->same_layout(*t2));
  CHECK_FALSE(d1->same_layout(*d2));  // a new mapping between the dumps
}

TEST_CASE("read_all_page_sets reads every pagemap in name order", "[page_set]") {
  temp_dir dir;
  dir.write("pagemap-12.img", pagemap_bytes().head(12).run(0x1000, 1).bytes);
  dir.write("pagemap-1.img", read_file(fixtures / "tiny-1-pagemap-1.img"));
  dir.write("pagemap-shmem-5.img", pagemap_bytes().head(5).run(0, 2).bytes);
  dir.write("pages-1.img", std::vector<std::uint8_t>(23 * page_bytes));
  dir.write("inventory.img", {0x16, 0x31, 0x31, 0x58});
  auto sets = read_all_page_sets(dir.path);
  REQUIRE(sets);
  REQUIRE(sets->size() == 3);
  CHECK((*sets)[0].pagemap_name == "pagemap-1.img");
  CHECK((*sets)[1].pagemap_name == "pagemap-12.img");
  CHECK((*sets)[2].pagemap_name == "pagemap-shmem-5.img");
  CHECK((*sets)[0].stored_pages == 23);

  dir.write("pagemap-2.img", {1, 2, 3, 4, 5, 6, 7, 8});
  auto bad = read_all_page_sets(dir.path);
  REQUIRE_FALSE(bad);
  CHECK(bad.error().code == errc::protocol);
  CHECK(bad.error().message.find("pagemap-2.img") != std::string::npos);

  auto missing = read_all_page_sets(dir.path / "nope");
  REQUIRE_FALSE(missing);
  CHECK(missing.error().code == errc::not_found);
}

TEST_CASE("is_pages_file", "[page_set]") {
  CHECK(is_pages_file("pages-1.img"));
  CHECK(is_pages_file("pages-123.img"));
  CHECK_FALSE(is_pages_file("pagemap-1.img"));
  CHECK_FALSE(is_pages_file("pages-.img"));
  CHECK_FALSE(is_pages_file("pages-1.img.tmp"));
  CHECK_FALSE(is_pages_file("xpages-1.img"));
  CHECK_FALSE(is_pages_file("core-1.img"));
}
