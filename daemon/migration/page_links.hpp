// Where a post-copy's page link meets its migration at the destination.
// The source opens the link on a connection of its own (PageLinkOpen, the
// first request on it); the destination session waiting for the pages of
// that migration takes it over. Until the session lets go, the connection's
// handler waits and the channel stays its own: neither side owns the
// other's objects, and a link nobody expects is refused at once.
//
// A link may be lost and replaced (postcopy.recover_timeout_ms): a claim
// made `replaceable` takes the next PageLinkOpen for its migration while it
// still holds one — the old channel is closed then, so that whatever reads
// it ends — and the session drops the old link before it takes the next.
//
// The same meeting serves a second kind of connection: a source daemon
// that restarted during a post-copy takes its migration up again on a new
// channel (SessionResume), which the destination session, having lost the
// old one, waits for. `what` names the kind in every message.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "asio.hpp"
#include "common/error.hpp"
#include "transport/channel.hpp"

namespace migrated::migration {

class page_links {
 public:
  struct slot;

  explicit page_links(std::string what = "page link") : what_(std::move(what)) {}

  // The destination session's claim on the link of `migration_id`, from
  // `source` (a peer's node name). The claim ends when this goes.
  class expected {
   public:
    expected() = default;
    expected(page_links* links, std::shared_ptr<slot> s) : links_(links), slot_(std::move(s)) {}
    expected(expected&& o) noexcept : links_(o.links_), slot_(std::move(o.slot_)) {}
    expected& operator=(expected&& o) noexcept;
    ~expected() { release(); }

    // The link, once the source opened it; errc::timeout after `deadline`,
    // errc::cancelled after stop().
    awaitable<result<transport::channel*>> arrival(std::chrono::milliseconds deadline);
    // Done with the current link (closed, back to its handler); the claim
    // stays, for the next one.
    void drop_link();
    // arrival() ends now and any later one at once; the current link stays.
    void stop();
    // Done with the link: its handler closes it.
    void release();

   private:
    page_links* links_ = nullptr;
    std::shared_ptr<slot> slot_;
  };

  // errc::already_exists when that migration already expects one. `ex`:
  // the session's (the daemon's I/O thread).
  result<expected> expect(asio::any_io_executor ex, const std::string& migration_id, const std::string& source,
                          bool replaceable = false);

  // The connection handler's side, for PageLinkOpen (or SessionResume) on `ch` (request `rid`):
  // refused (the Reply says why) unless a session expects this link from
  // this peer; otherwise the Reply goes and this waits until the session
  // released the link.
  awaitable<void> arrive(transport::channel& ch, std::uint64_t rid, const std::string& migration_id);

 private:
  std::string what_;
  std::map<std::string, std::shared_ptr<slot>> waiting_;
};

}  // namespace migrated::migration
