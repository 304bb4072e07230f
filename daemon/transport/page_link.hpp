// The page link of a post-copy: a channel of its own between the two
// daemons (TLS, authenticated like every peer link) that carries only
// pages — from the source, which holds the frozen container's memory, to
// the destination, whose restored process faults on it.
//
// The destination asks and the source answers: a PageGet, then a PageData
// of the same request_id with the pages (or a Reply with the error). The
// destination drives the whole transfer, the background one included, so
// what may stand ahead of a fault's answer is bounded by the requests it
// keeps outstanding, not by socket buffers: an urgent request (a fault)
// goes ahead of every other one waiting, at the source's page provider and
// again on the wire, and so waits at most for the one answer under way in
// each place (docs/design.md, "Post-copy").
//
// A hybrid's requests carry the hash of the destination's own copy of each
// page (from its last pre-copy round); the source sends only the pages that
// changed since, and marks the others unchanged (docs/design.md, "Hybrid").
//
// Each end has one reader; writers take turns (transport/turns.hpp), the
// urgent first.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <vector>

#include "asio.hpp"
#include "common/error.hpp"
#include "transport/channel.hpp"
#include "transport/turns.hpp"

namespace migrated::transport {

inline constexpr std::uint32_t link_page_bytes = 4096;
inline constexpr std::uint32_t max_link_pages = 1024;  // 4 MiB an answer

// The destination's own copy of the pages it asks for, possibly stale.
struct page_base {
  std::vector<std::uint8_t> bytes;    // one page per hash (anything where the hash is 0)
  std::vector<std::uint64_t> hashes;  // XXH3-64 of each page; 0: no copy here
};

// Where the source's pages come from (the dump's page server).
class page_provider {
 public:
  virtual ~page_provider() = default;
  // 1..pages pages of task `pid` from `vaddr` into `out` (resized to them);
  // how many. errc::protocol: not memory it holds (that request is
  // refused, the link goes on); any other error ends the link.
  virtual awaitable<result<std::uint32_t>> provide(std::uint64_t pid, std::uint64_t vaddr, std::uint32_t pages,
                                                   std::vector<std::uint8_t>& out, bool urgent) = 0;
};

struct page_link_stats {
  std::uint64_t requests = 0;  // answered with pages
  std::uint64_t urgent = 0;    // of those, urgent
  std::uint64_t pages = 0;
  std::uint64_t unchanged = 0; // of those, marked unchanged: not sent
  std::uint64_t refused = 0;   // answered with an error
  pb::PagesEnd end;            // what the destination said of the transfer
};

// How a link ended that did not fail for good: finished (PagesEnd
// acknowledged), or lost — its connection failed (a read or write timed
// out, the peer hung up), why in `lost`, and the transfer may go on over
// another link between the same two ends (docs/design.md, "Recovery").
struct link_end {
  std::optional<error> lost;
};

// The source's end: answers the requests on `ch` from `provider` until the
// destination's PagesEnd, which it acknowledges once every answer went,
// counting into `stats` (which may go on from an earlier link).
// At most `in_flight` requests are worked on at once (the next is read
// when one is answered); `idle` bounds the wait for the next request.
// A lost connection is a link_end; an Abort is errc::cancelled with its
// reason, and the provider's failure or a request out of protocol its error.
awaitable<result<link_end>> serve_page_link(channel& ch, page_provider& provider, std::chrono::milliseconds idle,
                                            page_link_stats& stats, std::size_t in_flight = 16);

// The destination's end. Its requests live as long as their callers wait,
// not as long as one channel: with keep_on_loss(), a lost connection leaves
// them waiting (without their deadlines) until resume() sends them again
// on the next channel, or give_up() fails them; a request unanswered past
// its deadline then counts as a lost connection, not as its own failure.
class page_link_client {
 public:
  explicit page_link_client(channel& ch) : ch_(&ch) {}
  page_link_client(const page_link_client&) = delete;
  page_link_client& operator=(const page_link_client&) = delete;

  // A lost connection keeps the requests (run() ends with a link_end that
  // says why); without it, it fails them, as any other error does.
  void keep_on_loss(bool keep) { keep_ = keep; }

  // Reads the answers, and must run while anything is asked; ends once
  // finish() is acknowledged, or with the link's error, which every get()
  // waiting then returns too — or, kept on loss, lost. `idle` bounds each read.
  awaitable<result<link_end>> run(std::chrono::milliseconds idle);

  // After run() ended lost: no request goes out until resume() (the write
  // under way, if any, ends first: the channel is no longer used once this returns).
  awaitable<void> suspend();
  // The next channel: every request still waiting is sent again on it, and
  // its deadline starts again. run() is called again for its answers.
  awaitable<void> resume(channel& ch);
  // No next channel: every request waiting ends with `why`, as on a failure.
  void give_up(const error& why) { fail_all(why); }

  // At most `pages` pages of task `pid` from `vaddr` into `out` (resized
  // to them); how many. The source's error when it refused, errc::timeout
  // after `deadline` on the link (a late answer is dropped; kept on loss,
  // the connection is lost instead), the link's error when the link failed. With `base` (one hash per page asked), the
  // pages the source marks unchanged are copied from it.
  awaitable<result<std::uint32_t>> get(std::uint64_t pid, std::uint64_t vaddr, std::uint32_t pages,
                                       std::vector<std::uint8_t>& out, bool urgent, std::chrono::milliseconds deadline,
                                       const page_base* base = nullptr);

  // Page bytes that crossed the link, and pages taken from a base instead,
  // of all the pages answered.
  std::uint64_t page_bytes() const { return page_bytes_; }
  std::uint64_t unchanged_pages() const { return unchanged_; }
  std::uint64_t answered_pages() const { return answered_; }

  // PagesEnd (with what this end measured), and the source's
  // acknowledgement (which also ends run()).
  awaitable<result<void>> finish(const pb::PagesEnd& summary, std::chrono::milliseconds deadline);

  // Whether the link failed (and why): every later get() fails at once.
  const std::optional<error>& failed() const { return failed_; }
  // Whether it is lost and not resumed yet.
  bool down() const { return down_; }

 private:
  struct waiter;
  std::shared_ptr<waiter> enlist(asio::any_io_executor ex, pb::Envelope&& request, bool urgent,
                                 std::chrono::milliseconds deadline);
  awaitable<result<void>> send(waiter& w);
  awaitable<result<pb::Envelope>> wait(std::uint64_t id, waiter& w);
  void wake_all();
  void fail_all(const error& e);

  channel* ch_;
  turns writes_;
  bool keep_ = false;
  bool down_ = false;
  std::uint64_t next_id_ = 1;
  std::map<std::uint64_t, std::shared_ptr<waiter>> waiting_;
  std::optional<error> failed_;
  std::uint64_t page_bytes_ = 0;
  std::uint64_t unchanged_ = 0;
  std::uint64_t answered_ = 0;
};

}  // namespace migrated::transport
