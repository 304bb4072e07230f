// Unit tests for images/delta: property tests over random dumps and random
// changes between them (every stream decoded from chunks of every size, with
// and without an output that already holds the previous file), targeted
// cases for how pages are classified, the real CRIU fixtures, and malformed
// or hostile streams, which must be errc::protocol and never a crash or a
// write outside the pages file. A [.perf] case times 256 MiB dumps.
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "temp_dir.hpp"
#include <xxhash.h>

#include "images/delta.hpp"

using namespace migrated;
using namespace migrated::images;
namespace fs = std::filesystem;

namespace {

using page = std::vector<std::uint8_t>;
using bytes = std::vector<std::uint8_t>;
constexpr std::uint32_t pe_parent = 1, pe_present = 4;

const fs::path fixtures = fs::path(__FILE__).parent_path() / "fixtures" / "criu-4.1.1";

using testing::temp_dir;

struct file {
  fs::path path;
  int fd = -1;
  file(const fs::path& p, const bytes& data) : path(p) {
    // Rewritten in place rather than truncated: freeing blocks is slow on
    // some filesystems, and the tests create thousands of these.
    fd = ::open(p.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    REQUIRE(fd >= 0);
    REQUIRE(::pwrite(fd, data.data(), data.size(), 0) == ssize_t(data.size()));
    REQUIRE(::ftruncate(fd, off_t(data.size())) == 0);
  }
  file(const file&) = delete;
  ~file() { ::close(fd); }
  bytes contents() const {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), {}};
  }
};

