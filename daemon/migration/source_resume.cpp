// A post-copy taken up again after the source's daemon restarted: its
// journal record says stopped, for a lazy method, and the container is
// still frozen here. The daemon that died took its lazy dump with it, but
// not the memory: the copy is frozen, so a second lazy dump holds the same
// pages. The destination, its process waiting on its faults, waits for
// this source for its postcopy.recover_timeout_ms (destination_postcopy.cpp);
// it takes this session's new channel (SessionResume) and the new page
// link, asks again for what it still lacks, and the migration ends as any
// post-copy does, with PagesEnd and Commit. A destination that no longer
// waits says so, and the copy here is thawed as on every failure; one that
// cannot be reached within the window has given up by the end of it too.
// See docs/design.md, "After a crash".
#include "common/log.hpp"
#include "common/names.hpp"
#include "migration/destination.hpp"
#include "migration/source_session.hpp"

namespace migrated::migration {
namespace {

std::shared_ptr<spdlog::logger> logger() { return log::get("migration"); }

pb::MigrateRequest request_of(const journal::entry& e) {
  pb::MigrateRequest r;
  r.set_container(e.container);
  r.set_destination(e.peer);
  r.set_method(parse_method(e.method));
  r.set_runtime(e.runtime);
  return r;
}

// When a record written at `unix_ms` was written, on the session's clock.
stopwatch::clock::time_point on_steady_clock(std::int64_t unix_ms) {
  const auto ago = std::chrono::system_clock::now() -
                   std::chrono::system_clock::time_point(std::chrono::milliseconds(unix_ms));
  return stopwatch::clock::now() - std::chrono::duration_cast<stopwatch::clock::duration>(ago);
}

}  // namespace

source_session::source_session(node_context& ctx, const journal::entry& resumed)
    : source_session(ctx, request_of(resumed), resumed.migration_id, nullptr) {
  resumed_ = resumed;
}

awaitable<result<void>> source_session::resume() {
  const journal::entry& e = *resumed_;
  enter(state::accepted, "taking its post-copy to " + e.peer + " up again after a restart");
  runtime::runtime* rt = ctx_.runtimes.find(e.runtime);
  if (!rt) co_return fail(errc::unsupported, "runtime " + e.runtime + " is not enabled");
  auto info = co_await rt->inspect(e.container);
  if (!info) co_return std::unexpected(info.error());
  stats_.runtime = e.runtime;
  journaled_ = true;
  copy_.emplace(source_copy::recovered(*rt, *info, id_, e.images, info->status == "paused", false,
                                       on_steady_clock(e.updated_unix_ms)));
  if (!copy_->frozen())
    co_return fail(errc::runtime, e.container + " is " + info->status + ", no longer frozen: its memory is gone");
  if (auto ok = co_await rejoin(); !ok) co_return ok;
  const stopwatch dump;
  if (auto ok = co_await checkpoint_lazily(); !ok) co_return ok;
  stats_.checkpoint_ms = dump.ms();
  if (auto ok = co_await open_page_link(); !ok) co_return ok;
  if (auto ok = co_await serve_pages_to_the_end(); !ok) co_return ok;
  if (auto ok = co_await commit(); !ok) co_return ok;
  co_await release_here();
  co_return result<void>{};
}

// The destination, within postcopy.recover_timeout_ms: SessionResume on a
// connection of its own, this session's channel from then on.
awaitable<result<void>> source_session::rejoin() {
  enter(state::connecting, req_.destination());
  const auto window = ctx_.cfg.postcopy.recover_timeout;
  const auto until = std::chrono::steady_clock::now() + window;
  asio::steady_timer pause(co_await asio::this_coro::executor);
  for (int attempt = 1;; ++attempt) {
    if (auto ok = check_cancel(); !ok) co_return ok;
    result<void> joined;
    auto ch = co_await connect_destination(ctx_, req_.destination());
    if (ch) {
      peer_.emplace(std::move(*ch));
      if (cancelled_) peer_->close();
      stats_.destination = peer_->peer.node();
      pb::Envelope env;
      env.mutable_session_resume()->set_migration_id(id_);
      joined = co_await call(env, "resume");
      if (joined) {
        log::info(*logger(), id_, phase::connect, "{} waited for it: serving its pages again (attempt {})",
                  stats_.destination, attempt);
        co_return joined;
      }
      peer_.reset();
    } else {
      joined = std::unexpected(ch.error());
    }
    const error why = joined.error();
    // It answered, or no daemon listens there (one that died took
    // lazy-pages, and so the restored process, with it): nothing waits.
    if (why.code == errc::not_found || why.code == errc::denied || why.code == errc::cancelled ||
        why.code == errc::refused || why.code == errc::unsupported)
      co_return fail(errc::peer, "the post-copy cannot go on after the restart: " + why.message);
    if (std::chrono::steady_clock::now() >= until)
      co_return fail(errc::peer, req_.destination() + " could not be reached within postcopy.recover_timeout_ms (" +
                                     std::to_string(window.count()) + " ms), so it has given its copy up: " +
                                     why.message);
    pause.expires_after(std::min<std::chrono::steady_clock::duration>(std::chrono::milliseconds(500),
                                                                      until - std::chrono::steady_clock::now()));
    boost::system::error_code ec;
    co_await pause.async_wait(asio::redirect_error(use_awaitable, ec));
  }
}

}  // namespace migrated::migration
