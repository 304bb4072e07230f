// The source side of one migration: one coroutine, run(), that reads top
// to bottom, with its state explicit (source_session::state):
//
//   queued → accepted → [auto: measuring] → connecting → then per family:
//
//   process state (cold, precopy), move_process_state():
//     pulling (bundle / layer while the container runs) → [precopy:
//     warming_up, rounds of dumps with --leave-running whose page deltas
//     stream until convergence.hpp says stop] → checkpointing (the
//     container stops: downtime begins) → transferring (filesystem changes,
//     then the final round) → restoring (at the destination: downtime ends)
//     → waiting_ready → committing; a precopy whose rounds would converge
//     only by throttling, or whose final round would outlast
//     precopy.final_transfer_ms, goes on as a hybrid after its warm-up
//     rounds when both nodes can (source_warmup.cpp, stop_and_move_lazily)
//
//   a post-copy taken up after a restart, resume() (source_resume.cpp):
//     accepted → connecting (SessionResume) → checkpointing (the frozen
//     copy dumped lazily again) → postcopy → committing
//
//   post-copy and hybrid, move_memory_lazily() (source_postcopy.cpp):
//     pulling → [hybrid: warming_up, as pre-copy, without throttling] →
//     checkpointing (lazily: the container stops, its private memory stays
//     in the frozen copy here) → transferring (filesystem changes, the
//     images without that memory) → restoring (the destination asks for
//     pages on a page link of their own, during the restore and after) →
//     waiting_ready → postcopy (until the destination holds every page) →
//     committing
//
//   filesystem (diff, full, replay), move_filesystem():
//     diff:   pulling → stopping → transferring (changes) → starting
//     full:   stopping → (Docker: commit an image) → pulling (that image /
//             the whole bundle) → starting
//     replay: pulling → starting (the replay hook runs there while this
//             copy still serves)
//     → waiting_ready → committing
//
// then releasing (the copy here goes) → done; or, on any failure,
// rolling_back → failed. What becomes of the container here is decided by
// its owner, source_copy: the session asks it to checkpoint, stop, commit,
// release or roll back, and nothing else touches it. See docs/design.md,
// "Nothing is lost". Each transition a restart must know of (accepted,
// stopping, stopped, committing, committed) is in the journal before the
// step it allows (journal.hpp); a Commit whose acknowledgement never comes
// is asked about (outcome_query.hpp), never guessed.
#pragma once

#include <functional>
#include <optional>

#include "background.hpp"
#include "common/names.hpp"
#include "migration/context.hpp"
#include "migration/convergence.hpp"
#include "migration/image_rounds.hpp"
#include "migration/source_copy.hpp"
#include "migration/stats.hpp"
#include "pages/dump_page_client.hpp"
#include "transport/channel.hpp"
#include "transport/file_stream.hpp"
#include "transport/page_link.hpp"

namespace migrated::migration {

using progress_fn = std::function<void(const pb::Progress&)>;

// A create spec (Docker JSON) naming another image.
std::string with_image(const std::string& spec, const std::string& image);

class source_session {
 public:
  enum class state {
    queued, accepted, measuring, connecting, pulling, sending_image, warming_up, stopping,
    checkpointing, transferring, starting, restoring, waiting_ready, postcopy, committing, releasing,
    rolling_back, done, failed,
  };

  // `prepare`: pull only (PrepareRequest) — the destination gets the
  // bundle or image ahead of time and nothing stops.
  source_session(node_context& ctx, pb::MigrateRequest req, std::string id, progress_fn progress,
                 bool prepare = false);
  // A post-copy whose daemon died while it served the pages, from its
  // journal record (stopped; the container still frozen here): run() takes
  // it up again (source_resume.cpp).
  source_session(node_context& ctx, const journal::entry& resumed);

  // Runs the migration (or prepare) to its end; never throws: a bug that
  // throws is a failure like any other and the container is rolled back.
  awaitable<pb::Report> run();

  state current() const { return state_; }
  // Abort, or the daemon stopping: give up at the next step and roll back.
  // A commit exchange in flight is finished first: after it, there is
  // nothing left to give up.
  void cancel(const std::string& reason);

 private:
  // The flow.
  awaitable<result<void>> migrate();
  awaitable<result<void>> prepare();
  awaitable<result<void>> move_process_state();
  awaitable<result<void>> move_filesystem();
  awaitable<result<void>> move_memory_lazily();
  awaitable<result<void>> stop_and_move_lazily();
  awaitable<result<void>> resume();