bytes read_all(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

// A process's stored memory: vaddr -> page.
using dump = std::map<std::uint64_t, page>;

page random_page(std::mt19937_64& gen) {
  page p(page_bytes);
  for (std::size_t i = 0; i < page_bytes; i += 8) {
    const std::uint64_t v = gen();
    std::memcpy(p.data() + i, &v, 8);
  }
  return p;
}

page some_page(std::mt19937_64& gen) {
  switch (gen() % 6) {
    case 0: return page(page_bytes, 0);
    case 1: {  // mostly zero, a few values: the shape of a fresh heap
      page p(page_bytes, 0);
      for (int i = 0, n = 1 + int(gen() % 40); i < n; ++i) p[gen() % page_bytes] = std::uint8_t(gen());
      return p;
    }
    case 2: {  // repeating text
      page p(page_bytes);
      const std::uint8_t a = std::uint8_t(gen()), period = std::uint8_t(1 + gen() % 60);
      for (std::size_t i = 0; i < page_bytes; ++i) p[i] = std::uint8_t(a + i % period);
      return p;
    }
    default: return random_page(gen);
  }
}

// A dump written as CRIU would: runs cut at random points, runs without data
// (in a parent dump) between some of them, pages in a file in run order.
struct built {
  page_set set;
  std::unique_ptr<file> pages;
  encode_result hashed;  // hash_pages_file of it
};

built build(const dump& d, const fs::path& dir, const std::string& name, std::mt19937_64& gen) {
  built b;
  b.set.pagemap_name = "pagemap-" + name;
  b.set.pages_name = "pages-" + name;
  bytes data;
  std::uint64_t end = 0;
  for (const auto& [vaddr, content] : d) {
    const bool extends = !b.set.runs.empty() && b.set.runs.back().has_data && vaddr == end;
    if (!extends && vaddr >= end + 2 * page_bytes && gen() % 3 == 0)
      b.set.runs.push_back({end, 1, pe_parent, false, b.set.stored_pages});
    if (extends && gen() % 16 != 0) {
      ++b.set.runs.back().nr_pages;
    } else {
      b.set.runs.push_back({vaddr, 1, pe_present, true, b.set.stored_pages});
    }
    ++b.set.stored_pages;
    end = vaddr + page_bytes;
    data.insert(data.end(), content.begin(), content.end());
  }
  b.pages = std::make_unique<file>(dir / b.set.pages_name, data);
  auto h = hash_pages_file(b.set, b.pages->fd);
  REQUIRE(h);
  b.hashed = std::move(*h);
  return b;
}

previous_dump as_previous(const built& b) { return {&b.set, &b.hashed.hashes, b.pages->fd}; }

result<encode_result> encode(const previous_dump& prev, const built& cur, std::size_t chunk_bytes, bytes& stream) {
  stream.clear();
  return encode_delta(prev, cur.set, cur.pages->fd, chunk_bytes, [&](std::span<const std::uint8_t> s) -> result<void> {
    if (s.empty()) return fail(errc::internal, "empty chunk");
    stream.insert(stream.end(), s.begin(), s.end());
    return {};
  });
}

std::size_t chunk_size(std::mt19937_64& gen) {
  return std::size_t(std::exp2(double(gen() % 1600) / 100.0));  // 1 B .. 64 KiB, log-uniform
}

result<encode_result> decode(const previous_dump& prev, const page_set& cur, int out_fd, bool copy,
                             const bytes& stream, std::mt19937_64& gen) {
  delta_decoder dec(prev, cur, out_fd, copy);
  for (std::size_t pos = 0; pos < stream.size();) {
    const std::size_t n = std::min(stream.size() - pos, chunk_size(gen));
    if (auto r = dec.feed({stream.data() + pos, n}); !r) return std::unexpected(r.error());
    pos += n;
  }
  return dec.finish();
}

void check_same_stats(const delta_stats& a, const delta_stats& b) {
  CHECK(a.pages == b.pages);
  CHECK(a.same == b.same);
  CHECK(a.zero == b.zero);
  CHECK(a.ref == b.ref);
  CHECK(a.xor_pages == b.xor_pages);
  CHECK(a.full == b.full);
  CHECK(a.bytes_raw == b.bytes_raw);
  CHECK(a.bytes_delta == b.bytes_delta);
}

// Encodes cur against prev, decodes it every way that applies and checks
// the rebuilt files, hashes, digests and stats. Returns the encoder's stats.
delta_stats round_trip(const built* prev, const built& cur, const fs::path& dir, std::mt19937_64& gen) {
  const previous_dump p = prev ? as_previous(*prev) : previous_dump{};
  bytes stream;
  const std::size_t chunks[] = {1, 100, 4096, 65536, 1 << 20};
  auto enc = encode(p, cur, chunks[gen() % 5], stream);
  REQUIRE(enc);
  const delta_stats& st = enc->stats;
  CHECK(st.pages == cur.set.stored_pages);
  CHECK(st.same + st.zero + st.ref + st.xor_pages + st.full == st.pages);
  CHECK(st.bytes_delta == stream.size());
  CHECK(st.bytes_raw == cur.set.stored_pages * page_bytes);
  CHECK(enc->hashes == cur.hashed.hashes);
  CHECK(enc->tree_digest == cur.hashed.tree_digest);
  if (!prev) {
    CHECK(st.same == 0);
    CHECK(st.xor_pages == 0);
  }
  const bytes expected = cur.pages->contents();
  std::vector<bool> modes = {false};
  if (prev && cur.set.same_layout(prev->set)) modes.push_back(true);
  for (const bool copy : modes) {
    INFO("out_is_copy_of_prev " << copy);
    file out(dir / ("out-" + std::to_string(copy)), copy ? prev->pages->contents() : bytes{});
    auto dec = decode(p, cur.set, out.fd, copy, stream, gen);
    REQUIRE(dec);
    CHECK(out.contents() == expected);
    CHECK(dec->hashes == enc->hashes);
    CHECK(dec->tree_digest == enc->tree_digest);
    check_same_stats(dec->stats, st);
  }
  return st;
}

// A random previous dump: a few mappings at random places.
dump random_dump(std::mt19937_64& gen, int max_regions = 6, int max_pages = 64) {
  dump d;
  for (int r = 0, n = 1 + int(gen() % max_regions); r < n; ++r) {
    const std::uint64_t base = (0x10000 + gen() % 0x40000) * page_bytes;
    for (int i = 0, len = 1 + int(gen() % max_pages); i < len; ++i) d[base + i * page_bytes] = some_page(gen);
  }
  return d;
}

std::uint64_t any_vaddr(const dump& d, std::mt19937_64& gen) {
  auto it = d.begin();
  std::advance(it, std::ptrdiff_t(gen() % d.size()));
  return it->first;
}

// The changes a process makes between two dumps.
void mutate(dump& cur, const dump& prev, std::mt19937_64& gen) {
  switch (gen() % 8) {
    case 0: {  // a new mapping
      const std::uint64_t base = (0x50000 + gen() % 0x10000) * page_bytes;
      for (int i = 0, n = 1 + int(gen() % 32); i < n; ++i) cur[base + i * page_bytes] = some_page(gen);
      break;
    }
    case 1: {  // a mapping shrinks or goes
      if (cur.size() < 2) break;
      auto it = cur.find(any_vaddr(cur, gen));
      for (int n = 1 + int(gen() % 16); n > 0 && it != cur.end() && cur.size() > 1; --n) it = cur.erase(it);
      break;
    }
    case 2:  // content moved from elsewhere (memmove, realloc, compaction)
      if (!prev.empty() && !cur.empty()) cur[any_vaddr(cur, gen)] = prev.at(any_vaddr(prev, gen));
      break;
    case 3:  // a page rewritten
      if (!cur.empty()) cur[any_vaddr(cur, gen)] = random_page(gen);
      break;
    case 4:  // a few bytes changed
      if (!cur.empty()) {
        page& p = cur[any_vaddr(cur, gen)];
        for (int i = 0, n = 1 + int(gen() % 24); i < n; ++i) p[gen() % page_bytes] ^= std::uint8_t(1 + gen() % 255);
      }
      break;
    case 5:  // zeroed
      if (!cur.empty()) cur[any_vaddr(cur, gen)] = page(page_bytes, 0);
      break;
    case 6:  // duplicated within the dump
      if (!cur.empty()) cur[any_vaddr(cur, gen)] = page(cur.at(any_vaddr(cur, gen)));
      break;
    case 7:  // the page next door's content (a shift by one page)
      if (!cur.empty()) {
        const std::uint64_t v = any_vaddr(cur, gen);
        if (auto it = prev.find(v + page_bytes); it != prev.end()) cur[v] = it->second;
      }
      break;
  }
}

// Ops by hand, for malformed streams.
bytes uleb(std::uint64_t v) {
  bytes out;
  while (v >= 0x80) { out.push_back(std::uint8_t(v) | 0x80); v >>= 7; }
  out.push_back(std::uint8_t(v));
  return out;
}
bytes op(std::uint8_t code, std::initializer_list<std::uint64_t> numbers = {}) {
  bytes out{code};
  for (auto n : numbers) {
    auto u = uleb(n);
    out.insert(out.end(), u.begin(), u.end());
  }
  return out;
}
bytes cat(std::initializer_list<bytes> parts) {
  bytes out;
  for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}
constexpr std::uint8_t SAME = 1, ZERO = 2, REF = 3, REF_CUR = 4, XOR = 5, FULL = 6;

}  // namespace

