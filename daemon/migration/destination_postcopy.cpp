// Post-copy at the destination: the restore goes ahead with the images
// that came (no private memory in them), `criu lazy-pages` takes the
// restored process's userfaultfds and asks for every page it lacks, and
// this daemon answers it from a page store that the page link fills — a
// fault's pages fetched from the source at once, as urgent, every other
// page pulled in the background in push_order (nearest the latest fault
// first). Once lazy-pages holds every page it ends its conversation; then
// PagesEnd tells the source, which lets its frozen copy go only at Commit.
// A hybrid's requests, faults and pull alike, carry the hashes of the
// pages its last warm-up round left here: the source sends only those that
// changed. See docs/design.md, "Post-copy" and "Hybrid".
#include <boost/asio/local/connect_pair.hpp>

#include "common/log.hpp"
#include "common/names.hpp"
#include "criu/criu.hpp"
#include "migration/destination_session.hpp"
#include "migration/fault_point.hpp"
#include "pages/dump_page_client.hpp"

namespace migrated::migration {
namespace {

std::shared_ptr<spdlog::logger> logger() { return log::get("migration"); }

// The descriptor at which `criu lazy-pages` finds its page source.
constexpr int lazy_pages_fd = 3;

}  // namespace

awaitable<result<runtime::container_info>> destination_session::restore_lazily() {
  auto& l = *lazy_;
  const auto images = rounds_->current_dir();
  auto link = co_await l.claim.arrival(ctx_.cfg.timeouts.io);
  if (!link) co_return std::unexpected(link.error());
  l.link = *link;
  auto ex = co_await asio::this_coro::executor;
  // The link's reader first: every request waits on it.
  l.client.emplace(*l.link);
  l.client->keep_on_loss(ctx_.cfg.postcopy.recover_timeout.count() > 0);
  l.link_ran.start(ex, keep_page_link(), "the page link");
  auto held = co_await offload(ctx_.pool, [&images] { return pages::lazy_runs(images); });
  if (!held) co_return std::unexpected(held.error().context("the images' pagemaps"));
  l.order.emplace(*held);
  if (method_ == pb::HYBRID) {
    const auto last = rounds_->previous_dir();
    if (last.empty()) co_return fail(errc::protocol, "a hybrid without a warm-up round");
    auto base = co_await offload(ctx_.pool, [&last] { return pages::image_page_server::open(last); });
    if (!base) co_return std::unexpected(base.error().context("the last warm-up round"));
    l.base.emplace(std::move(*base));
    l.pull.base = {&*l.base, &ctx_.pool};
  }
  l.remote.emplace(*l.client, *l.order, ctx_.cfg.timeouts.io, l.pull.base);
  l.store.emplace(*l.remote);
  l.pulled.start(ex, pages::pull_pages(*l.client, *l.order, *l.store, l.pull, l.stop_pull),
                 "the background pull");
  if (auto ok = co_await start_lazy_pages(images); !ok) co_return std::unexpected(ok.error());
  l.served.start(ex, pages::serve_lazy_pages(l.lazy_ours, *l.store, ctx_.cfg.timeouts.io), "answering lazy-pages");
  const runtime::restore_request req{.bundle = bundle_, .image_dir = images, .work_dir = dir_ / "work",
                                     .lazy_pages = true};
  auto restored = co_await rt_->restore(container_, req);
  l.restored_at = stopwatch::clock::now();
  // A restore that failed because the pages stopped coming says why they did.
  if (!restored && l.client->failed())
    co_return std::unexpected(restored.error().context("the page link failed: " + l.client->failed()->message));
  co_return restored;
}

// The link's reader, over every link the source opens: a lost one leaves
// the requests waiting (lazy-pages, and so the restored process, waits on
// them) until the source opens the next, which they go out on again, or
// until postcopy.recover_timeout_ms is over; then they fail, and with them
// the transfer.
awaitable<result<void>> destination_session::keep_page_link() {
  auto& l = *lazy_;
  auto& client = *l.client;
  const auto window = ctx_.cfg.postcopy.recover_timeout;
  for (;;) {
    auto ran = co_await client.run(ctx_.cfg.timeouts.io);
    if (!ran) co_return std::unexpected(ran.error());
    if (!ran->lost) co_return result<void>{};
    const error lost = *ran->lost;
    co_await client.suspend();  // the old channel is not used any more
    l.claim.drop_link();
    l.link = nullptr;
    if (l.ending || cancelled_) {
      client.give_up(lost);
      co_return std::unexpected(lost);
    }
    log::warn(*logger(), id_, phase::postcopy, "{}: the process waits on its pages while {} connects again (up to {} ms)",
              lost.message, stats_.source, window.count());
    const auto lost_at = stopwatch::clock::now();
    auto next = co_await l.claim.arrival(window);
    if (!next) {
      const error why = lost.context(next.error().code == errc::timeout
                                         ? "the page link did not come back within " + std::to_string(window.count()) + " ms"
                                         : next.error().message);
      client.give_up(why);
      co_return std::unexpected(why);
    }
    l.link = *next;
    ++stats_.link_recoveries;
    stats_.link_down_ms += stopwatch::between(lost_at, stopwatch::clock::now());
    log::info(*logger(), id_, phase::postcopy, "the page link is back after {:.0f} ms: asking again what it left unanswered",
              stopwatch::between(lost_at, stopwatch::clock::now()));
    co_await client.resume(**next);
  }
}

// Nothing comes on the session's channel while the pages do, until the
// source has PagesEnd and sends Commit. An Abort means no page link comes
// back: the transfer ends now rather than when the recovery window is over.
// The channel's end means the source's daemon died, and with it the dump
// serving the pages; a daemon that restarts within the window finds its
// frozen copy, takes the migration up again on a new channel and serves
// the pages again on a new link (source_resume.cpp). Only without one does
// the transfer end.
awaitable<result<void>> destination_session::listen_to_source() {
  auto& l = *lazy_;
  for (;;) {
    auto f = co_await ch_->recv(std::chrono::hours(24));
    if (!f && l.resumable && !l.ending && !cancelled_) {
      auto back = co_await source_back(f.error());
      if (back) {
        ch_ = *back;
        continue;
      }
      f = std::unexpected(back.error());
    }
    const bool over = !f || f->msg.has_abort();
    l.heard = std::move(f);
    l.heard_wake.cancel();
    l.comeback.stop();  // it came, or it will not
    if (l.ending) co_return result<void>{};
    l.claim.stop();  // whatever came, the source opens no further link
    if (over && l.link) l.link->close();
    co_return result<void>{};
  }
}

// The source's channel ended (`lost`) during post-copy: its restarted
// daemon's SessionResume, within postcopy.recover_timeout_ms, or an error.
awaitable<result<transport::channel*>> destination_session::source_back(const error& lost) {
  auto& l = *lazy_;
  const auto window = ctx_.cfg.postcopy.recover_timeout;
  log::warn(*logger(), id_, phase::postcopy, "{}: the process waits on its pages for up to {} ms, should {} come back",
            lost.message, window.count(), stats_.source);
  const auto lost_at = stopwatch::clock::now();
  // A resumed channel that ended goes back to its handler; until the next
  // one, the session's is the first, which lives as long as the session.
  ch_ = origin_;
  l.comeback.drop_link();
  auto back = co_await l.comeback.arrival(window);
  if (!back)
    co_return std::unexpected(lost.context(back.error().code == errc::timeout
                                               ? stats_.source + " did not come back within " +
                                                     std::to_string(window.count()) + " ms"
                                               : back.error().message));
  log::info(*logger(), id_, phase::postcopy, "{} took the migration up again after {:.0f} ms", stats_.source,
            stopwatch::between(lost_at, stopwatch::clock::now()));
  co_return *back;
}

// The frame listen_to_source() read, or reads within `timeout`, judged as
// next() judges what it reads.
awaitable<result<transport::frame>> destination_session::heard_after_postcopy(
    std::span<const pb::Envelope::BodyCase> allowed, std::chrono::milliseconds timeout) {
  auto& l = *lazy_;
  if (!l.heard) {
    l.heard_wake.expires_after(timeout);
    boost::system::error_code ec;
    co_await l.heard_wake.async_wait(asio::redirect_error(use_awaitable, ec));
  }
  if (!l.heard) {
    ch_->cancel();
    l.comeback.stop();
    co_await l.listening.wait();
    co_return fail(errc::timeout, "nothing from " + stats_.source + " within " + std::to_string(timeout.count()) + " ms");
  }
  if (cancelled_) co_return fail(errc::cancelled, *cancelled_);
  co_return co_await judge(*l.heard, allowed);
}

// `criu lazy-pages`, its page source one end of a socketpair, and the
// socket it listens on for the restore in the work directory.
awaitable<result<void>> destination_session::start_lazy_pages(const std::filesystem::path& images) {
  auto& l = *lazy_;
  const auto work = dir_ / "work";
  asio::local::connect_pair(l.lazy_ours, l.lazy_theirs);
  l.lazy_argv = criu::lazy_pages_command(ctx_.cfg.criu.binary, images, work, lazy_pages_fd);
  // It lives until every page is in: as long as a restore, then the transfer.
  l.lazy_options = process::options{.timeout = ctx_.cfg.timeouts.restore + std::chrono::hours(1),
                                    .pass_fds = {{l.lazy_theirs.native_handle(), lazy_pages_fd}}};
  l.lazy_pages.start(co_await asio::this_coro::executor, process::run(l.lazy_argv, l.lazy_options),
                     "criu lazy-pages");
  // It is ready once its socket is there (it has no status descriptor).
  const auto socket = work / std::string(criu::lazy_pages_socket);
  asio::steady_timer tick(co_await asio::this_coro::executor);
  const auto until = std::chrono::steady_clock::now() + ctx_.cfg.timeouts.io;
  for (;;) {
    std::error_code ec;
    if (std::filesystem::exists(socket, ec)) break;
    if (l.lazy_pages.done()) {
      auto r = co_await l.lazy_pages.wait();
      co_return fail(errc::criu, "criu lazy-pages ended before it listened: " +
                                     (r ? r->summary() : r.error().message) + " (see " + (work / "lazy-pages.log").string() + ")");
    }
    if (std::chrono::steady_clock::now() > until)
      co_return fail(errc::timeout, "criu lazy-pages did not listen within " +
                                        std::to_string(ctx_.cfg.timeouts.io.count()) + " ms");
    tick.expires_after(std::chrono::milliseconds(10));
    co_await tick.async_wait(use_awaitable);
  }
  l.lazy_theirs.close();  // lazy-pages holds its own copy
  co_return result<void>{};
}

// The process runs here and answered its probe; its memory is still
// arriving. Once lazy-pages has every page (it ends its conversation), the
// pull stops, lazy-pages exits, and PagesEnd tells the source how it went.
awaitable<result<void>> destination_session::receive_pages_to_the_end() {
  auto& l = *lazy_;
  enter(state::postcopy, "the memory follows from " + stats_.source);
  auto ex = co_await asio::this_coro::executor;
  if (ctx_.resumes && ctx_.cfg.postcopy.recover_timeout.count() > 0) {
    auto comeback = ctx_.resumes->expect(ex, id_, stats_.source);
    if (!comeback) co_return std::unexpected(comeback.error());
    l.comeback = std::move(*comeback);
    l.resumable = true;
  }
  l.listening.start(ex, listen_to_source(), "listening to the source");
  co_await fault_point::reach(id_, "dest.postcopy");
  auto served = co_await l.served.wait();
  l.stop_pull = true;
  auto pulled = co_await l.pulled.wait();
  // Pages that stopped because the source gave up or went away say so (an
  // Abort is answered).
  if (!served && l.heard) {
    auto said = co_await judge(*l.heard, {});
    if (!said) co_return std::unexpected(said.error().context("during post-copy"));
  }
  if (!served) co_return std::unexpected(served.error().context("answering lazy-pages"));
  if (!pulled) co_return std::unexpected(pulled.error().context("the background pull"));
  auto lazy = co_await l.lazy_pages.wait();
  if (!lazy) co_return std::unexpected(lazy.error().context("criu lazy-pages"));
  if (!lazy->ok())
    co_return fail(errc::criu, "criu lazy-pages: " + lazy->summary() + " (see " +
                                   (dir_ / "work" / "lazy-pages.log").string() + ")");
  const auto st = l.store->stats();
  pb::PagesEnd summary;
  summary.set_postcopy_ms(stopwatch::between(l.restored_at, stopwatch::clock::now()));
  summary.set_pages_faulted(st.fetched_pages);
  summary.set_pages_pulled(st.pushed_pages);
  summary.set_pages_wasted(st.stale_pushes);
  summary.set_faults(st.faults);
  summary.set_fault_p50_ms(st.fault_latency.p50_ms);
  summary.set_fault_p99_ms(st.fault_latency.p99_ms);
  summary.set_fault_max_ms(st.fault_latency.max_ms);
  summary.set_link_bytes(l.client->page_bytes());
  summary.set_pages_unchanged(l.client->unchanged_pages());
  auto ended = co_await l.client->finish(summary, ctx_.cfg.timeouts.io);
  if (!ended) {
    // Every page is here; whether the source heard so, its Commit or Abort
    // on the session's channel tells.
    log::warn(*logger(), id_, phase::postcopy, "end of the page transfer: {}; every page is here, the source decides",
              ended.error().message);
    l.ending = true;
    l.claim.stop();
    if (l.link) l.link->close();
  }
  auto ran = co_await l.link_ran.wait();
  if (ended && !ran) co_return std::unexpected(ran.error().context("page link"));
  stats_.postcopy = summary;
  log::info(*logger(), id_, phase::postcopy, "every page here {:.0f} ms after the restore: {} faulted, {} pulled, {} unchanged since the last round",
            summary.postcopy_ms(), summary.pages_faulted(), summary.pages_pulled(), summary.pages_unchanged());
  co_return result<void>{};
}

// Whatever runs of the page transfer ends, and is waited for, before its
// objects go: lazy-pages loses its page source, the pull stops, the link
// closes and goes back to its connection. lazy-pages itself is waited for
// once the restored copy is gone (lazy_pages_ended()): a process that
// still runs may keep it waiting.
awaitable<void> destination_session::end_page_transfer() {
  if (!lazy_) co_return;
  auto& l = *lazy_;
  l.stop_pull = true;
  l.ending = true;
  l.claim.stop();
  l.comeback.stop();
  boost::system::error_code ignored;
  l.lazy_ours.close(ignored);
  l.lazy_theirs.close(ignored);
  if (l.link) l.link->close();
  if (l.served.started()) co_await l.served.wait();
  if (l.pulled.started()) co_await l.pulled.wait();
  if (l.link_ran.started()) co_await l.link_ran.wait();
  if (l.listening.started() && !l.listening.done()) {
    ch_->cancel();  // (a last message may still go: the Abort)
    co_await l.listening.wait();
  }
  l.link = nullptr;
  l.claim.release();
}

awaitable<void> destination_session::lazy_pages_ended() {
  if (!lazy_ || !lazy_->lazy_pages.started()) co_return;
  auto r = co_await lazy_->lazy_pages.wait();
  if (!r) log::warn(*logger(), id_, stats_.phase, "criu lazy-pages: {}", r.error().message);
}

}  // namespace migrated::migration