  // Steps (source_session.cpp).
  awaitable<result<void>> find_container();
  awaitable<result<void>> connect();
  awaitable<result<void>> begin();
  awaitable<result<void>> checkpoint();
  awaitable<result<void>> send_round(const std::filesystem::path& dir, bool final, round_stats& round);
  awaitable<result<void>> send_final_round();
  awaitable<result<void>> await_launch(std::string_view what);
  awaitable<result<void>> await_ready();
  awaitable<result<void>> commit();
  awaitable<result<void>> settle_commit(const error& silence);
  awaitable<void> release_here();
  awaitable<void> roll_back(const error& cause);
  awaitable<void> keep_frozen(const error& cause);
  awaitable<void> clean_up();
  // Steps that move filesystems and images (source_filesystem.cpp).
  awaitable<result<void>> pull(const std::string& full_image);
  awaitable<result<void>> provision(const std::string& image, const std::string& image_id, const std::string& spec);
  awaitable<result<void>> send_image(const std::string& image);
  awaitable<result<void>> send_changes(round_stats& round, bool with_tree);
  awaitable<result<void>> stop_here();
  awaitable<result<std::string>> commit_image();
  awaitable<result<void>> start_there();
  // Warm-up rounds and auto-converge (source_warmup.cpp).
  awaitable<result<void>> warm_up();
  std::string lazy_instead(const convergence_decision& next, converge_mode mode) const;
  void throttle(std::uint32_t pct, double cpus_used);
  // Post-copy (source_postcopy.cpp).
  awaitable<result<void>> checkpoint_lazily();
  awaitable<result<void>> open_page_link();
  awaitable<result<void>> connect_page_link();
  awaitable<result<void>> keep_serving_pages();
  awaitable<result<void>> recover_page_link(const error& why);
  awaitable<result<void>> serve_pages_to_the_end();
  awaitable<void> end_page_transfer();
  // After a restart (source_resume.cpp).
  awaitable<result<void>> rejoin();
  // --method auto (method_choice.cpp).
  awaitable<result<void>> choose_method();

  // Helpers.
  awaitable<result<void>> call(const pb::Envelope& env, std::string_view what);
  awaitable<result<transport::frame>> receive(std::chrono::milliseconds timeout, std::string_view what);
  awaitable<result<void>> sync_tree(const std::filesystem::path& root, const std::string& tree, round_stats& round,
                                    std::string_view phase_name);
  result<void> check_cancel() const;
  result<void> can_carry_network() const;
  result<void> peer_restores_images() const;
  result<void> can_move_process() const;
  bool both_lock_with_nftables() const;
  result<std::filesystem::path> next_round_dir();
  result<std::filesystem::path> next_lazy_dir();
  void keep_lazy_logs();
  void enter(state s, std::string detail = {});
  // Records a transition in the journal (durable when it returns), on the
  // pool: its fsyncs wait for the disk. `images`: where the final
  // checkpoint goes, before it is taken.
  awaitable<result<void>> note(journal::step s, const std::filesystem::path* images = nullptr);
  // The same, written on the pool while the session goes on; noted() waits
  // for it (and for nothing when none is pending). Every later record, and
  // forget(), comes after a noted(). For the one record whose fsync would
  // otherwise sit in the downtime (a lazy final dump's `stopped`).
  void note_meanwhile(journal::step s, asio::any_io_executor ex);
  awaitable<result<void>> write_noting_entry();
  awaitable<result<void>> noted();
  journal::entry entry_of(journal::step s, const std::filesystem::path& images) const;
  awaitable<void> forget();
  static std::uint64_t dir_bytes(const std::filesystem::path& dir);
  // CRIU's statistics of the final dump, and the pages of its images, for
  // the report; after the dump ended (a lazy one ends with its transfer).
  awaitable<void> note_final_dump();
  // pull()'s argument when the container's own image (or bundle) goes.
  inline static const std::string own_image;
  transport::send_options stream_options(std::string_view phase_name);
  bool keeps_process_state() const {
    return req_.method() == pb::COLD || req_.method() == pb::PRECOPY || restores_lazily(req_.method());
  }

  node_context& ctx_;
  pb::MigrateRequest req_;
  std::string id_;
  progress_fn progress_;
  const bool prepare_;
  state state_ = state::accepted;
  migration_stats stats_;
  stopwatch total_;
  std::optional<std::string> cancelled_;  // why, once cancel() was called
  std::optional<journal::entry> resumed_;  // taken up again after a restart: its record

  std::optional<source_copy> copy_;        // the container here, once found
  std::optional<transport::channel> peer_;
  std::filesystem::path dir_;              // <storage>/outgoing/<id>
  std::filesystem::path lazy_dir_;         // <lazy_images>/outgoing/<id>: the lazy dump's images and logs
  round_sender rounds_;                    // the dumps and their page hashes
  std::optional<std::filesystem::path> final_images_;  // the final dump's, once it worked
  std::filesystem::path final_work_;       // where CRIU logged the final dump
  std::vector<round_observation> history_; // warm-up rounds, for convergence
  stopwatch::clock::time_point ready_since_{};  // replay: when the start was asked for
  bool journaled_ = false;       // a journal record exists for this migration
  std::optional<background<void>> noting_;  // note_meanwhile(), until noted()
  journal::entry noting_entry_;             // what it writes
  bool commit_unknown_ = false;  // Commit went out, and no answer says what became of it
  // Post-copy: the dump's pages, and the link they go over.
  std::optional<pages::dump_page_client> dump_pages_;
  std::optional<transport::channel> link_;
  background<void> link_served_;          // keep_serving_pages()
  transport::page_link_stats link_stats_;  // over every link of this migration
  bool link_ending_ = false;               // the transfer is over or given up: no link opens again
};

std::string_view name(source_session::state s);

// Whether a node's capabilities list method `m`.
bool offers(const pb::Capabilities& caps, pb::Method m);

}  // namespace migrated::migration