TEST_CASE("random dumps and changes round-trip through deltas", "[delta]") {
  temp_dir dir;
  std::mt19937_64 gen(20240611);
  std::uint64_t copy_mode_cases = 0;
  delta_stats seen;
  for (int c = 0; c < 160; ++c) {
    INFO("case " << c);
    const bool first_round = gen() % 5 == 0;
    const dump prev = random_dump(gen);
    dump cur = prev;
    for (int m = 0, n = int(gen() % 14); m < n; ++m) mutate(cur, prev, gen);
    const auto pb = build(prev, dir.path, "prev.img", gen);
    const auto cb = build(cur, dir.path, "cur.img", gen);
    copy_mode_cases += (!first_round && cb.set.same_layout(pb.set));
    const delta_stats st = round_trip(first_round ? nullptr : &pb, cb, dir.path, gen);
    seen.same += st.same, seen.zero += st.zero, seen.ref += st.ref;
    seen.xor_pages += st.xor_pages, seen.full += st.full;
  }
  // The cases exercised every kind of op and both decoder modes.
  CHECK(copy_mode_cases > 20);
  CHECK(seen.same > 0);
  CHECK(seen.zero > 0);
  CHECK(seen.ref > 0);
  CHECK(seen.xor_pages > 0);
  CHECK(seen.full > 0);
}

TEST_CASE("pages are classified as the change that made them", "[delta]") {
  temp_dir dir;
  std::mt19937_64 gen(99);
  dump prev;
  for (int i = 0; i < 64; ++i) prev[0x100000 + i * page_bytes] = random_page(gen);
  for (int i = 0; i < 16; ++i) prev[0x7f0000000000 + i * page_bytes] = random_page(gen);
  const auto pb = build(prev, dir.path, "prev.img", gen);
  auto vaddr = [](int i) { return std::uint64_t(0x100000 + i * page_bytes); };

  SECTION("nothing changed: all SAME, in one op") {
    const auto cb = build(prev, dir.path, "cur.img", gen);
    const auto st = round_trip(&pb, cb, dir.path, gen);
    CHECK(st.same == 80);
    CHECK(st.bytes_delta == 2);
  }
  SECTION("zeroed pages are ZERO") {
    dump cur = prev;
    for (int i : {3, 4, 5, 40}) cur[vaddr(i)] = page(page_bytes, 0);
    const auto st = round_trip(&pb, build(cur, dir.path, "cur.img", gen), dir.path, gen);
    CHECK(st.zero == 4);
    CHECK(st.same == 76);
  }
  SECTION("a few changed bytes are XOR") {
    dump cur = prev;
    for (int i : {0, 9, 10, 63}) {
      cur[vaddr(i)][i] ^= 0xff;
      cur[vaddr(i)][4095 - i] ^= 0x01;
      for (int k = 0; k < 100; ++k) cur[vaddr(i)][1000 + k] ^= std::uint8_t(k + 1);
    }
    const auto st = round_trip(&pb, build(cur, dir.path, "cur.img", gen), dir.path, gen);
    CHECK(st.xor_pages == 4);
    CHECK(st.same == 76);
    CHECK(st.bytes_delta < 4 * 200);
  }
  SECTION("moved pages are REF") {
    dump cur = prev;
    for (int i = 20; i < 30; ++i) cur[vaddr(i)] = prev.at(vaddr(i + 1));  // shifted down a page
    cur[vaddr(50)] = prev.at(0x7f0000000000);
    const auto st = round_trip(&pb, build(cur, dir.path, "cur.img", gen), dir.path, gen);
    CHECK(st.ref == 11);
    CHECK(st.same == 69);
  }
  SECTION("rewritten pages are FULL") {
    dump cur = prev;
    for (int i : {1, 2, 33}) cur[vaddr(i)] = random_page(gen);
    const auto st = round_trip(&pb, build(cur, dir.path, "cur.img", gen), dir.path, gen);
    CHECK(st.full == 3);
    CHECK(st.same == 77);
  }
  SECTION("a new mapping: FULL, ZERO, REF to the previous dump and to itself") {
    dump cur = prev;
    const std::uint64_t base = 0x200000;
    const page fresh = random_page(gen);
    cur[base] = fresh;
    cur[base + page_bytes] = page(page_bytes, 0);
    cur[base + 2 * page_bytes] = prev.at(vaddr(7));
    cur[base + 3 * page_bytes] = fresh;
    const auto st = round_trip(&pb, build(cur, dir.path, "cur.img", gen), dir.path, gen);
    CHECK(st.full == 1);
    CHECK(st.zero == 1);
    CHECK(st.ref == 2);
    CHECK(st.same == 80);
  }
  SECTION("first round: ZERO, REF_CUR and FULL only") {
    dump cur;
    const page a = random_page(gen), b = random_page(gen);
    cur[0x1000] = a;
    cur[0x2000] = page(page_bytes, 0);
    cur[0x3000] = b;
    cur[0x9000] = a;
    cur[0xa000] = b;
    cur[0xb000] = a;
    const auto st = round_trip(nullptr, build(cur, dir.path, "cur.img", gen), dir.path, gen);
    CHECK(st.full == 2);
    CHECK(st.zero == 1);
    CHECK(st.ref == 3);
    CHECK(st.same == 0);
    CHECK(st.xor_pages == 0);
  }
  SECTION("pages whose hashes collide are compared, not trusted, for REF") {
    dump cur = prev;
    cur[vaddr(0)] = random_page(gen);
    const auto cb = build(cur, dir.path, "cur.img", gen);
    // The previous page at vaddr(5) claims the hash of the new page.
    page_hashes lying = pb.hashed.hashes;
    lying[5] = XXH3_64bits(cur.at(vaddr(0)).data(), page_bytes);
    const previous_dump p{&pb.set, &lying, pb.pages->fd};
    bytes stream;
    auto enc = encode(p, cb, 1 << 20, stream);
    REQUIRE(enc);
    CHECK(enc->stats.ref == 0);
    CHECK(enc->stats.full == 2);  // vaddr(0), and vaddr(5) whose hash no longer matches
    file out(dir.path / "out", {});
    auto dec = decode(p, cb.set, out.fd, false, stream, gen);
    REQUIRE(dec);
    CHECK(out.contents() == cb.pages->contents());
    CHECK(dec->tree_digest == cb.hashed.tree_digest);
  }
}

