// The destination's side of a post-copy's page transfer, over the page
// link (transport/page_link.hpp): a page lazy-pages asks for and the store
// lacks is fetched at once as urgent (a fault), and the rest comes in the
// background, in push_order, a bounded window of requests outstanding,
// into the page_store, until every page is held there or was given.
//
// The destination asks for the background pages rather than the source
// pushing them: what can stand ahead of a fault's answer on the wire is
// then at most the window (window × chunk pages), whatever the socket
// buffers and the link's queue would hold (docs/design.md, "Post-copy").
//
// A hybrid's destination holds its last pre-copy round (`base`): every
// request, a fault's too, carries the hashes of its copy of the pages, and
// the source sends only those that changed since.
#pragma once

#include <chrono>
#include <cstdint>

#include "asio.hpp"
#include "common/error.hpp"
#include "pages/image_page_server.hpp"
#include "pages/lazy_pages_server.hpp"
#include "pages/page_store.hpp"
#include "pages/push_order.hpp"
#include "transport/page_link.hpp"

namespace migrated::pages {

// A hybrid's last pre-copy round at the destination, read on `pool`.
struct base_round {
  const image_page_server* images = nullptr;  // none: plain post-copy
  asio::thread_pool* pool = nullptr;
};

// Pages over the link, with the base's hashes when there is one.
awaitable<result<std::uint32_t>> fetch(transport::page_link_client& link, const base_round& base, std::uint64_t pid,
                                       std::uint64_t vaddr, std::uint32_t pages, std::vector<std::uint8_t>& out,
                                       bool urgent, std::chrono::milliseconds deadline);

// The store's remote: a miss is fetched over the link as urgent, and the
// background goes on after the page the process faulted on.
class link_source final : public page_source {
 public:
  link_source(transport::page_link_client& link, push_order& order, std::chrono::milliseconds deadline,
              base_round base = {})
      : link_(link), order_(order), deadline_(deadline), base_(base) {}
  awaitable<result<std::uint32_t>> pages(const page_request& r, std::vector<std::uint8_t>& out) override;

 private:
  transport::page_link_client& link_;
  push_order& order_;
  std::chrono::milliseconds deadline_;
  base_round base_;
};

// A hybrid's background request costs the link a hash for each page its
// base holds unchanged and a page for each one that changed, so it asks
// for more pages as the answers so far say how few changed: about
// chunk_pages of them expected to cross, at most max_growth × chunk_pages
// asked (what may stand ahead of a fault when a run of changed pages
// comes: 1 MiB, 87 ms at 100 Mbit).
inline constexpr std::uint32_t max_growth = 8;
std::uint32_t request_pages(std::uint32_t chunk_pages, bool with_base, std::uint64_t answered,
                            std::uint64_t changed);

// Pulled pages waiting in the store for lazy-pages to take them: past
// this many the pull waits for it. A hybrid's pull of unchanged pages is
// not paced by the link and would otherwise copy the whole memory into
// the destination daemon ahead of lazy-pages (932 MiB of a 1 GiB
// container); lazy-pages moves the pull to wherever it asks, so the two
// go on together.
inline constexpr std::uint64_t default_max_held_pages = 16384;  // 64 MiB

struct pull_options {
  std::uint32_t chunk_pages = 32;   // 128 KiB a request
  std::size_t window = 4;           // requests outstanding: 512 KiB, 42 ms at 100 Mbit
  std::uint64_t max_held_pages = default_max_held_pages;
  std::chrono::milliseconds deadline = std::chrono::seconds(30);  // for one answer
  base_round base;
};

struct pull_stats {
  std::uint64_t requests = 0;
  std::uint64_t pages = 0;
};

// Pulls every page of `order` that `store` neither holds nor gave, until
// none is left (success), `stop` is set (success: the caller ends it), or
// a request fails (its error, after the others outstanding ended). It asks
// for no more while the store holds max_held_pages or more.
awaitable<result<pull_stats>> pull_pages(transport::page_link_client& link, push_order& order, page_store& store,
                                         const pull_options& opts, const bool& stop);

}  // namespace migrated::pages
