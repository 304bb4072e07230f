// The page server `criu lazy-pages` talks to (`--page-server --ps-socket`):
// one loop for every place pages may come from. It reads lazy-pages'
// requests (page_server_protocol checks each), asks a page_source for the
// pages of each GET, answers with as many as the source gave — lazy-pages
// asks again for the rest of a short answer — and ends at lazy-pages'
// CLOSE, answered with status 0.
//
// Sources: images on disk (image_page_server: pages a destination already
// holds), the dump's own page server on this host (dump_page_client).
#pragma once

#include <chrono>
#include <cstdint>
#include <vector>

#include <boost/asio/local/stream_protocol.hpp>

#include "asio.hpp"
#include "common/error.hpp"
#include "pages/page_server_protocol.hpp"

namespace migrated::pages {

class page_source {
 public:
  virtual ~page_source() = default;
  // 1..r.pages pages of task r.pid from r.vaddr into `out` (resized to
  // them); how many. An error ends the serve: the restore cannot go on
  // without the page.
  virtual awaitable<result<std::uint32_t>> pages(const page_request& r, std::vector<std::uint8_t>& out) = 0;
};

struct serve_stats {
  std::uint64_t requests = 0;       // GETs answered
  std::uint64_t pages = 0;          // pages sent
  std::uint64_t short_answers = 0;  // answers with fewer pages than asked
};

// Serves one lazy-pages connection until its CLOSE; every read waits at
// most `idle` for lazy-pages' next request (errc::timeout), every answer
// at most `idle` to be taken.
awaitable<result<serve_stats>> serve_lazy_pages(asio::local::stream_protocol::socket& socket, page_source& source,
                                                std::chrono::milliseconds idle);

}  // namespace migrated::pages