TEST_CASE("a stream fed one byte at a time decodes", "[delta]") {
  temp_dir dir;
  std::mt19937_64 gen(5);
  const dump prev = random_dump(gen, 3, 12);
  dump cur = prev;
  for (int m = 0; m < 10; ++m) mutate(cur, prev, gen);
  const auto pb = build(prev, dir.path, "prev.img", gen);
  const auto cb = build(cur, dir.path, "cur.img", gen);
  bytes stream;
  REQUIRE(encode(as_previous(pb), cb, 4096, stream));
  file out(dir.path / "out", {});
  delta_decoder dec(as_previous(pb), cb.set, out.fd, false);
  for (std::uint8_t b : stream) REQUIRE(dec.feed({&b, 1}));
  auto fin = dec.finish();
  REQUIRE(fin);
  CHECK(out.contents() == cb.pages->contents());
  CHECK(fin->tree_digest == cb.hashed.tree_digest);
}

TEST_CASE("dumps made by CRIU 4.1.1 round-trip", "[delta]") {
  temp_dir dir;
  std::mt19937_64 gen(11);
  auto prev_set = read_page_set(fixtures, "tiny-1-pagemap-1.img");
  auto cur_set = read_page_set(fixtures, "tiny-2-pagemap-1.img");
  REQUIRE((prev_set && cur_set));
  built pb{*prev_set, std::make_unique<file>(dir.path / "p", read_all(fixtures / "tiny-1-pages-1.img")), {}};
  built cb{*cur_set, std::make_unique<file>(dir.path / "c", read_all(fixtures / "tiny-2-pages-1.img")), {}};
  pb.hashed = *hash_pages_file(pb.set, pb.pages->fd);
  cb.hashed = *hash_pages_file(cb.set, cb.pages->fd);
  const auto st = round_trip(&pb, cb, dir.path, gen);
  CHECK(st.pages == 23);
  CHECK(st.full == 0);
  CHECK(st.xor_pages >= 1);  // the counter pages and the stack moved a little
  CHECK(st.same + st.xor_pages == 23);
  CHECK(st.bytes_delta < 200);
  const auto first = round_trip(nullptr, pb, dir.path, gen);
  CHECK(first.zero + first.ref + first.full == 23);
}

TEST_CASE("hand-written streams decode as the format says", "[delta]") {
  temp_dir dir;
  std::mt19937_64 gen(12);
  dump prev;
  for (int i = 0; i < 4; ++i) prev[0x10000 + i * page_bytes] = random_page(gen);
  const auto pb = build(prev, dir.path, "prev.img", gen);
  const page_set& layout = pb.set;  // the current dump has the same vaddrs
  const page& p0 = prev.at(0x10000);
  const page& p1 = prev.at(0x11000);
  const page& p2 = prev.at(0x12000);
  const page& p3 = prev.at(0x13000);
  const page f(page_bytes, 0x5a);
  page x2 = p2;
  x2[10] ^= 0x01, x2[11] ^= 0x02, x2[4095] ^= 0xff;

  struct example {
    bytes stream;
    std::vector<page> expected;
  };
  const example examples[] = {
      // FULL, SAME, XOR (bytes 10..11, then the last byte), REF_CUR back to the FULL page.
      {cat({{FULL}, f, op(SAME, {1}), op(XOR, {8}), bytes{10, 2, 0x01, 0x02}, uleb(4083), bytes{1, 0xff}, op(REF_CUR, {0})}),
       {f, p1, x2, f}},
      // ZERO, REF by page number, REF_CUR to a REF page, SAME.
      {cat({op(ZERO, {1}), op(REF, {0x13}), op(REF_CUR, {1}), op(SAME, {1})}),
       {page(page_bytes, 0), p3, p3, p3}},
      // REF_CUR to pages that SAME produced (copied, or already in the copy).
      {cat({op(SAME, {2}), op(REF_CUR, {0}), op(REF_CUR, {1})}), {p0, p1, p0, p1}},
      // REF_CUR to a page still buffered after SAME moved on.
      {cat({{FULL}, f, {FULL}, x2, op(SAME, {1}), op(REF_CUR, {1})}), {f, x2, p2, x2}},
      // SAME runs split anywhere.
      {cat({op(SAME, {1}), op(SAME, {2}), op(SAME, {1})}), {p0, p1, p2, p3}},
  };
  for (const auto& ex : examples) {
    bytes expected;
    for (const auto& pg : ex.expected) expected.insert(expected.end(), pg.begin(), pg.end());
    for (const bool copy : {false, true}) {
      file out(dir.path / "out", copy ? pb.pages->contents() : bytes{});
      auto r = decode(as_previous(pb), layout, out.fd, copy, ex.stream, gen);
      REQUIRE(r);
      CHECK(out.contents() == expected);
      for (std::size_t i = 0; i < 4; ++i)
        CHECK(r->hashes[i] == XXH3_64bits(ex.expected[i].data(), page_bytes));
    }
  }
}

