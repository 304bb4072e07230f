#include "pages/page_pull.hpp"

#include <algorithm>
#include <optional>
#include <utility>
#include <vector>

namespace migrated::pages {

awaitable<result<std::uint32_t>> fetch(transport::page_link_client& link, const base_round& base, std::uint64_t pid,
                                       std::uint64_t vaddr, std::uint32_t pages, std::vector<std::uint8_t>& out,
                                       bool urgent, std::chrono::milliseconds deadline) {
  if (!base.images) co_return co_await link.get(pid, vaddr, pages, out, urgent, deadline);
  transport::page_base copy;
  const image_page_server& images = *base.images;
  auto read = co_await offload(*base.pool, [&] { return images.read_base(pid, vaddr, pages, copy); });
  if (!read) co_return std::unexpected(read.error().context("the last pre-copy round"));
  co_return co_await link.get(pid, vaddr, pages, out, urgent, deadline, &copy);
}

awaitable<result<std::uint32_t>> link_source::pages(const page_request& r, std::vector<std::uint8_t>& out) {
  order_.fault_at(r.pid, r.vaddr);
  const std::uint32_t asked = std::min(r.pages, transport::max_link_pages);
  co_return co_await fetch(link_, base_, r.pid, r.vaddr, asked, out, true, deadline_);
}

std::uint32_t request_pages(std::uint32_t chunk_pages, bool with_base, std::uint64_t answered,
                            std::uint64_t changed) {
  const std::uint32_t chunk = std::clamp<std::uint32_t>(chunk_pages, 1, transport::max_link_pages);
  if (!with_base || answered < chunk) return chunk;  // too few answers to say
  const double per_changed = double(answered) / double(std::max<std::uint64_t>(changed, 1));
  const double most = std::min<double>(double(chunk) * max_growth, transport::max_link_pages);
  return std::uint32_t(std::clamp(double(chunk) * per_changed, double(chunk), most));
}

namespace {

// How often a pull waiting for room looks at `stop` again.
constexpr std::chrono::milliseconds room_recheck{50};

struct pulling {
  explicit pulling(asio::any_io_executor ex) : changed(ex, asio::steady_timer::time_point::max()) {}
  std::size_t running = 0;
  asio::steady_timer changed;  // cancelled when a worker ends
  std::optional<error> failed;
  pull_stats stats;
};

awaitable<void> worker(transport::page_link_client& link, push_order& order, page_store& store,
                       const pull_options& opts, const bool& stop, pulling& p) {
  const push_order::done_fn done = [&store](std::uint64_t pid, std::uint64_t v) {
    return store.holds(pid, v) || store.given(pid, v) || store.expected(pid, v);
  };
  std::vector<std::uint8_t> data;
  while (!stop && !p.failed) {
    if (store.held_pages() >= opts.max_held_pages) {
      co_await store.until_taken(room_recheck);
      continue;
    }
    const auto asked = request_pages(opts.chunk_pages, opts.base.images != nullptr, link.answered_pages(),
                                     link.page_bytes() / transport::link_page_bytes);
    const auto next = order.next(asked, done);
    if (!next) break;
    store.expect(next->pid, next->vaddr, next->pages);
    auto n = co_await fetch(link, opts.base, next->pid, next->vaddr, next->pages, data, false, opts.deadline);
    auto kept = n ? store.put(next->pid, next->vaddr, data) : result<void>{};
    store.settle(next->pid, next->vaddr, next->pages);  // (after put: whoever waited finds them held)
    if (!n) {
      if (!p.failed) p.failed = n.error().context("background transfer");
      break;
    }
    if (!kept) {
      if (!p.failed) p.failed = kept.error();
      break;
    }
    ++p.stats.requests;
    p.stats.pages += *n;
  }
  --p.running;
  p.changed.cancel();
}

}  // namespace

awaitable<result<pull_stats>> pull_pages(transport::page_link_client& link, push_order& order, page_store& store,
                                         const pull_options& opts, const bool& stop) {
  auto ex = co_await asio::this_coro::executor;
  pulling p(ex);
  const std::size_t workers = opts.window == 0 ? 1 : opts.window;
  for (std::size_t i = 0; i < workers; ++i) {
    ++p.running;
    asio::co_spawn(ex, worker(link, order, store, opts, stop, p), asio::detached);
  }
  while (p.running > 0) {  // they refer to `p`
    p.changed.expires_at(asio::steady_timer::time_point::max());
    boost::system::error_code ec;
    co_await p.changed.async_wait(asio::redirect_error(use_awaitable, ec));
  }
  if (p.failed) co_return std::unexpected(*p.failed);
  co_return p.stats;
}

}  // namespace migrated::pages
