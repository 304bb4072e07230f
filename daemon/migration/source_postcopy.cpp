// Post-copy at the source: the process moves first, its memory after. The
// final dump leaves the container's private memory in the frozen copy here
// and serves it (runc_runtime's lazy checkpoint, pages/dump_page_client);
// the destination asks for it on a page link of its own
// (transport/page_link.hpp), faults first. Until the destination says it
// holds every page (PagesEnd), the frozen copy here is the only place that
// memory is, so every failure before that ends in a thaw: the container
// runs on here from the moment it froze. See docs/design.md, "Post-copy".
//
// A hybrid warms up first, as pre-copy does (source_warmup.cpp), and then
// goes on as post-copy: the destination asks for each page with the hash
// of its copy from the last round, and only the pages that changed since
// cross again (transport/page_link.hpp).
#include <boost/asio/local/connect_pair.hpp>

#include "common/log.hpp"
#include "common/names.hpp"
#include "migration/destination.hpp"
#include "migration/fault_point.hpp"
#include "migration/source_session.hpp"

namespace migrated::migration {
namespace {

std::shared_ptr<spdlog::logger> logger() { return log::get("migration"); }

using unix_socket = asio::local::stream_protocol::socket;

}  // namespace

awaitable<result<void>> source_session::move_memory_lazily() {
  if (auto ok = can_move_process(); !ok) co_return ok;
  if (auto ok = co_await pull(own_image); !ok) co_return ok;
  if (auto ok = co_await begin(); !ok) co_return ok;
  if (req_.method() == pb::HYBRID) {
    if (auto ok = co_await warm_up(); !ok) co_return ok;
  }
  co_return co_await stop_and_move_lazily();
}

// From the lazy final dump on: post-copy's and a hybrid's, and a pre-copy's
// whose rounds went on as a hybrid (source_warmup.cpp).
awaitable<result<void>> source_session::stop_and_move_lazily() {
  // The container stops: downtime begins. Its memory stays here.
  if (auto ok = co_await checkpoint_lazily(); !ok) co_return ok;
  enter(state::transferring, std::to_string(stats_.bytes_image) + " image bytes, memory to follow");
  if (auto ok = co_await send_final_round(); !ok) co_return ok;
  // The destination restores, asking for pages as the restore needs them.
  if (auto ok = co_await open_page_link(); !ok) co_return ok;
  enter(state::restoring);
  co_await fault_point::reach(id_, "source.restore");
  if (auto ok = co_await await_launch("restore"); !ok) co_return ok;
  stats_.downtime_ms = stopwatch::between(copy_->stopped_at(), stopwatch::clock::now());
  if (auto ok = co_await await_ready(); !ok) co_return ok;
  if (auto ok = co_await serve_pages_to_the_end(); !ok) co_return ok;
  if (auto ok = co_await commit(); !ok) co_return ok;
  co_await release_here();
  co_return result<void>{};
}

// The final dump, lazily: the images without the private memory, which
// stays in the frozen container and is served on a socketpair.
awaitable<result<void>> source_session::checkpoint_lazily() {
  if (auto ok = check_cancel(); !ok) co_return ok;
  enter(state::checkpointing, "the memory stays here until the destination asks for it");
  auto images = co_await offload(ctx_.pool, [this] { return next_lazy_dir(); });
  if (!images) co_return std::unexpected(images.error());
  // (A copy dumped again after a restart is stopped already, and its record
  // must keep saying so: the destination may run it, waiting on its pages.)
  if (copy_->current() != source_copy::state::stopped)
    if (auto ok = co_await note(journal::step::stopping, &*images); !ok) co_return ok;
  co_await fault_point::reach(id_, "source.stopping");
  if (auto ok = check_cancel(); !ok) co_return ok;
  auto ex = co_await asio::this_coro::executor;
  unix_socket ours(ex), theirs(ex);
  asio::local::connect_pair(ours, theirs);
  copy_->lock_network_with_nftables(both_lock_with_nftables());
  auto ok = co_await copy_->checkpoint_lazily(*images, lazy_dir_ / "work", theirs.native_handle(),
                                              ctx_.cfg.timeouts.checkpoint);
  theirs.close();  // runc and CRIU hold their own copy once the dump is ready
  stats_.checkpoint_ms = stopwatch::between(copy_->stopped_at(), stopwatch::clock::now());
  // The record that the copy here is frozen, its images these. It must be
  // on disk before the destination may run its copy, and every lazy restore
  // waits for the page link (open_page_link() waits for the record), so it
  // is written while the images travel: behind gigabytes of warm-up images
  // in the page cache its fsync took 240 ms, all of it downtime.
  if (copy_->current() == source_copy::state::stopped) {
    if (ok) note_meanwhile(journal::step::stopped, co_await asio::this_coro::executor);
    else (void)co_await note(journal::step::stopped);  // (the rollback that follows needs it; the dump's error tells)
  }
  if (!ok) co_return ok;  // (our end goes with this frame: the dump ends)
  final_images_ = *images;
  final_work_ = lazy_dir_ / "work";
  const auto dir = *images;
  auto held = co_await offload(ctx_.pool, [&dir] { return pages::lazy_runs(dir); });
  if (!held) co_return std::unexpected(held.error().context("the lazy dump's pagemaps"));
  dump_pages_.emplace(std::move(ours), std::move(*held), ctx_.cfg.timeouts.io);
  co_await fault_point::reach(id_, "source.checkpointed");
  stats_.bytes_image = co_await offload(ctx_.pool, [&dir] { return dir_bytes(dir); });
  co_return result<void>{};
}

// A second connection to the destination, named for this migration, on
// which the destination asks for pages and this side answers them from the
// dump, in the background until PagesEnd.
awaitable<result<void>> source_session::open_page_link() {
  if (auto ok = co_await noted(); !ok) co_return ok;  // the copy here is on record as stopped
  if (auto ok = co_await connect_page_link(); !ok) co_return ok;
  link_served_.start(co_await asio::this_coro::executor, keep_serving_pages(), "the page link");
  co_return result<void>{};
}

awaitable<result<void>> source_session::connect_page_link() {
  if (auto ok = check_cancel(); !ok) co_return ok;
  auto ch = co_await connect_destination(ctx_, req_.destination());
  if (!ch) co_return std::unexpected(ch.error().context("page link to " + req_.destination()));
  link_.emplace(std::move(*ch));
  if (cancelled_ || link_ending_) link_->close();
  pb::Envelope env;
  env.mutable_page_link_open()->set_migration_id(id_);
  if (auto sent = co_await link_->send(env); !sent) co_return std::unexpected(sent.error().context("page link"));
  auto r = co_await transport::expect_reply(*link_, "page link", ctx_.cfg.timeouts.io);
  if (!r) co_return std::unexpected(r.error());
  co_return with_context(transport::to_result(*r), "page link at " + stats_.destination);
}

// The pages, over every link the transfer needs: a lost one is opened
// again within postcopy.recover_timeout_ms, and serving goes on there.
awaitable<result<void>> source_session::keep_serving_pages() {
  for (;;) {
    auto served = co_await transport::serve_page_link(*link_, *dump_pages_, ctx_.cfg.timeouts.io, link_stats_);
    if (!served) co_return std::unexpected(served.error());
    if (!served->lost) co_return result<void>{};
    const error lost = *served->lost;
    if (auto ok = co_await recover_page_link(lost); !ok) co_return ok;
  }
}

// The link was lost (`why`): the frozen copy here keeps serving, and the
// destination, its process waiting on its faults, expects the next link.
// Connecting again until postcopy.recover_timeout_ms is over; then the
// transfer cannot go on, and the copy here is thawed as on every failure.
awaitable<result<void>> source_session::recover_page_link(const error& why) {
  const auto window = ctx_.cfg.postcopy.recover_timeout;
  if (auto ok = check_cancel(); !ok) co_return ok;
  if (link_ending_) co_return std::unexpected(why);
  if (window.count() == 0) co_return std::unexpected(why.context("postcopy.recover_timeout_ms is 0"));
  const auto lost_at = stopwatch::clock::now();
  const auto until = std::chrono::steady_clock::now() + window;
  log::warn(*logger(), id_, phase::postcopy, "{}: connecting again for up to {} ms", why.message, window.count());
  asio::steady_timer pause(co_await asio::this_coro::executor);
  error last = why;
  for (int attempt = 1;; ++attempt) {
    if (auto ok = check_cancel(); !ok) co_return ok;
    if (link_ending_) co_return std::unexpected(why);
    auto opened = co_await connect_page_link();
    if (opened) {
      const double down = stopwatch::between(lost_at, stopwatch::clock::now());
      ++stats_.link_recoveries;
      stats_.link_down_ms += down;
      log::info(*logger(), id_, phase::postcopy, "the page link is back after {} attempt(s), {:.0f} ms without it",
                attempt, down);
      co_return result<void>{};
    }
    last = opened.error();
    if (link_) link_->close();
    // Nothing waits there for another link: the destination gave up, its
    // daemon no longer knows the migration, or no daemon listens (the one
    // that died took lazy-pages, and so the restored process, with it).
    if (last.code == errc::not_found || last.code == errc::denied || last.code == errc::cancelled ||
        last.code == errc::refused)
      co_return fail(errc::peer, why.message + "; no page link can replace it (" + last.message + ")");
    if (std::chrono::steady_clock::now() >= until) break;
    pause.expires_after(std::min<std::chrono::steady_clock::duration>(std::chrono::milliseconds(500),
                                                                      until - std::chrono::steady_clock::now()));
    boost::system::error_code ec;
    co_await pause.async_wait(asio::redirect_error(use_awaitable, ec));
  }
  co_return fail(errc::peer, why.message + "; the page link did not come back within " + std::to_string(window.count()) +
                                 " ms (" + last.message + ")");
}

// The process runs at the destination and answers; its pages keep coming
// from here until the destination holds all of them and says so. Then the
// dump ends: the copy here keeps nothing the destination lacks.
awaitable<result<void>> source_session::serve_pages_to_the_end() {
  enter(state::postcopy, "serving the memory to " + stats_.destination);
  co_await fault_point::reach(id_, "source.postcopy");
  auto served = co_await link_served_.wait();
  if (!served) co_return std::unexpected(served.error().context("post-copy"));
  const auto& st = link_stats_;
  stats_.postcopy = st.end;
  log::info(*logger(), id_, phase::postcopy, "{} pages in {} requests ({} urgent), {} ms after the restore",
            st.pages, st.requests, st.urgent, st.end.postcopy_ms());
  if (auto closed = co_await dump_pages_->close(ctx_.cfg.timeouts.io); !closed)
    co_return std::unexpected(closed.error().context("end of the lazy dump"));
  co_return co_await copy_->lazy_dump_ended();
}

// A transfer that cannot go on: the dump's client hangs up (the dump ends,
// the container stays frozen for the thaw) and the link closes; both ends
// are waited for before their objects go.
awaitable<void> source_session::end_page_transfer() {
  link_ending_ = true;
  if (dump_pages_) dump_pages_->abandon();
  if (link_) link_->close();
  if (link_served_.started()) co_await link_served_.wait();
}

}  // namespace migrated::migration