TEST_CASE("random valid op streams decode as a reference model says", "[delta]") {
  // Streams the encoder would never write (REF_CUR to any earlier page, SAME
  // runs cut anywhere, XOR of any shape) still follow the format.
  temp_dir dir;
  std::mt19937_64 gen(31);
  for (int c = 0; c < 200; ++c) {
    INFO("case " << c);
    const dump prev = random_dump(gen, 3, 24);
    dump cur_layout = prev;
    for (int m = 0, n = int(gen() % 3); m < n; ++m) mutate(cur_layout, prev, gen);
    const auto pb = build(prev, dir.path, "prev.img", gen);
    const auto cb = build(cur_layout, dir.path, "cur.img", gen);
    const page_set& cur = cb.set;

    bytes stream;
    std::vector<page> model;
    auto prev_page = [&](std::uint64_t vaddr) -> const page* {
      auto it = prev.find(vaddr);
      return it == prev.end() ? nullptr : &it->second;
    };
    while (model.size() < cur.stored_pages) {
      const std::uint64_t i = model.size(), vaddr = cur.vaddr_of(i);
      switch (gen() % 6) {
        case 0: {  // SAME over as many pages as the previous dump has at these vaddrs
          std::uint64_t n = 0;
          while (i + n < cur.stored_pages && n < 1 + gen() % 8 && prev_page(cur.vaddr_of(i + n))) ++n;
          if (n == 0) continue;
          stream = cat({stream, op(SAME, {n})});
          for (std::uint64_t k = 0; k < n; ++k) model.push_back(*prev_page(cur.vaddr_of(i + k)));
          break;
        }
        case 1: {
          const std::uint64_t n = 1 + gen() % std::min<std::uint64_t>(4, cur.stored_pages - i);
          stream = cat({stream, op(ZERO, {n})});
          for (std::uint64_t k = 0; k < n; ++k) model.push_back(page(page_bytes, 0));
          break;
        }
        case 2: {
          const std::uint64_t target = any_vaddr(prev, gen);
          stream = cat({stream, op(REF, {target / page_bytes})});
          model.push_back(prev.at(target));
          break;
        }
        case 3: {
          if (i == 0) continue;
          const std::uint64_t target = gen() % i;
          stream = cat({stream, op(REF_CUR, {target})});
          model.push_back(model[target]);
          break;
        }
        case 4: {
          const page* old = prev_page(vaddr);
          if (!old) continue;
          page now = *old;
          bytes body;
          for (std::size_t at = 0; at < page_bytes - 1 && body.size() < 3900 && gen() % 8;) {
            const std::size_t zr = gen() % std::min<std::size_t>(200, page_bytes - at);
            if (at + zr >= page_bytes) break;
            const std::size_t dr = 1 + gen() % std::min<std::size_t>(60, page_bytes - at - zr);
            body = cat({body, uleb(zr), uleb(dr)});
            for (std::size_t k = 0; k < dr; ++k) {
              const auto b = std::uint8_t(gen());
              body.push_back(b);
              now[at + zr + k] ^= b;
            }
            at += zr + dr;
          }
          if (body.empty()) continue;
          stream = cat({stream, op(XOR, {body.size()}), body});
          model.push_back(now);
          break;
        }
        default: {
          const page p = some_page(gen);
          stream = cat({stream, {FULL}, p});
          model.push_back(p);
        }
      }
    }
    bytes expected;
    for (const auto& pg : model) expected.insert(expected.end(), pg.begin(), pg.end());
    for (const bool copy : {false, true}) {
      if (copy && !cur.same_layout(pb.set)) continue;
      file out(dir.path / "out", copy ? pb.pages->contents() : bytes{});
      auto r = decode(as_previous(pb), cur, out.fd, copy, stream, gen);
      REQUIRE(r);
      CHECK(out.contents() == expected);
      auto rehash = hash_pages_file(cur, out.fd);
      REQUIRE(rehash);
      CHECK(r->hashes == rehash->hashes);
      CHECK(r->tree_digest == rehash->tree_digest);
    }
  }
}

