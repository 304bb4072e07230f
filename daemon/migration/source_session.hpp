// The source side of one migration, as one coroutine that reads top to
// bottom: check the container → connect → pull (bundle to the destination
// while the container runs) → [precopy: warm-up rounds, each a dump with
// --leave-running whose page delta against the previous round is streamed,
// until convergence.hpp says stop] → checkpoint (the container stops:
// downtime begins) → transfer (bundle changes, then the final round) →
// restore at the destination (downtime ends) → ready → commit. Any failure after the
// checkpoint and before the destination has acknowledged Commit rolls back:
// the destination is told to drop its copy and the container is restored
// here from the images it was dumped to. See docs/design.md, "Nothing is lost".
//
// The filesystem methods (source_filesystem.cpp) share the first steps and
// the end: check → connect → pull → [diff, full: stop the container here,
// send what its filesystem changed since the pull (full: as a committed
// image)] → start a fresh container there [replay: run its replay hook while
// this one still serves] → ready → commit → the container here is removed.
// --method auto (method_choice.cpp) measures, then picks one of them.
#pragma once

#include <functional>
#include <optional>

#include "migration/context.hpp"
#include "migration/convergence.hpp"
#include "migration/image_rounds.hpp"
#include "migration/phases.hpp"
#include "runtime/runtime.hpp"
#include "transport/channel.hpp"
#include "transport/file_stream.hpp"

namespace migrated::migration {

using progress_fn = std::function<void(const pb::Progress&)>;

// A create spec (Docker JSON) naming another image.
std::string with_image(const std::string& spec, const std::string& image);

class source_session {
 public:
  source_session(node_context& ctx, pb::MigrateRequest req, std::string id, progress_fn progress);

  // Runs the migration to its end; never throws; the report says how it went.
  awaitable<pb::Report> run();
  // Pull only (PrepareRequest): the destination gets the bundle ahead of time.
  awaitable<pb::Report> run_prepare();

 private:
  awaitable<result<void>> migrate();
  awaitable<result<void>> check_container();
  awaitable<result<void>> connect();
  awaitable<result<void>> pull();
  awaitable<result<void>> provision(const std::string& image, const std::string& image_id, const std::string& spec);
  awaitable<result<void>> send_image(const std::string& image);
  awaitable<result<void>> send_volumes();
  awaitable<result<void>> choose_method();
  awaitable<result<void>> stop_here();
  awaitable<result<void>> commit_image();
  awaitable<result<void>> send_filesystem();
  awaitable<result<void>> start_remote();
  awaitable<result<void>> hold_restarts();
  awaitable<result<void>> failed_to_stop(const error& e);
  awaitable<result<void>> await_launch(std::string_view what);
  awaitable<result<void>> await_ready(const stopwatch::clock::time_point& since);
  awaitable<result<transport::stream_stats>> sync_bundle(std::string_view phase);
  awaitable<result<void>> finish_here();
  bool checkpoints() const { return req_.method() == pb::COLD || req_.method() == pb::PRECOPY; }
  awaitable<result<void>> begin_transfer();
  awaitable<result<void>> warm_up();
  awaitable<result<void>> checkpoint();
  awaitable<result<transport::stream_stats>> send_round(const std::filesystem::path& dir, bool final);
  awaitable<void> set_throttle(std::uint32_t pct);
  void lift_throttle();  // for a dump; throttle_pct_ is kept
  awaitable<result<void>> transfer();
  awaitable<result<void>> restore_remote();
  awaitable<result<void>> commit();
  awaitable<void> roll_back(const error& cause);
  awaitable<void> clean_up();

  awaitable<result<void>> call(const pb::Envelope& env, std::string_view what);
  result<void> check_abort() const;
  void enter(std::string_view phase, std::string detail = {});
  transport::send_options stream_options(std::string_view phase);
  pb::Round& add_round(std::string_view kind, double ms, const transport::stream_stats& st);

  node_context& ctx_;
  pb::MigrateRequest req_;
  std::string id_;
  progress_fn progress_;
  pb::Report report_;
  stopwatch total_;
  std::string phase_;

  runtime::runtime* rt_ = nullptr;       // the container's runtime here
  runtime::container_info container_;
  std::string full_image_;              // full: the image committed from the container
  std::optional<transport::channel> peer_;
  std::filesystem::path dir_;           // <storage>/outgoing/<id>
  round_sender rounds_;                 // the dumps and their page hashes
  std::vector<round_observation> history_;  // warm-up rounds, for convergence
  std::uint32_t throttle_pct_ = 0;
  double cpus_used_ = 0;                // the container's CPU use before throttling
  bool stopped_ = false;                // the container no longer runs here
  bool held_ = false;                   // its restart policy is held (hold_restarts)
  bool committed_ = false;              // the destination owns it now
  stopwatch::clock::time_point frozen_at_{};
};

}  // namespace migrated::migration
