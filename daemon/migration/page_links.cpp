// The meeting place of a page link and its migration (see page_links.hpp).
#include "migration/page_links.hpp"

namespace migrated::migration {

struct page_links::slot {
  explicit slot(asio::any_io_executor ex)
      : changed(ex, asio::steady_timer::time_point::max()), released(ex, asio::steady_timer::time_point::max()) {}
  std::string id, source, what;
  bool replaceable = false;
  transport::channel* link = nullptr;  // the session's link: its handler's channel, while it waits
  transport::channel* next = nullptr;  // one that came to replace it, until the session takes it
  bool done = false;                   // the session let go (or went)
  bool stopped = false;                // the session waits for no further link
  asio::steady_timer changed;          // cancelled when a link arrives
  asio::steady_timer released;         // cancelled when the session lets go of one

  bool holds(const transport::channel* ch) const { return !done && (link == ch || next == ch); }
};

page_links::expected& page_links::expected::operator=(expected&& o) noexcept {
  if (this != &o) {
    release();
    links_ = o.links_;
    slot_ = std::move(o.slot_);
  }
  return *this;
}

awaitable<result<transport::channel*>> page_links::expected::arrival(std::chrono::milliseconds deadline) {
  if (!slot_) co_return fail(errc::internal, "nothing is expected");
  auto s = slot_;
  const auto until = std::chrono::steady_clock::now() + deadline;
  for (;;) {
    if (!s->link && s->next) std::swap(s->link, s->next);
    if (s->link || s->done || s->stopped || std::chrono::steady_clock::now() >= until) break;
    s->changed.expires_at(until);
    boost::system::error_code ec;
    co_await s->changed.async_wait(asio::redirect_error(use_awaitable, ec));
  }
  if (s->link) co_return s->link;
  if (s->stopped) co_return fail(errc::cancelled, "no longer waiting for a " + s->what + " from " + s->source);
  co_return fail(errc::timeout, "the " + s->what + " from " + s->source + " did not open within " +
                                    std::to_string(deadline.count()) + " ms");
}

void page_links::expected::drop_link() {
  if (!slot_ || !slot_->link) return;
  slot_->link->close();
  slot_->link = nullptr;
  slot_->released.cancel();
}

void page_links::expected::stop() {
  if (!slot_) return;
  slot_->stopped = true;
  slot_->changed.cancel();
}

void page_links::expected::release() {
  if (!slot_) return;
  slot_->done = true;
  if (slot_->link) slot_->link->close();
  if (slot_->next) slot_->next->close();
  slot_->changed.cancel();
  slot_->released.cancel();
  if (links_) {
    auto it = links_->waiting_.find(slot_->id);
    if (it != links_->waiting_.end() && it->second == slot_) links_->waiting_.erase(it);
  }
  slot_.reset();
}

result<page_links::expected> page_links::expect(asio::any_io_executor ex, const std::string& migration_id,
                                                const std::string& source, bool replaceable) {
  if (waiting_.contains(migration_id))
    return fail(errc::already_exists, "migration " + migration_id + " already expects a " + what_);
  auto s = std::make_shared<slot>(ex);
  s->id = migration_id;
  s->what = what_;
  s->source = source;
  s->replaceable = replaceable;
  waiting_[migration_id] = s;
  return expected(this, s);
}

awaitable<void> page_links::arrive(transport::channel& ch, std::uint64_t rid, const std::string& migration_id) {
  auto it = waiting_.find(migration_id);
  result<void> ok;
  if (it == waiting_.end())
    ok = fail(errc::not_found, "no migration " + migration_id + " here waits for a " + what_);
  else if (it->second->source != ch.peer.node())
    ok = fail(errc::denied, "migration " + migration_id + " is not from " + ch.peer.node());
  else if (it->second->link && !it->second->replaceable)
    ok = fail(errc::already_exists, "migration " + migration_id + " has its " + what_ + " already");
  else if (it->second->stopped)
    ok = fail(errc::cancelled, "migration " + migration_id + " waits for no further " + what_);
  if (!ok) {
    co_await ch.reply(rid, ok, migration_id);
    co_return;
  }
  auto s = it->second;
  const result<void> accepted;
  if (auto sent = co_await ch.reply(rid, accepted, migration_id); !sent || s->done || s->stopped) co_return;
  if (!s->link) {
    s->link = &ch;
  } else {
    // It replaces the link in use, which the source has given up: whatever
    // reads that one ends, and the session takes this one next.
    if (s->next) s->next->close();
    s->next = &ch;
    s->link->close();
    s->released.cancel();  // an older `next` has its handler go
  }
  s->changed.cancel();
  while (s->holds(&ch)) {  // (several handlers may wait: nobody re-arms the timer)
    boost::system::error_code ec;
    co_await s->released.async_wait(asio::redirect_error(use_awaitable, ec));
  }
  if (s->link == &ch) s->link = nullptr;
  if (s->next == &ch) s->next = nullptr;
}

}  // namespace migrated::migration