TEST_CASE("malformed streams are protocol errors", "[delta]") {
  temp_dir dir;
  std::mt19937_64 gen(3);
  dump prev;
  for (int i = 0; i < 4; ++i) prev[0x10000 + i * page_bytes] = random_page(gen);
  const auto pb = build(prev, dir.path, "prev.img", gen);
  const auto cb = build(prev, dir.path, "cur.img", gen);  // 4 pages, same vaddrs
  const previous_dump p = as_previous(pb);
  const bytes full_page = cat({{FULL}, bytes(page_bytes, 0x5a)});

  auto expect_protocol = [&](const bytes& stream, const previous_dump& pd, const char* what) {
    INFO(what);
    for (const bool copy : {false, true}) {
      if (copy && pd.set == nullptr) continue;
      for (int split = 0; split < 3; ++split) {
        file out(dir.path / "out", copy ? pb.pages->contents() : bytes{});
        delta_decoder dec(pd, cb.set, out.fd, copy);
        std::optional<error> err;
        for (std::size_t pos = 0; pos < stream.size() && !err;) {
          const std::size_t n = std::min(stream.size() - pos, split == 0 ? stream.size() : split == 1 ? 1 : chunk_size(gen));
          if (auto r = dec.feed({stream.data() + pos, n}); !r) err = r.error();
          pos += n;
        }
        if (!err) {
          auto fin = dec.finish();
          REQUIRE_FALSE(fin);
          err = fin.error();
        }
        CHECK(err->code == errc::protocol);
        CHECK(err->message.find("pages-cur.img") != std::string::npos);
        CHECK(fs::file_size(out.path) <= 4 * page_bytes);
        // A broken decoder stays broken.
        std::uint8_t one = SAME;
        CHECK_FALSE(dec.feed({&one, 1}));
      }
    }
  };

  expect_protocol({}, p, "empty stream");
  expect_protocol(op(SAME, {3}), p, "ends early");
  expect_protocol(bytes(full_page.begin(), full_page.end() - 1), p, "ends inside FULL");
  expect_protocol(cat({op(SAME, {4}), {ZERO}}), p, "extra op byte");
  expect_protocol(cat({op(SAME, {4}), op(ZERO, {1})}), p, "extra op");
  expect_protocol(cat({op(SAME, {3}), {0x80}}), p, "ends inside a number");
  expect_protocol({0x00}, p, "op 0");
  expect_protocol({0x07}, p, "op 7");
  expect_protocol({0xff, 0x01}, p, "op 0xff");
  expect_protocol(op(SAME, {5}), p, "SAME past the end");
  expect_protocol(op(ZERO, {~std::uint64_t(0)}), p, "ZERO of 2^64-1");
  expect_protocol(op(SAME, {0}), p, "SAME 0");
  expect_protocol(op(ZERO, {0}), p, "ZERO 0");
  expect_protocol({SAME, 0x84, 0x00}, p, "overlong number");
  expect_protocol(cat({{SAME}, bytes(10, 0xff), {0x01}}), p, "number over 64 bits");
  expect_protocol(cat({{ZERO}, bytes(9, 0x80), {0x02}}), p, "number of 65 bits");
  expect_protocol(cat({op(REF, {0x10000 / page_bytes + 4}), op(SAME, {3})}), p, "REF past the previous dump");
  expect_protocol(cat({op(REF, {0x5}), op(SAME, {3})}), p, "REF to nothing");
  expect_protocol(cat({op(REF, {~std::uint64_t(0)}), op(SAME, {3})}), p, "REF to 2^64-1");
  expect_protocol(op(REF_CUR, {0}), p, "REF_CUR to itself");
  expect_protocol(cat({op(ZERO, {1}), op(REF_CUR, {2}), op(SAME, {2})}), p, "REF_CUR forward");
  expect_protocol(cat({op(XOR, {0}), op(SAME, {3})}), p, "XOR of length 0");
  expect_protocol(cat({op(XOR, {4094}), bytes(4094, 1), op(SAME, {3})}), p, "XOR not smaller than FULL");
  expect_protocol(cat({op(XOR, {5, 4000, 200, 1, 2, 3}), op(SAME, {3})}), p, "XOR past the page");
  expect_protocol(cat({op(XOR, {5, 4095, 2, 1, 2}), op(SAME, {3})}), p, "XOR past the page by one");
  expect_protocol(cat({op(XOR, {3, 10, 5, 1}), op(SAME, {3})}), p, "XOR run past its body");
  expect_protocol(cat({op(XOR, {3, 10, 0, 1}), op(SAME, {3})}), p, "XOR empty data run");
  expect_protocol(cat({op(XOR, {2, 10}), op(SAME, {3})}), p, "XOR half a pair");
  expect_protocol(op(XOR, {3, 10, 1}), p, "XOR cut inside its body");

  const previous_dump none{};
  expect_protocol(op(SAME, {4}), none, "SAME without a previous dump");
  expect_protocol(cat({op(XOR, {3, 0, 1, 7}), op(ZERO, {3})}), none, "XOR without a previous dump");
  expect_protocol(cat({op(REF, {0x10}), op(ZERO, {3})}), none, "REF without a previous dump");
  const previous_dump no_file{&pb.set, &pb.hashed.hashes, -1};
  expect_protocol(cat({op(XOR, {3, 0, 1, 7}), op(SAME, {3})}), no_file, "XOR without the previous file");

  // A truncated valid stream fails at every cut.
  dump cur = prev;
  cur[0x10000][7] ^= 1;
  cur[0x11000] = random_page(gen);
  cur[0x12000] = page(page_bytes, 0);
  const auto cb2 = build(cur, dir.path, "cur.img", gen);
  bytes stream;
  REQUIRE(encode(p, cb2, 1 << 20, stream));
  for (std::size_t len = 0; len < stream.size(); ++len) {
    file out(dir.path / "out", {});
    delta_decoder dec(p, cb2.set, out.fd, false);
    REQUIRE(dec.feed({stream.data(), len}));
    auto fin = dec.finish();
    REQUIRE_FALSE(fin);
    CHECK(fin.error().code == errc::protocol);
  }
}

