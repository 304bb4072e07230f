// The source's side of post-copy: a client of the page server that a
// `--lazy-pages` dump runs (runtime::checkpoint_request::page_socket). The
// frozen container's private memory is not in the images; CRIU answers each
// GET with pages of the stopped tasks (read from them, scripts/criu/0006, or
// from the page pipes an unpatched CRIU fills at the freeze), so the daemon
// gets every page from here, for a fault or for the background push, over
// the daemon's end of the socketpair.
//
// CRIU's server trusts its client: a GET naming a task it did not dump
// dereferences no task, and one for an address outside its lazy memory
// ends the server — the destination's process would then wait on its
// faults for ever. So every request is checked before it is sent, against
// the runs the dump's pagemaps mark lazy (PE_LAZY without PE_PRESENT), and
// asks at most for the rest of the run it starts in: what is left is the
// caller's to ask again.
//
// CRIU answers one request at a time, in order, so requests take turns on
// the socket; a fault's request goes ahead of every background one
// waiting, and waits at most for the one answer already under way.
//
// As a page_source it answers lazy-pages on the same host directly (a
// restore beside the frozen original; docs/design.md, "Post-copy").
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <vector>

#include <boost/asio/local/stream_protocol.hpp>
#include <boost/beast/core/basic_stream.hpp>

#include "asio.hpp"
#include "common/error.hpp"
#include "images/page_set.hpp"
#include "pages/lazy_pages_server.hpp"
#include "pages/page_server_protocol.hpp"
#include "transport/page_link.hpp"
#include "transport/turns.hpp"

namespace migrated::pages {

// The memory a page server holds, by virtual pid: page runs by address.
using held_runs = std::map<std::uint64_t, std::vector<images::page_run>>;

// The lazy runs of a `--lazy-pages` dump in `dir` (its pagemap-<pid>.img).
result<held_runs> lazy_runs(const std::filesystem::path& dir);

enum class priority { fault, background };

class dump_page_client final : public page_source, public transport::page_provider {
 public:
  // `answer_deadline`: how long pages() waits for one answer.
  dump_page_client(asio::local::stream_protocol::socket socket, held_runs held,
                   std::chrono::milliseconds answer_deadline = std::chrono::seconds(10));

  // Pages of task `pid` from `vaddr`: at most `pages` and at most to the
  // end of the held run that holds `vaddr`, into `out` (resized to them).
  // Returns how many. errc::protocol, before anything is sent, when the
  // dump does not hold that page; errc::timeout when the answer took
  // longer than `deadline`; errc::peer when CRIU hung up.
  awaitable<result<std::uint32_t>> get(std::uint64_t pid, std::uint64_t vaddr, std::uint32_t pages,
                                       std::vector<std::uint8_t>& out, std::chrono::milliseconds deadline,
                                       priority p = priority::fault);

  // page_source: get() of a fault, with the answer deadline.
  awaitable<result<std::uint32_t>> pages(const page_request& r, std::vector<std::uint8_t>& out) override;
  // page_provider: get() for the page link, urgent as a fault, with the answer deadline.
  awaitable<result<std::uint32_t>> provide(std::uint64_t pid, std::uint64_t vaddr, std::uint32_t pages,
                                           std::vector<std::uint8_t>& out, bool urgent) override;

  // Ends the transfer: CLOSE, then CRIU's status (0), after which the dump
  // cures the container's tasks and finishes.
  awaitable<result<void>> close(std::chrono::milliseconds deadline);

  // Hangs up without CLOSE (a transfer that cannot go on). CRIU's server
  // takes that as the end of its session, so the dump's own result does
  // not tell a finished transfer from a cut one: the daemon's count does.
  void abandon();

  // The most pages a GET at `vaddr` of task `pid` may ask (0: not held).
  std::uint32_t available(std::uint64_t pid, std::uint64_t vaddr) const;
  const held_runs& held() const { return held_; }

 private:
  using unix_stream = boost::beast::basic_stream<asio::local::stream_protocol, asio::any_io_executor,
                                                 boost::beast::unlimited_rate_policy>;
  unix_stream stream_;
  held_runs held_;
  std::chrono::milliseconds answer_deadline_;
  transport::turns turns_;  // on the socket: a fault goes ahead of every background request waiting
};

}  // namespace migrated::pages
