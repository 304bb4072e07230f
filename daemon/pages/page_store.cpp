#include "pages/page_store.hpp"

#include <algorithm>
#include <cstring>

namespace migrated::pages {

latency_summary summarize(std::vector<double> samples_ms) {
  latency_summary s;
  s.count = samples_ms.size();
  if (samples_ms.empty()) return s;
  std::sort(samples_ms.begin(), samples_ms.end());
  // Nearest rank: the smallest sample at or above the given share of all.
  const auto rank = [&](double q) {
    const auto n = static_cast<std::size_t>(q * double(samples_ms.size()) + 0.999999);
    return samples_ms[std::clamp<std::size_t>(n, 1, samples_ms.size()) - 1];
  };
  s.p50_ms = rank(0.50);
  s.p99_ms = rank(0.99);
  s.max_ms = samples_ms.back();
  return s;
}

result<void> page_store::put(std::uint64_t pid, std::uint64_t vaddr, std::span<const std::uint8_t> bytes) {
  if (vaddr % page_size != 0 || bytes.size() % page_size != 0 || bytes.empty())
    return fail(errc::protocol, "pushed pages " + hex(vaddr) + " of task " + std::to_string(pid) + ": " +
                                    std::to_string(bytes.size()) + " bytes, not whole aligned pages");
  const std::uint64_t n = bytes.size() / page_size;
  if (vaddr + (n - 1) * page_size < vaddr)
    return fail(errc::protocol, "pushed pages " + hex(vaddr) + " of task " + std::to_string(pid) + ": past the end of memory");
  auto& task = held_[pid];
  for (std::uint64_t i = 0; i < n; ++i) {
    const std::uint64_t v = vaddr + i * page_size;
    ++stats_.pushed_pages;
    if (given_.contains({pid, v})) {
      ++stats_.stale_pushes;
      continue;
    }
    auto [it, fresh] = task.try_emplace(v);
    std::memcpy(it->second.data(), bytes.data() + i * page_size, page_size);
    if (fresh) ++held_count_;
  }
  return result<void>{};
}

bool page_store::holds(std::uint64_t pid, std::uint64_t vaddr) const {
  const auto t = held_.find(pid);
  return t != held_.end() && t->second.contains(vaddr);
}

void page_store::expect(std::uint64_t pid, std::uint64_t vaddr, std::uint32_t pages) {
  for (std::uint32_t i = 0; i < pages; ++i) expected_.insert({pid, vaddr + std::uint64_t(i) * page_size});
}

void page_store::settle(std::uint64_t pid, std::uint64_t vaddr, std::uint32_t pages) {
  for (std::uint32_t i = 0; i < pages; ++i) expected_.erase({pid, vaddr + std::uint64_t(i) * page_size});
  for (auto* t : waiting_) t->cancel();
}

awaitable<void> page_store::until_taken(std::chrono::milliseconds at_most) {
  asio::steady_timer t(co_await asio::this_coro::executor, at_most);
  taking_.push_back(&t);
  boost::system::error_code ec;
  co_await t.async_wait(asio::redirect_error(use_awaitable, ec));
  std::erase(taking_, &t);
}

void page_store::taken() {
  for (auto* t : taking_) t->cancel();
}

awaitable<result<std::uint32_t>> page_store::pages(const page_request& r, std::vector<std::uint8_t>& out) {
  const auto t0 = std::chrono::steady_clock::now();
  const bool waits = expected_.contains({r.pid, r.vaddr}) && !holds(r.pid, r.vaddr);
  if (waits) {
    // On its way already: its answer comes sooner than a second request
    // sent behind it would.
    ++stats_.waited;
    asio::steady_timer t(co_await asio::this_coro::executor, asio::steady_timer::time_point::max());
    waiting_.push_back(&t);
    while (expected_.contains({r.pid, r.vaddr}) && !holds(r.pid, r.vaddr)) {
      boost::system::error_code ec;
      co_await t.async_wait(asio::redirect_error(use_awaitable, ec));
      t.expires_at(asio::steady_timer::time_point::max());
    }
    std::erase(waiting_, &t);
    if (r.pages == 1) {
      ++stats_.faults;
      fault_ms_.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    }
  }
  auto& task = held_[r.pid];
  auto it = task.find(r.vaddr);
  if (it != task.end()) {
    // The held pages from r.vaddr on, as far as they run contiguously.
    std::uint32_t n = 0;
    out.clear();
    while (n < r.pages && it != task.end() && it->first == r.vaddr + std::uint64_t(n) * page_size) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      given_.insert({r.pid, it->first});
      it = task.erase(it);
      --held_count_;
      ++n;
    }
    stats_.local_pages += n;
    taken();
    co_return n;
  }
  // Missing: fetch up to the next page held (lazy-pages asks again from there).
  std::uint32_t want = std::min(r.pages, max_miss_pages);
  const auto next = task.lower_bound(r.vaddr);
  if (next != task.end()) want = std::uint32_t(std::min<std::uint64_t>(want, (next->first - r.vaddr) / page_size));
  for (std::uint32_t i = 1; i < want; ++i)
    if (expected_.contains({r.pid, r.vaddr + std::uint64_t(i) * page_size})) want = i;
  const page_request ask{.pid = r.pid, .vaddr = r.vaddr, .pages = want};
  auto n = co_await remote_.pages(ask, out);
  if (!n) co_return std::unexpected(n.error().context("fetch from the source"));
  if (r.pages == 1 && !waits) {
    ++stats_.faults;
    fault_ms_.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  ++stats_.fetches;
  stats_.fetched_pages += *n;
  // A push of these pages may have arrived while the fetch was under way:
  // lazy-pages gets the fetched copy, and the held one is dropped.
  auto& after = held_[r.pid];
  const std::uint64_t held_before = held_count_;
  for (std::uint32_t i = 0; i < *n; ++i) {
    const std::uint64_t v = r.vaddr + std::uint64_t(i) * page_size;
    given_.insert({r.pid, v});
    if (after.erase(v) != 0) --held_count_;
  }
  if (held_count_ != held_before) taken();
  co_return *n;
}

store_stats page_store::stats() const {
  store_stats s = stats_;
  s.fault_latency = summarize(fault_ms_);
  return s;
}

}  // namespace migrated::pages