TEST_CASE("the decoder refuses misuse", "[delta]") {
  temp_dir dir;
  std::mt19937_64 gen(4);
  dump prev, other;
  prev[0x10000] = random_page(gen);
  other[0x20000] = random_page(gen);
  const auto pb = build(prev, dir.path, "prev.img", gen);
  const auto ob = build(other, dir.path, "other.img", gen);
  file out(dir.path / "out", pb.pages->contents());
  delta_decoder dec(as_previous(pb), ob.set, out.fd, true);  // not a copy of the same layout
  const bytes stream = op(ZERO, {1});
  auto r = dec.feed(stream);
  REQUIRE_FALSE(r);
  CHECK(r.error().code == errc::invalid_argument);

  page_hashes short_hashes;
  const previous_dump lying{&pb.set, &short_hashes, pb.pages->fd};
  bytes s;
  auto enc = encode(lying, ob, 4096, s);
  REQUIRE_FALSE(enc);
  CHECK(enc.error().code == errc::invalid_argument);
}

TEST_CASE("random garbage never crashes the decoder", "[delta]") {
  temp_dir dir;
  std::mt19937_64 gen(8);
  dump prev;
  for (int i = 0; i < 6; ++i) prev[0x10000 + i * page_bytes] = some_page(gen);
  dump cur = prev;
  cur.erase(0x12000);
  cur[0x30000] = some_page(gen);
  const auto pb = build(prev, dir.path, "prev.img", gen);
  const auto cb = build(cur, dir.path, "cur.img", gen);
  bytes valid;
  REQUIRE(encode(as_previous(pb), cb, 1 << 20, valid));
  file out(dir.path / "out", {});
  int decoded = 0;
  for (int it = 0; it < 3000; ++it) {
    bytes junk;
    if (it % 3 == 0) {  // a valid stream with a few bytes changed, cut or extended
      junk = valid;
      for (int k = 0, n = 1 + int(gen() % 3); k < n; ++k) junk[gen() % junk.size()] = std::uint8_t(gen());
      if (gen() % 4 == 0) junk.resize(gen() % (junk.size() + 8));
    } else {  // ops and small numbers more often than chance would give
      for (std::size_t n = gen() % 3000; junk.size() < n;) {
        const auto b = gen() % 4 == 0 ? std::uint8_t(gen()) : std::uint8_t(gen() % 8);
        junk.push_back(b);
        if (b == FULL && gen() % 2) junk.resize(junk.size() + page_bytes, std::uint8_t(gen()));
      }
    }
    const bool use_prev = gen() % 4 != 0;
    const previous_dump p = use_prev ? as_previous(pb) : previous_dump{};
    REQUIRE(::ftruncate(out.fd, 0) == 0);
    auto r = decode(p, cb.set, out.fd, false, junk, gen);
    if (r) {
      ++decoded;
      CHECK(r->hashes.size() == cb.set.stored_pages);
    } else {
      CHECK(r.error().code == errc::protocol);
    }
    CHECK(fs::file_size(out.path) <= cb.set.stored_pages * page_bytes);
  }
  CHECK(decoded > 0);  // changed FULL pages still decode
}

// Resident memory of this process, from /proc/self/statm.
std::uint64_t resident_bytes() {
  std::ifstream statm("/proc/self/statm");
  std::uint64_t size = 0, resident = 0;
  statm >> size >> resident;
  return resident * std::uint64_t(::sysconf(_SC_PAGESIZE));
}

TEST_CASE("a pagemap's claim costs memory only as its pages arrive", "[delta]") {
  // A received pagemap of a few bytes may claim up to the 2^28 pages the
  // destination allows per file; the decoder used to size one hash per
  // claimed page (2 GiB) before the first op.
  temp_dir dir;
  page_set huge;
  huge.pagemap_name = "pagemap-1.img";
  huge.pages_name = "pages-1.img";
  huge.runs.push_back(page_run{0x10000000, std::uint32_t(1) << 28, 4, true, 0});
  huge.stored_pages = std::uint64_t(1) << 28;
  file out(dir.path / "out", {});
  const std::uint64_t before = resident_bytes();
  {
    delta_decoder dec(previous_dump{}, huge, out.fd, false);
    bytes stream = op(ZERO, {3});
    stream.push_back(FULL);
    stream.resize(stream.size() + page_bytes, 0x5a);
    REQUIRE(dec.feed(stream));
    CHECK(resident_bytes() - std::min(before, resident_bytes()) < (64u << 20));
    auto r = dec.finish();
    REQUIRE_FALSE(r);
    CHECK(r.error().code == errc::protocol);
    CHECK(r.error().message.find("stream ends after 4 of 268435456 pages") != std::string::npos);
  }
}

