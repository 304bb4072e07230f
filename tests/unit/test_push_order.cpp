// Unit tests for daemon/pages/push_order: pushing runs in order from the
// start, goes on after the latest fault and wraps around, never offers a
// page the destination has, never crosses a run, and ends when all are done.
#include <catch2/catch.hpp>

#include <set>

#include "pages/push_order.hpp"

using namespace migrated;

namespace {

constexpr std::uint64_t P = pages::page_size;
constexpr std::uint64_t a = 0x10000, b = 0x40000;

pages::held_runs two_runs() {
  pages::held_runs h;
  h[1] = {images::page_run{.vaddr = a, .nr_pages = 4}, images::page_run{.vaddr = b, .nr_pages = 2}};
  h[2] = {images::page_run{.vaddr = a, .nr_pages = 1}};
  return h;
}

// Pushes everything, marking each page done as it goes; the pushes in order.
std::vector<pages::page_request> drain(pages::push_order& order, std::set<std::pair<std::uint64_t, std::uint64_t>>& done,
                                       std::uint32_t chunk) {
  std::vector<pages::page_request> pushed;
  const pages::push_order::done_fn is_done = [&](std::uint64_t pid, std::uint64_t v) { return done.contains({pid, v}); };
  while (auto r = order.next(chunk, is_done)) {
    pushed.push_back(*r);
    for (std::uint32_t i = 0; i < r->pages; ++i) {
      const bool fresh = done.insert({r->pid, r->vaddr + i * P}).second;
      REQUIRE(fresh);  // never offered twice
    }
    REQUIRE(pushed.size() < 100);
  }
  return pushed;
}

}  // namespace

TEST_CASE("push_order pushes every page once, run by run, in chunks", "[pages]") {
  pages::push_order order(two_runs());
  CHECK(order.total_pages() == 7);
  std::set<std::pair<std::uint64_t, std::uint64_t>> done;
  const auto pushed = drain(order, done, 3);
  CHECK(done.size() == 7);
  REQUIRE(pushed.size() == 4);  // 3 + 1 of the first run (a chunk never crosses a run), 2, 1
  CHECK((pushed[0].pid == 1 && pushed[0].vaddr == a && pushed[0].pages == 3));
  CHECK((pushed[1].vaddr == a + 3 * P && pushed[1].pages == 1));
  CHECK((pushed[2].vaddr == b && pushed[2].pages == 2));
  CHECK((pushed[3].pid == 2 && pushed[3].vaddr == a));
}

TEST_CASE("push_order goes on after the latest fault, wraps, and skips what is done", "[pages]") {
  pages::push_order order(two_runs());
  std::set<std::pair<std::uint64_t, std::uint64_t>> done{{1, a + P}};  // a fault fetched it
  order.fault_at(1, a + P);
  const auto pushed = drain(order, done, 8);
  REQUIRE(pushed.size() == 4);
  CHECK((pushed[0].vaddr == a + 2 * P && pushed[0].pages == 2));  // right after the fault
  CHECK((pushed[1].vaddr == b && pushed[1].pages == 2));
  CHECK((pushed[2].pid == 2 && pushed[2].vaddr == a));
  CHECK((pushed[3].pid == 1 && pushed[3].vaddr == a && pushed[3].pages == 1));  // wrapped; the fetched page skipped
  CHECK(done.size() == 7);
}

TEST_CASE("push_order stops a chunk at a page that is done, and ignores faults elsewhere", "[pages]") {
  pages::push_order order(two_runs());
  std::set<std::pair<std::uint64_t, std::uint64_t>> done{{1, a + 2 * P}};
  order.fault_at(3, a);       // no such task
  order.fault_at(1, 0x90000); // not pushed memory
  const pages::push_order::done_fn is_done = [&](std::uint64_t pid, std::uint64_t v) { return done.contains({pid, v}); };
  const auto first = order.next(8, is_done);
  REQUIRE(first);
  CHECK((first->vaddr == a && first->pages == 2));
  pages::push_order empty(pages::held_runs{});
  CHECK_FALSE(empty.next(8, is_done));
}
