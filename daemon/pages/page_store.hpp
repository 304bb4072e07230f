// The destination's pages during post-copy: what the source pushed ahead
// (and, for a hybrid, what the last pre-copy round left valid), kept by
// task and address until lazy-pages asks for them. As a page_source it
// answers lazy-pages from them, and fetches a page it does not hold from
// `remote` (the source, with a fault's priority) — so a fault waits for
// at most one fetch of its own, never behind pages being pushed.
//
// lazy-pages asks for a fault's page alone and for the rest in runs of up
// to 4 MiB in the background, reading answers strictly in order: a miss
// is fetched at most max_miss_pages at a time, so a fault queued behind a
// background request waits for a short answer, never for megabytes (the
// push brings the rest). Only one-page requests count as faults.
//
// Each page is given to lazy-pages once (it copies it into the process
// and never asks again), so an answered page is dropped, and a pushed copy
// that arrives after lazy-pages got the page another way is not kept.
// Answers stop where the pages held end (or, for a fetch, where held ones
// begin): lazy-pages asks again for the rest.
//
// Pages the background pull has asked for and not yet received are
// `expected`: a request for one waits for the pull's answer rather than
// fetching it a second time behind it on the same link.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <span>
#include <unordered_set>
#include <utility>
#include <vector>

#include "asio.hpp"
#include "pages/lazy_pages_server.hpp"

namespace migrated::pages {

// Fault latency as QEMU reports its blocktime: per fetch from the source.
struct latency_summary {
  std::uint64_t count = 0;
  double p50_ms = 0, p99_ms = 0, max_ms = 0;
};
latency_summary summarize(std::vector<double> samples_ms);

inline constexpr std::uint32_t max_miss_pages = 16;  // 64 KiB: 5 ms at 100 Mbit

struct store_stats {
  std::uint64_t pushed_pages = 0;     // taken by put()
  std::uint64_t stale_pushes = 0;     // pushed after lazy-pages had them: dropped
  std::uint64_t local_pages = 0;      // answered from what was held
  std::uint64_t fetched_pages = 0;    // fetched from the source on demand
  std::uint64_t fetches = 0;
  std::uint64_t faults = 0;           // one-page requests not held: the process waits on each
  std::uint64_t waited = 0;           // requests that waited for the pull's answer
  latency_summary fault_latency;
};

class page_store final : public page_source {
 public:
  explicit page_store(page_source& remote) : remote_(remote) {}

  // Pages of task `pid` from page-aligned `vaddr` (a whole number of
  // pages). errc::protocol otherwise.
  result<void> put(std::uint64_t pid, std::uint64_t vaddr, std::span<const std::uint8_t> pages);

  awaitable<result<std::uint32_t>> pages(const page_request& r, std::vector<std::uint8_t>& out) override;

  std::uint64_t held_pages() const { return held_count_; }
  bool holds(std::uint64_t pid, std::uint64_t vaddr) const;
  // lazy-pages has the page already: pushing it is pointless.
  bool given(std::uint64_t pid, std::uint64_t vaddr) const { return given_.contains({pid, vaddr}); }
  store_stats stats() const;

  // Until lazy-pages takes some of the pages held (a pull waiting for
  // room), or `at_most` passed.
  awaitable<void> until_taken(std::chrono::milliseconds at_most);

  // The pull asked for these pages / their answer came (after put()) or failed.
  void expect(std::uint64_t pid, std::uint64_t vaddr, std::uint32_t pages);
  void settle(std::uint64_t pid, std::uint64_t vaddr, std::uint32_t pages);
  bool expected(std::uint64_t pid, std::uint64_t vaddr) const { return expected_.contains({pid, vaddr}); }

 private:
  using page = std::array<std::uint8_t, page_size>;
  struct key_hash {
    std::size_t operator()(const std::pair<std::uint64_t, std::uint64_t>& k) const {
      return std::hash<std::uint64_t>()(k.first * 0x9e3779b97f4a7c15ull ^ k.second);
    }
  };

  page_source& remote_;
  std::map<std::uint64_t, std::map<std::uint64_t, page>> held_;  // pid → vaddr → bytes
  std::uint64_t held_count_ = 0;
  std::unordered_set<std::pair<std::uint64_t, std::uint64_t>, key_hash> given_;  // (pid, vaddr) lazy-pages has
  std::unordered_set<std::pair<std::uint64_t, std::uint64_t>, key_hash> expected_;  // asked for by the pull
  std::vector<asio::steady_timer*> waiting_;  // requests waiting for the pull: cancelled by settle()
  std::vector<asio::steady_timer*> taking_;   // pulls waiting for room: cancelled when pages are taken
  void taken();
  store_stats stats_;
  std::vector<double> fault_ms_;
};

}  // namespace migrated::pages
