// The container at the source while it is being moved, and the one place
// that decides what becomes of it. Every method and every failure path —
// an error, an abort, a daemon stopping, a session that throws — ends in
// this object, so "nothing is lost" is checked in one file:
//
//   running    untouched (perhaps throttled by auto-converge, never left so)
//   stopped    checkpointed: frozen here, whole, its images taken (cold,
//              precopy); or stopped (the filesystem methods), with the
//              runtime's restart policy held so that Docker does not start
//              a fresh copy on its own
//   committed  the destination acknowledged Commit: it owns the container,
//              and the copy here is only released
//   restored   brought back here after a failure (rolled back)
//   lost       could not be brought back: its images stay where they are
//
// roll_back() is the only code that brings a container back. A checkpointed
// container was never killed: the final dump left it frozen, so rolling
// back is a thaw — it cannot fail for the reason the restore at the
// destination failed, keeps its sockets and costs milliseconds. Only when
// the thaw fails are the images restored here. A container a filesystem
// method stopped is started fresh, its restart policy given back.
#pragma once

#include <filesystem>
#include <string>

#include "background.hpp"
#include "common/unique_fd.hpp"
#include "migration/stopwatch.hpp"
#include "runtime/runtime.hpp"

namespace migrated::migration {

class source_copy {
 public:
  enum class state { running, stopped, committed, restored, lost };

  source_copy(runtime::runtime& rt, runtime::container_info container, std::string migration_id);
  // A copy that a rollback could not bring back (recovery.hpp): only its
  // images are left, and roll_back() tries them again.
  static source_copy lost_one(runtime::runtime& rt, runtime::container_info container, std::string migration_id,
                              std::filesystem::path images);

  // A copy a journal record names after the daemon restarted
  // (journal_recovery.hpp): stopped here (at about `stopped_at`), frozen or
  // not, with its images — without the memory when a lazy dump took them
  // (`images_whole` false). Such a copy, frozen, may be dumped lazily
  // again (checkpoint_lazily) to serve the same memory once more.
  static source_copy recovered(runtime::runtime& rt, runtime::container_info container, std::string migration_id,
                               std::filesystem::path images, bool frozen, bool images_whole = true,
                               stopwatch::clock::time_point stopped_at = {});

  state current() const { return state_; }
  // Frozen here, whole: a thaw brings it back.
  bool frozen() const { return frozen_; }
  const runtime::container_info& container() const { return container_; }
  runtime::runtime& rt() const { return rt_; }
  // When it stopped (the start of the final checkpoint or of the stop).
  stopwatch::clock::time_point stopped_at() const { return stopped_at_; }
  // The final checkpoint's images (empty when it was stopped without one).
  const std::filesystem::path& images() const { return images_; }

  // Auto-converge: caps the running copy at (100 - pct)% of the CPUs it
  // used; 0 lifts the cap. unthrottle_for_dump() lifts it for one dump
  // (CRIU's parasite runs inside the container's cgroup) and keeps the
  // percentage for throttle(throttle_pct()) afterwards.
  result<void> throttle(std::uint32_t pct, double cpus_used);
  void unthrottle_for_dump();
  std::uint32_t throttle_pct() const { return throttle_pct_; }

  // The final dump locks the network namespace with nftables (both ends'
  // CRIU can: Capabilities.nftables_lock) rather than iptables.
  void lock_network_with_nftables(bool yes) { nftables_lock_ = yes; }

  // running → stopped, its state in `images` (the container freezes here:
  // downtime begins; it stays frozen). A dump that failed half-way may still
  // have stopped it: the runtime is asked, and the state says what it found.
  awaitable<result<void>> checkpoint(const std::filesystem::path& images, const std::filesystem::path& work);
  // Post-copy's final dump: running → stopped as checkpoint(), but the
  // private memory is not written (a recovered copy frozen by an earlier
  // lazy dump: stopped → stopped, dumped again, frozen whatever happens).
  // The memory stays in the frozen container, and
  // the dump goes on in the background serving it on `page_socket` (one
  // end of a socketpair; the caller keeps the other for its
  // pages/dump_page_client). Returns once the images are complete and the
  // pages can be asked for, within `ready_within`. The dump ends when that
  // client closes the transfer or hangs up: lazy_dump_ended(). Until then
  // the frozen container is the only place the memory is — the images
  // alone cannot bring it back, so a rollback that cannot thaw it loses it.
  awaitable<result<void>> checkpoint_lazily(const std::filesystem::path& images, const std::filesystem::path& work,
                                            int page_socket, std::chrono::milliseconds ready_within);
  // The lazy dump's end (at once when there is none). A dump that failed
  // gave the container back to its processes: the state says so.
  awaitable<result<void>> lazy_dump_ended();
  // running → stopped without process state (diff, full).
  awaitable<result<void>> stop();
  // stopped or running → committed. From here on nothing rolls back.
  void commit();
  // committed: the copy here goes (stopped first if it still runs: replay).
  // A failure loses nothing — a stopped container is left behind — and is logged.
  awaitable<void> release();
  // The migration failed. stopped → restored (or lost); running → the
  // throttle lifted; committed → nothing; lost → its images tried again.
  // `work` holds the runtime's logs.
  awaitable<result<void>> roll_back(const std::filesystem::path& work);

 private:
  awaitable<result<void>> hold_restarts();
  awaitable<void> after_failed_stop();
  void lift_throttle();
  static awaitable<result<void>> run_lazy_dump(runtime::runtime& rt, const std::string& id,
                                               const runtime::checkpoint_request& req, unique_fd& ready_write);

  runtime::runtime& rt_;
  runtime::container_info container_;
  std::string id_;  // the migration's, for the log
  state state_ = state::running;
  bool held_ = false;
  bool frozen_ = false;             // frozen here, whole: a thaw brings it back
  bool running_at_commit_ = false;
  std::uint32_t throttle_pct_ = 0;
  double cpus_used_ = 0;
  std::filesystem::path images_;
  bool images_whole_ = true;        // false after a lazy dump: the memory is in the frozen container only
  bool nftables_lock_ = false;
  stopwatch::clock::time_point stopped_at_{};
  // The lazy dump, its request and its status pipe's write end, for as long as it runs.
  runtime::checkpoint_request lazy_request_;
  unique_fd lazy_ready_;
  background<void> lazy_dump_;
};

std::string_view name(source_copy::state s);

}  // namespace migrated::migration