TEST_CASE("encoder errors: a failing sink, a short pages file", "[delta]") {
  temp_dir dir;
  std::mt19937_64 gen(6);
  dump d;
  for (int i = 0; i < 40; ++i) d[0x10000 + i * page_bytes] = random_page(gen);
  const auto b = build(d, dir.path, "cur.img", gen);

  int calls = 0;
  auto r = encode_delta({}, b.set, b.pages->fd, 4096, [&](std::span<const std::uint8_t>) -> result<void> {
    if (++calls == 3) return fail(errc::io, "peer went away");
    return {};
  });
  REQUIRE_FALSE(r);
  CHECK(r.error().code == errc::io);
  CHECK(r.error().message.find("peer went away") != std::string::npos);
  CHECK(calls == 3);

  REQUIRE(::ftruncate(b.pages->fd, 39 * page_bytes + 100) == 0);
  bytes stream;
  auto s = encode({}, b, 4096, stream);
  REQUIRE_FALSE(s);
  CHECK(s.error().code == errc::protocol);
  CHECK(s.error().message.find("pages-cur.img") != std::string::npos);
  auto h = hash_pages_file(b.set, b.pages->fd);
  REQUIRE_FALSE(h);
  CHECK(h.error().code == errc::protocol);
}

TEST_CASE("256 MiB with 8 MiB changed: encode and decode timings", "[.perf]") {
  temp_dir dir;
  constexpr std::uint64_t pages = (256 << 20) / page_bytes, changed = (8 << 20) / page_bytes;
  std::mt19937_64 gen(1);
  bytes data(pages * page_bytes);
  std::uint64_t x = 0x9e3779b97f4a7c15;
  for (std::size_t i = 0; i < data.size(); i += 8) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    std::memcpy(data.data() + i, &x, 8);
  }
  page_set set;
  set.pages_name = "pages-1.img";
  for (std::uint64_t r = 0; r < pages / 256; ++r)  // CRIU's 256-page runs, one mapping
    set.runs.push_back({0x7f0000000000 + r * 256 * page_bytes, 256, 6, true, r * 256});
  set.stored_pages = pages;
  file prev_file(dir.path / "prev", data);
  for (std::uint64_t i = 0; i < changed; ++i) {  // half a few bytes, half rewritten
    std::uint8_t* p = data.data() + ((i * 7919) % pages) * page_bytes;
    if (i % 2) {
      for (int k = 0; k < 16; ++k) p[gen() % page_bytes] ^= 0x5a;
    } else {
      for (std::size_t k = 0; k < page_bytes; ++k) p[k] = std::uint8_t(gen());
    }
  }
  file cur_file(dir.path / "cur", data);
  auto prev_hashes = hash_pages_file(set, prev_file.fd);
  REQUIRE(prev_hashes);
  const previous_dump prev{&set, &prev_hashes->hashes, prev_file.fd};

  using clock = std::chrono::steady_clock;
  auto ms = [](clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); };
  bytes stream;
  stream.reserve(64 << 20);
  std::optional<encode_result> enc;
  double encode_ms = 1e9;
  for (int i = 0; i < 3; ++i) {
    stream.clear();
    const auto t0 = clock::now();
    auto r = encode_delta(prev, set, cur_file.fd, 1 << 20, [&](std::span<const std::uint8_t> s) -> result<void> {
      stream.insert(stream.end(), s.begin(), s.end());
      return {};
    });
    encode_ms = std::min(encode_ms, ms(clock::now() - t0));
    REQUIRE(r);
    enc = std::move(*r);
  }

  auto decode_timed = [&](bool copy) {
    double best = 1e9;
    for (int i = 0; i < 3; ++i) {
      file out(dir.path / "out", {});
      if (copy) {
        loff_t in_off = 0, out_off = 0;
        for (std::uint64_t left = pages * page_bytes; left > 0;) {
          const ssize_t n = ::copy_file_range(prev_file.fd, &in_off, out.fd, &out_off, left, 0);
          REQUIRE(n > 0);
          left -= std::uint64_t(n);
        }
      }
      const auto t0 = clock::now();
      delta_decoder dec(prev, set, out.fd, copy);
      for (std::size_t pos = 0; pos < stream.size(); pos += 64 << 10)
        REQUIRE(dec.feed({stream.data() + pos, std::min<std::size_t>(64 << 10, stream.size() - pos)}));
      auto fin = dec.finish();
      best = std::min(best, ms(clock::now() - t0));
      REQUIRE(fin);
      CHECK(fin->tree_digest == enc->tree_digest);
      if (i == 0) CHECK(out.contents() == data);
    }
    return best;
  };
  const double copy_ms = decode_timed(true), fresh_ms = decode_timed(false);
  const auto& st = enc->stats;
  std::printf("perf: %llu pages, same %llu xor %llu full %llu, delta %.1f MiB\n",
              (unsigned long long)st.pages, (unsigned long long)st.same, (unsigned long long)st.xor_pages,
              (unsigned long long)st.full, double(st.bytes_delta) / (1 << 20));
  std::printf("perf: encode %.1f ms, decode into a copy %.1f ms, decode into a new file %.1f ms\n",
              encode_ms, copy_ms, fresh_ms);
  CHECK(encode_ms < 150);
  CHECK(copy_ms < 100);
}
