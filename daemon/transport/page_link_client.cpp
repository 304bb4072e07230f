// The destination's end of the page link: requests go out as the callers
// make them (urgent ones first when several wait to be written), and the
// one reader hands each answer to the get() waiting on its request_id.
#include "transport/page_link.hpp"

#include <cstring>
#include <string>

#include "common/hash.hpp"

namespace migrated::transport {
namespace {

bool marked(const std::string& bits, std::uint32_t i) {
  return i / 8 < bits.size() && (std::uint8_t(bits[i / 8]) >> (i % 8) & 1) != 0;
}

// What is wrong with an answer's pages, if anything: a page marked
// unchanged must be one this end has a copy of, and the payload holds
// exactly the others.
std::string check_unchanged(const pb::PageData& d, std::size_t payload, const page_base* base) {
  const auto& bits = d.unchanged();
  if (bits.size() > (d.pages() + 7) / 8) return std::to_string(bits.size()) + " bytes of marks for " +
                                                std::to_string(d.pages()) + " pages";
  std::uint64_t sent = 0;
  for (std::uint32_t i = 0; i < d.pages(); ++i) {
    if (!marked(bits, i)) {
      ++sent;
    } else if (!base || base->hashes[i] == 0) {
      return "page " + hex(d.vaddr() + std::uint64_t(i) * link_page_bytes) + " marked unchanged, which this end has no copy of";
    }
  }
  for (std::uint32_t i = d.pages(); i < bits.size() * 8; ++i)
    if (marked(bits, i)) return "a page marked unchanged past the pages answered";
  if (payload != sent * link_page_bytes)
    return std::to_string(payload) + " bytes for " + std::to_string(sent) + " pages sent of " + std::to_string(d.pages());
  return {};
}

// The answer's pages into `out`, the unchanged ones from `base`; how many those were.
std::uint64_t assemble(const pb::PageData& d, std::vector<std::uint8_t>&& payload, const page_base* base,
                       std::vector<std::uint8_t>& out) {
  if (d.unchanged().empty()) {
    out = std::move(payload);
    return 0;
  }
  out.resize(std::size_t(d.pages()) * link_page_bytes);
  std::uint64_t from_base = 0;
  std::size_t next = 0;
  for (std::uint32_t i = 0; i < d.pages(); ++i) {
    const std::uint8_t* page;
    if (marked(d.unchanged(), i)) {
      page = base->bytes.data() + std::size_t(i) * link_page_bytes;
      ++from_base;
    } else {
      page = payload.data() + next;
      next += link_page_bytes;
    }
    std::memcpy(out.data() + std::size_t(i) * link_page_bytes, page, link_page_bytes);
  }
  return from_base;
}

}  // namespace

struct page_link_client::waiter {
  waiter(asio::any_io_executor ex, pb::Envelope&& r, bool u, std::chrono::milliseconds d)
      : wake(ex, asio::steady_timer::time_point::max()), request(std::move(r)), urgent(u), deadline(d) {}
  asio::steady_timer wake;
  pb::Envelope request;  // as sent, and sent again on the next channel
  bool urgent;
  std::chrono::milliseconds deadline;  // for the answer, from the last send
  bool sent = false;                   // on the current channel
  std::chrono::steady_clock::time_point sent_at{};
  // What was asked (none: the PagesEnd), and where its pages go.
  std::uint64_t pid = 0, vaddr = 0;
  std::uint32_t pages = 0;
  std::vector<std::uint8_t>* out = nullptr;
  const page_base* base = nullptr;  // a hybrid's copy: pages marked unchanged come from it
  std::optional<result<pb::Envelope>> answer;
};

// Every waiter looks at its deadline again (the link went down or came back).
void page_link_client::wake_all() {
  for (auto& [id, w] : waiting_) w->wake.cancel();
}

void page_link_client::fail_all(const error& e) {
  if (!failed_) failed_ = e;
  for (auto& [id, w] : waiting_) {
    w->answer = std::unexpected(*failed_);
    w->wake.cancel();
  }
  waiting_.clear();
}

// (Registered before its request is sent: the answer may come before the send returns.)
std::shared_ptr<page_link_client::waiter> page_link_client::enlist(asio::any_io_executor ex, pb::Envelope&& request,
                                                                   bool urgent, std::chrono::milliseconds deadline) {
  const std::uint64_t id = next_id_++;
  request.set_request_id(id);
  auto w = std::make_shared<waiter>(ex, std::move(request), urgent, deadline);
  waiting_.emplace(id, w);
  return w;
}

// A request onto the current channel, unless it is down (resume() sends it
// then) or it went there already. A failed write loses the connection when
// requests are kept, and fails the link otherwise.
awaitable<result<void>> page_link_client::send(waiter& w) {
  co_await writes_.acquire(w.urgent);
  const turns::guard mine{writes_};
  if (failed_) co_return std::unexpected(*failed_);
  if (down_ || w.sent) co_return result<void>{};
  w.sent = true;
  w.sent_at = std::chrono::steady_clock::now();
  auto sent = co_await ch_->send(w.request, {});
  if (sent) co_return sent;
  w.sent = false;
  if (keep_) {
    ch_->close();  // the reader ends lost, and the session looks for the next channel
    co_return result<void>{};
  }
  fail_all(sent.error().context("page link"));
  co_return sent;
}

// The answer, or errc::timeout once the request has been on a channel for
// its deadline. Kept on loss, a request unanswered for that long says the
// connection is lost (nothing tells silence from a cut sooner): it is
// closed, and the request waits for the next; no deadline runs while the
// link is down.
awaitable<result<pb::Envelope>> page_link_client::wait(std::uint64_t id, waiter& w) {
  for (;;) {
    if (w.answer) co_return std::move(*w.answer);
    const bool timed = !down_ && w.sent;
    if (timed && std::chrono::steady_clock::now() >= w.sent_at + w.deadline) {
      if (!keep_) break;
      w.sent = false;  // (resume() sends it again)
      ch_->close();    // run() ends lost
      continue;
    }
    w.wake.expires_at(timed ? w.sent_at + w.deadline : asio::steady_timer::time_point::max());
    boost::system::error_code ec;  // operation_aborted: answered, failed, down or back
    co_await w.wake.async_wait(asio::redirect_error(use_awaitable, ec));
  }
  waiting_.erase(id);  // the answer, if it comes, is dropped
  co_return fail(errc::timeout, "page link: no answer from the source in " + std::to_string(w.deadline.count()) + " ms");
}

awaitable<void> page_link_client::suspend() {
  ch_->close();
  co_await writes_.acquire(true);  // the write under way, if any, has ended
  const turns::guard mine{writes_};
  down_ = true;
  for (auto& [id, w] : waiting_) w->sent = false;
  wake_all();
}

awaitable<void> page_link_client::resume(channel& ch) {
  co_await writes_.acquire(true);
  const turns::guard mine{writes_};
  if (failed_) co_return;
  ch_ = &ch;
  down_ = false;
  // Faults first, then the rest in the order they were asked. (A copy:
  // requests may come and go while a send waits.)
  std::vector<std::shared_ptr<waiter>> again;
  for (const bool urgent : {true, false})
    for (const auto& [id, w] : waiting_)
      if (w->urgent == urgent) again.push_back(w);
  for (auto& w : again) {
    if (w->sent || w->answer || !waiting_.contains(w->request.request_id())) continue;
    w->sent = true;
    w->sent_at = std::chrono::steady_clock::now();
    if (auto sent = co_await ch_->send(w->request, {}); !sent) {
      w->sent = false;
      ch_->close();  // lost again: run() says so
      break;
    }
  }
  wake_all();
}

awaitable<result<std::uint32_t>> page_link_client::get(std::uint64_t pid, std::uint64_t vaddr, std::uint32_t pages,
                                                       std::vector<std::uint8_t>& out, bool urgent,
                                                       std::chrono::milliseconds deadline, const page_base* base) {
  const std::string what = "pages " + hex(vaddr) + " of task " + std::to_string(pid);
  if (failed_) co_return std::unexpected(failed_->context(what));
  if (pages == 0 || pages > max_link_pages || vaddr % link_page_bytes != 0)
    co_return fail(errc::internal, what + ": " + std::to_string(pages) + " pages is no request for the page link");
  if (base && (base->hashes.size() != pages || base->bytes.size() != std::size_t(pages) * link_page_bytes))
    co_return fail(errc::internal, what + ": a base of " + std::to_string(base->hashes.size()) + " pages for " +
                                       std::to_string(pages));
  pb::Envelope env;
  auto* g = env.mutable_page_get();
  g->set_pid(pid);
  g->set_vaddr(vaddr);
  g->set_pages(pages);
  g->set_urgent(urgent);
  if (base) g->mutable_hashes()->Add(base->hashes.begin(), base->hashes.end());
  auto w = enlist(co_await asio::this_coro::executor, std::move(env), urgent, deadline);
  const std::uint64_t id = w->request.request_id();
  w->pid = pid;
  w->vaddr = vaddr;
  w->pages = pages;
  w->out = &out;
  w->base = base;
  if (auto sent = co_await send(*w); !sent) {
    waiting_.erase(id);
    co_return std::unexpected(sent.error().context(what));
  }
  auto answer = co_await wait(id, *w);
  if (!answer) co_return std::unexpected(answer.error().context(what));
  if (answer->has_reply()) co_return std::unexpected(to_result(answer->reply()).error().context(what));
  co_return answer->page_data().pages();
}

awaitable<result<void>> page_link_client::finish(const pb::PagesEnd& summary, std::chrono::milliseconds deadline) {
  if (failed_) co_return std::unexpected(*failed_);
  pb::Envelope env;
  *env.mutable_pages_end() = summary;
  auto w = enlist(co_await asio::this_coro::executor, std::move(env), false, deadline);
  const std::uint64_t id = w->request.request_id();
  if (auto sent = co_await send(*w); !sent) {
    waiting_.erase(id);
    co_return sent;
  }
  auto answer = co_await wait(id, *w);
  if (!answer) co_return std::unexpected(answer.error().context("end of the page transfer"));
  co_return with_context(to_result(answer->reply()), "end of the page transfer");
}

awaitable<result<link_end>> page_link_client::run(std::chrono::milliseconds idle) {
  for (;;) {
    if (failed_) co_return std::unexpected(*failed_);  // given up while it was down
    auto f = co_await ch_->recv(idle);
    if (!f) {
      if (keep_ && !failed_) co_return link_end{f.error().context("page link")};
      fail_all(f.error().context("page link"));
      co_return std::unexpected(*failed_);
    }
    const std::uint64_t id = f->msg.request_id();
    if (f->msg.has_abort()) {
      fail_all(aborted_by_peer(*ch_, f->msg.abort()).context("page link"));
      co_return std::unexpected(*failed_);
    }
    const bool pages = f->msg.has_page_data();
    if (!pages && !f->msg.has_reply()) {
      fail_all(error{errc::protocol, "page link: the source sent message #" + std::to_string(f->msg.body_case())});
      co_return std::unexpected(*failed_);
    }
    if (id == 0 || id >= next_id_) {
      fail_all(error{errc::protocol, "page link: an answer to request " + std::to_string(id) + ", never made"});
      co_return std::unexpected(*failed_);
    }
    const auto it = waiting_.find(id);
    if (it == waiting_.end()) continue;  // its get() gave up waiting
    auto w = it->second;
    // What the source sends is checked before it is used: a PageGet is
    // answered with the pages asked for (or fewer, from the same address),
    // all of them there, or with an error; a PagesEnd with a Reply.
    const bool is_end = w->pages == 0;
    std::string wrong;
    if (pages) {
      const auto& d = f->msg.page_data();
      if (is_end) wrong = "pages for the end of the transfer";
      else if (d.pid() != w->pid || d.vaddr() != w->vaddr || d.pages() == 0 || d.pages() > w->pages)
        wrong = std::to_string(d.pages()) + " pages at " + hex(d.vaddr()) + " of task " + std::to_string(d.pid()) +
                " for " + std::to_string(w->pages) + " at " + hex(w->vaddr) + " of task " + std::to_string(w->pid);
      else wrong = check_unchanged(d, f->payload.size(), w->base);
    } else if (!is_end && f->msg.reply().ok()) {
      wrong = "no pages and no error";
    }
    if (!wrong.empty()) {
      fail_all(error{errc::protocol, "page link: answer to request " + std::to_string(id) + ": " + wrong});
      co_return std::unexpected(*failed_);
    }
    if (pages) {
      page_bytes_ += f->payload.size();
      answered_ += f->msg.page_data().pages();
      unchanged_ += assemble(f->msg.page_data(), std::move(f->payload), w->base, *w->out);
    }
    waiting_.erase(it);
    const bool ended = is_end && f->msg.reply().ok();  // finish() acknowledged
    w->answer = std::move(f->msg);
    w->wake.cancel();
    if (ended) {  // nothing more comes: whatever still waits ends now
      fail_all(error{errc::cancelled, "page link: the transfer ended"});
      co_return link_end{};
    }
  }
}

}  // namespace migrated::transport
