// Unit tests for daemon/pages/page_store, the destination's pages during
// post-copy, with a scripted source behind it: pushed pages are answered
// locally, once, and dropped; a missing page is fetched from the source,
// only as far as the next page held; an answer never mixes held and
// fetched pages; a miss is fetched in short pieces and only one-page
// requests count as faults; a push that lazy-pages no longer needs is not kept, also
// when it arrives during the fetch of the same page; fault latency
// percentiles.
#include <catch2/catch.hpp>

#include <cstring>
#include <functional>
#include <optional>

#include "pages/page_store.hpp"

using namespace migrated;

namespace {

constexpr std::uint64_t base = 0x7f0000000000;
constexpr std::uint64_t P = pages::page_size;

void rethrow(std::exception_ptr e) {
  if (e) std::rethrow_exception(e);
}

// A page whose bytes name its task, address and origin.
std::vector<std::uint8_t> pattern(std::uint64_t pid, std::uint64_t vaddr, std::uint32_t n, std::uint8_t origin) {
  std::vector<std::uint8_t> v(std::size_t(n) * P, origin);
  for (std::uint32_t i = 0; i < n; ++i) {
    const std::uint64_t a = vaddr + i * P;
    std::memcpy(v.data() + i * P, &pid, 8);
    std::memcpy(v.data() + i * P + 8, &a, 8);
  }
  return v;
}

// The source: answers every request whole with origin-2 pages, after
// optionally running `during` (a push arriving meanwhile).
class scripted_source final : public pages::page_source {
 public:
  std::vector<pages::page_request> asked;
  std::function<void()> during;
  bool broken = false;
  awaitable<result<std::uint32_t>> pages(const pages::page_request& r, std::vector<std::uint8_t>& out) override {
    asked.push_back(r);
    if (during) during();
    if (broken) co_return fail(errc::peer, "the link is down");
    out = pattern(r.pid, r.vaddr, r.pages, 2);
    co_return r.pages;
  }
};

struct answer {
  std::optional<result<std::uint32_t>> n;
  std::vector<std::uint8_t> data;
};

answer ask(pages::page_store& store, std::uint64_t vaddr, std::uint32_t n, std::uint64_t pid = 1) {
  asio::io_context io;
  answer a;
  auto run = [&]() -> awaitable<void> {
    a.n = co_await store.pages({.pid = pid, .vaddr = vaddr, .pages = n}, a.data);
  };
  asio::co_spawn(io, run(), rethrow);
  io.run();
  return a;
}

}  // namespace

TEST_CASE("page_store answers pushed pages locally, once", "[pages]") {
  scripted_source source;
  pages::page_store store(source);
  REQUIRE(store.put(1, base, pattern(1, base, 8, 1)));
  CHECK(store.held_pages() == 8);
  const auto a = ask(store, base, 4);
  REQUIRE(a.n.has_value());
  REQUIRE(a.n->has_value());
  CHECK(**a.n == 4);
  CHECK(a.data == pattern(1, base, 4, 1));
  CHECK(source.asked.empty());
  CHECK(store.held_pages() == 4);  // answered pages are dropped
  CHECK_FALSE(store.holds(1, base));
  CHECK(store.holds(1, base + 4 * P));
  CHECK(store.stats().local_pages == 4);
}

TEST_CASE("page_store fetches a missing page from the source, only up to the next held one", "[pages]") {
  scripted_source source;
  pages::page_store store(source);
  REQUIRE(store.put(1, base + 3 * P, pattern(1, base + 3 * P, 2, 1)));
  const auto a = ask(store, base, 16);
  REQUIRE(a.n->has_value());
  CHECK(**a.n == 3);  // short: lazy-pages asks again from base + 3 pages
  REQUIRE(source.asked.size() == 1);
  CHECK(source.asked[0].vaddr == base);
  CHECK(source.asked[0].pages == 3);
  CHECK(a.data == pattern(1, base, 3, 2));
  // And the held pages after it come from the store, without the source.
  const auto b = ask(store, base + 3 * P, 13);
  REQUIRE(b.n->has_value());
  CHECK(**b.n == 2);
  CHECK(b.data == pattern(1, base + 3 * P, 2, 1));
  CHECK(source.asked.size() == 1);
  const auto s = store.stats();
  CHECK(s.fetches == 1);
  CHECK(s.fetched_pages == 3);
  CHECK(s.local_pages == 2);
  CHECK(s.faults == 0);  // a request of 16 pages is lazy-pages' background, not a fault
  CHECK(s.fault_latency.count == 0);
}

