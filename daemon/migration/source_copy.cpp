// The source's copy of a container during a migration (see source_copy.hpp).
#include "migration/source_copy.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cstring>

#include "common/fault.hpp"
#include "common/log.hpp"
#include "common/names.hpp"
#include "process/process.hpp"

namespace migrated::migration {
namespace {

std::shared_ptr<spdlog::logger> logger() { return log::get("migration"); }

}  // namespace

std::string_view name(source_copy::state s) {
  switch (s) {
    case source_copy::state::running: return "running";
    case source_copy::state::stopped: return "stopped";
    case source_copy::state::committed: return "committed";
    case source_copy::state::restored: return "restored";
    case source_copy::state::lost: return "lost";
  }
  return "unknown";
}

source_copy::source_copy(runtime::runtime& rt, runtime::container_info container, std::string migration_id)
    : rt_(rt), container_(std::move(container)), id_(std::move(migration_id)) {}

source_copy source_copy::lost_one(runtime::runtime& rt, runtime::container_info container, std::string migration_id,
                                  std::filesystem::path images) {
  source_copy c(rt, std::move(container), std::move(migration_id));
  c.state_ = state::lost;
  c.images_ = std::move(images);
  return c;
}

source_copy source_copy::recovered(runtime::runtime& rt, runtime::container_info container, std::string migration_id,
                                   std::filesystem::path images, bool frozen, bool images_whole,
                                   stopwatch::clock::time_point stopped_at) {
  source_copy c(rt, std::move(container), std::move(migration_id));
  c.state_ = state::stopped;
  c.frozen_ = frozen;
  c.images_ = std::move(images);
  c.images_whole_ = images_whole;
  c.stopped_at_ = stopped_at;
  return c;
}

result<void> source_copy::throttle(std::uint32_t pct, double cpus_used) {
  if (state_ != state::running) return fail(errc::internal, "throttle: the container no longer runs here");
  if (pct) cpus_used_ = cpus_used;
  if (auto ok = rt_.throttle(container_, pct, cpus_used_); !ok) return ok;
  throttle_pct_ = pct;
  return {};
}

void source_copy::unthrottle_for_dump() {
  if (!throttle_pct_) return;
  if (auto ok = rt_.throttle(container_, 0, cpus_used_); !ok)
    log::warn(*logger(), id_, phase::warmup, "cannot lift the throttle for a dump: {}", ok.error().message);
}

void source_copy::lift_throttle() {
  if (!throttle_pct_) return;
  if (auto ok = rt_.throttle(container_, 0, cpus_used_); !ok)
    log::warn(*logger(), id_, phase::rollback, "cannot lift the throttle: {}", ok.error().message);
  throttle_pct_ = 0;
}

// Docker would start a fresh copy the moment the final dump (or a stop)
// ends the container: its restart policy is held until it is gone for good.
awaitable<result<void>> source_copy::hold_restarts() {
  if (auto held = co_await rt_.hold_restarts(container_, true); !held) co_return held;
  held_ = true;
  co_return result<void>{};
}

// (No restart policy to hold: a frozen container does not exit.)
awaitable<result<void>> source_copy::checkpoint(const std::filesystem::path& images,
                                                const std::filesystem::path& work) {
  if (state_ != state::running) co_return fail(errc::internal, "checkpoint: the container no longer runs here");
  lift_throttle();  // the final dump runs at full speed
  images_ = images;
  stopped_at_ = stopwatch::clock::now();
  const runtime::checkpoint_request req{
      .image_dir = images,
      .work_dir = work,
      .keep_frozen = true,
      .carry_netns = runtime::carries_netns(container_),
      .nftables_lock = nftables_lock_,
      .bundle = container_.bundle};
  auto ok = co_await rt_.checkpoint(container_.id, req);
  if (ok) {
    state_ = state::stopped;
    frozen_ = true;
    co_return result<void>{};
  }
  co_await after_failed_stop();  // frozen still: a thaw is the way back
  co_return ok;
}

// The dump runs until its pages are gone; its status pipe closes with it,
// so a dump that fails before it is ready ends the wait for that at once.
awaitable<result<void>> source_copy::run_lazy_dump(runtime::runtime& rt, const std::string& id,
                                                   const runtime::checkpoint_request& req, unique_fd& ready_write) {
  auto ok = co_await rt.checkpoint(id, req);
  ready_write.reset();
  co_return ok;
}

awaitable<result<void>> source_copy::checkpoint_lazily(const std::filesystem::path& images,
                                                       const std::filesystem::path& work, int page_socket,
                                                       std::chrono::milliseconds ready_within) {
  // A copy frozen by a lazy dump that ended with the daemon that ran it is
  // dumped again: its memory is what it was at the freeze.
  const bool again = state_ == state::stopped && frozen_ && !images_whole_;
  if (state_ != state::running && !again)
    co_return fail(errc::internal, "checkpoint: the container no longer runs here");
  if (lazy_dump_.started()) co_return fail(errc::internal, "checkpoint: a lazy dump was taken already");
  int status[2];
  if (::pipe2(status, O_CLOEXEC) != 0) co_return fail(errc::io, std::string("pipe: ") + std::strerror(errno));
  lazy_ready_ = unique_fd(status[1]);
  lift_throttle();
  images_ = images;
  images_whole_ = false;
  lazy_request_ = runtime::checkpoint_request{.image_dir = images,
                                              .work_dir = work,
                                              .keep_frozen = true,
                                              .already_frozen = again,
                                              .carry_netns = runtime::carries_netns(container_),
                                              .nftables_lock = nftables_lock_,
                                              .bundle = container_.bundle,
                                              .page_socket = page_socket,
                                              .ready_fd = lazy_ready_.get()};
  if (!again) stopped_at_ = stopwatch::clock::now();
  lazy_dump_.start(co_await asio::this_coro::executor, run_lazy_dump(rt_, container_.id, lazy_request_, lazy_ready_),
                   "the lazy dump");
  auto ready = co_await process::await_status(status[0], ready_within);
  // Frozen, whole; if the dump ended first (its own error says why) or
  // hung, the caller hangs up the page socket, and lazy_dump_ended() finds
  // what became of it.
  state_ = state::stopped;
  frozen_ = true;
  if (ready) co_return result<void>{};
  if (lazy_dump_.done()) {
    auto ended = co_await lazy_dump_ended();
    if (!ended) co_return ended;
  }
  co_return std::unexpected(ready.error().context("the lazy dump of " + container_.id));
}

awaitable<result<void>> source_copy::lazy_dump_ended() {
  if (!lazy_dump_.started()) co_return result<void>{};
  auto ended = co_await lazy_dump_.wait();
  if (ended || state_ != state::stopped) co_return ended;
  // runc gives a container whose dump failed back to its processes.
  auto still = co_await rt_.inspect(container_.id);
  if (still && still->status == "running") {
    state_ = state::running;
    frozen_ = false;
  } else {
    frozen_ = still && still->status == "paused";
  }
  co_return ended;
}

awaitable<result<void>> source_copy::stop() {
  if (state_ != state::running) co_return fail(errc::internal, "stop: the container no longer runs here");
  if (auto held = co_await hold_restarts(); !held) co_return held;
  lift_throttle();
  images_.clear();
  stopped_at_ = stopwatch::clock::now();
  auto ok = co_await rt_.stop(container_.id);
  if (ok) {
    state_ = state::stopped;
    co_return result<void>{};
  }
  co_await after_failed_stop();
  co_return ok;
}

// A dump or stop that failed half-way may have ended the container (or,
// a final dump, left it frozen): ask.
awaitable<void> source_copy::after_failed_stop() {
  auto still = co_await rt_.inspect(container_.id);
  if (still && still->status == "running") co_return;
  state_ = state::stopped;
  frozen_ = still && still->status == "paused";
  log::warn(*logger(), id_, phase::checkpoint, "{} stopped although its {} failed ({})", container_.id,
            images_.empty() ? "stop" : "checkpoint",
            still ? "it is " + still->status : still.error().message);
}

void source_copy::commit() {
  if (state_ != state::running && state_ != state::stopped) return;
  running_at_commit_ = state_ == state::running;
  state_ = state::committed;
}

awaitable<void> source_copy::release() {
  if (state_ != state::committed) co_return;
  if (auto ended = co_await lazy_dump_ended(); !ended)  // its client closed the transfer before Commit
    log::warn(*logger(), id_, phase::release, "{}", ended.error().message);
  if (running_at_commit_) {  // replay: it served until the destination was ready
    // A stop that fails (or a bug that throws) must not keep a second copy
    // running: the removal below kills whatever is left.
    try {
      co_await hold_restarts();  // a failure only means the policy stays as it was
      if (auto ok = co_await rt_.stop(container_.id); !ok)
        log::warn(*logger(), id_, phase::release, "{}", ok.error().message);
    } catch (const std::exception& e) {
      log::error(*logger(), id_, phase::release, "stopping {}: {}", container_.id, e.what());
    }
  }
  if (auto ok = co_await rt_.remove(container_.id); !ok)
    log::warn(*logger(), id_, phase::release, "{} moved, but the copy here stays: {}", container_.id,
              ok.error().message);
  for (const auto& v : container_.volumes)
    log::info(*logger(), id_, phase::release, "volume {} stays here too ({})", v.name, v.path.string());
}

awaitable<result<void>> source_copy::roll_back(const std::filesystem::path& work) {
  if (state_ == state::running) {
    lift_throttle();
    co_return result<void>{};
  }
  if (state_ != state::stopped && state_ != state::lost) co_return result<void>{};
  // A lazy dump is over once its page client hung up (the session did).
  if (auto ended = co_await lazy_dump_ended(); !ended)
    log::warn(*logger(), id_, phase::rollback, "{}", ended.error().message);
  if (state_ == state::running) {
    log::warn(*logger(), id_, phase::rollback, "{} runs on here (its dump gave it back)", container_.id);
    state_ = state::restored;
    co_return result<void>{};
  }
  // (Fault point for the tests of a rollback that fails: neither a thaw nor
  // the images bring it back.)
  const bool fault = fault_injected("source.rollback.fail");
  if (frozen_) {
    result<void> thawed = fail(errc::runtime, "fault point source.rollback.fail");
    if (!fault) thawed = co_await rt_.thaw(container_.id);
    if (thawed) {
      state_ = state::restored;
      frozen_ = false;
      log::warn(*logger(), id_, phase::rollback, "{} runs on here (thawed)", container_.id);
      co_return result<void>{};
    }
    // A copy that will not thaw is no copy: end it, bring the images back.
    log::error(*logger(), id_, phase::rollback, "{}; restoring its images instead", thawed.error().message);
    if (auto gone = co_await rt_.remove(container_.id); !gone)
      log::error(*logger(), id_, phase::rollback, "{}", gone.error().message);
    frozen_ = false;
  }
  result<runtime::container_info> back = std::unexpected(error{});
  if (fault) {
    back = fail(errc::runtime, "fault point source.rollback.fail");
  } else if (!images_whole_) {
    back = fail(errc::runtime, "its memory was only in the frozen copy (post-copy), and the images lack it");
  } else if (!images_.empty()) {
    const runtime::restore_request req{container_.bundle, images_, work};
    back = co_await rt_.restore(container_.id, req);
  } else {  // no process state was taken: start it again
    back = co_await rt_.start(container_.id, container_.bundle, work);
  }
  if (!back) {
    state_ = state::lost;
    co_return std::unexpected(back.error());
  }
  state_ = state::restored;
  container_.pid = back->pid;
  if (held_) {
    if (auto given = co_await rt_.hold_restarts(container_, false); !given)
      log::warn(*logger(), id_, phase::rollback, "{}", given.error().message);
    held_ = false;
  }
  log::warn(*logger(), id_, phase::rollback, "{} runs here again (pid {})", container_.id, back->pid);
  co_return result<void>{};
}

}  // namespace migrated::migration
