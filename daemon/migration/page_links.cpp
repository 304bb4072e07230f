// The meeting place of a page link and its migration (see page_links.hpp).
#include "migration/page_links.hpp"

namespace migrated::migration {

struct page_links::slot {
  explicit slot(asio::any_io_executor ex)
      : changed(ex, asio::steady_timer::time_point::max()), released(ex, asio::steady_timer::time_point::max()) {}
  std::string id, source;
  transport::channel* link = nullptr;  // the handler's channel, while it waits
  bool done = false;                   // the session let go (or went)
  asio::steady_timer changed;          // cancelled when the link arrives
  asio::steady_timer released;         // cancelled when the session lets go
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
  if (!slot_) co_return fail(errc::internal, "no page link is expected");
  auto s = slot_;
  const auto until = std::chrono::steady_clock::now() + deadline;
  while (!s->link && !s->done && std::chrono::steady_clock::now() < until) {
    s->changed.expires_at(until);
    boost::system::error_code ec;
    co_await s->changed.async_wait(asio::redirect_error(use_awaitable, ec));
  }
  if (s->link) co_return s->link;
  co_return fail(errc::timeout, "the page link from " + s->source + " did not open within " +
                                    std::to_string(deadline.count()) + " ms");
}

void page_links::expected::release() {
  if (!slot_) return;
  slot_->done = true;
  if (slot_->link) slot_->link->close();
  slot_->changed.cancel();
  slot_->released.cancel();
  if (links_) {
    auto it = links_->waiting_.find(slot_->id);
    if (it != links_->waiting_.end() && it->second == slot_) links_->waiting_.erase(it);
  }
  slot_.reset();
}

result<page_links::expected> page_links::expect(asio::any_io_executor ex, const std::string& migration_id,
                                                const std::string& source) {
  if (waiting_.contains(migration_id))
    return fail(errc::already_exists, "migration " + migration_id + " already expects a page link");
  auto s = std::make_shared<slot>(ex);
  s->id = migration_id;
  s->source = source;
  waiting_[migration_id] = s;
  return expected(this, s);
}

awaitable<void> page_links::arrive(transport::channel& ch, std::uint64_t rid, const std::string& migration_id) {
  auto it = waiting_.find(migration_id);
  result<void> ok;
  if (it == waiting_.end())
    ok = fail(errc::not_found, "no migration " + migration_id + " here waits for a page link");
  else if (it->second->source != ch.peer.node())
    ok = fail(errc::denied, "migration " + migration_id + " is not from " + ch.peer.node());
  else if (it->second->link)
    ok = fail(errc::already_exists, "migration " + migration_id + " has its page link already");
  if (!ok) {
    co_await ch.reply(rid, ok, migration_id);
    co_return;
  }
  auto s = it->second;
  const result<void> accepted;
  if (auto sent = co_await ch.reply(rid, accepted, migration_id); !sent || s->done) co_return;
  s->link = &ch;
  s->changed.cancel();
  while (!s->done) {
    boost::system::error_code ec;
    co_await s->released.async_wait(asio::redirect_error(use_awaitable, ec));
  }
  s->link = nullptr;
}

}  // namespace migrated::migration