TEST_CASE("page_store fetches a miss at most max_miss_pages at a time; one-page misses are faults", "[pages]") {
  scripted_source source;
  pages::page_store store(source);
  const auto big = ask(store, base, 1024);  // lazy-pages' background request of 4 MiB
  REQUIRE(big.n->has_value());
  CHECK(**big.n == pages::max_miss_pages);
  REQUIRE(source.asked.size() == 1);
  CHECK(source.asked[0].pages == pages::max_miss_pages);
  const auto fault = ask(store, base + 100 * P, 1);
  REQUIRE(fault.n->has_value());
  const auto s = store.stats();
  CHECK(s.fetches == 2);
  CHECK(s.faults == 1);
  CHECK(s.fault_latency.count == 1);
  CHECK(s.fetched_pages == pages::max_miss_pages + 1);
}

TEST_CASE("page_store keeps no push that lazy-pages no longer needs", "[pages]") {
  scripted_source source;
  pages::page_store store(source);
  SECTION("pushed after the fault fetched it") {
    REQUIRE(ask(store, base, 2).n->has_value());
    REQUIRE(store.put(1, base, pattern(1, base, 4, 1)));
    CHECK(store.held_pages() == 2);  // only the two lazy-pages still lacks
    CHECK(store.given(1, base));
    CHECK_FALSE(store.given(1, base + 2 * P));
    CHECK_FALSE(store.holds(1, base));
    CHECK(store.holds(1, base + 2 * P));
    CHECK(store.stats().stale_pushes == 2);
  }
  SECTION("pushed while the fault's fetch was under way") {
    source.during = [&] { REQUIRE(store.put(1, base, pattern(1, base, 1, 1))); };
    const auto a = ask(store, base, 1);
    REQUIRE(a.n->has_value());
    CHECK(a.data == pattern(1, base, 1, 2));  // the fetched copy
    CHECK(store.held_pages() == 0);
  }
}

TEST_CASE("page_store refuses pushes that are not whole aligned pages, and names a failed fetch", "[pages]") {
  scripted_source source;
  pages::page_store store(source);
  CHECK(store.put(1, base + 1, pattern(1, base, 1, 1)).error().code == errc::protocol);
  CHECK(store.put(1, base, std::vector<std::uint8_t>(100)).error().code == errc::protocol);
  CHECK(store.put(1, base, {}).error().code == errc::protocol);
  CHECK(store.held_pages() == 0);
  source.broken = true;
  const auto a = ask(store, base, 1);
  REQUIRE(a.n.has_value());
  REQUIRE_FALSE(a.n->has_value());
  CHECK(a.n->error().code == errc::peer);
  CHECK(a.n->error().message.find("fetch from the source") != std::string::npos);
}

TEST_CASE("fault latency percentiles by nearest rank", "[pages]") {
  std::vector<double> ms;
  for (int i = 100; i >= 1; --i) ms.push_back(i);
  const auto s = pages::summarize(ms);
  CHECK(s.count == 100);
  CHECK(s.p50_ms == 50);
  CHECK(s.p99_ms == 99);
  CHECK(s.max_ms == 100);
  const auto one = pages::summarize({7.5});
  CHECK(one.p50_ms == 7.5);
  CHECK(one.p99_ms == 7.5);
  CHECK(pages::summarize({}).count == 0);
}
