// The destination side of one migration, on the connection the source
// opened: one coroutine, run(), that reads top to bottom, with its state
// explicit (destination_session::state). Each state accepts only the
// messages that may come next; anything else — a message out of order, a
// second MigrateBegin, a round before the container has a place — ends the
// migration with a protocol error the source is told.
//
//   pulling        Pull accepted (nothing of that name runs here); the
//                  filesystem arrives: Provision (image store: the image,
//                  and a container created from the source's configuration),
//                  then trees (bundle or writable layer, named volumes).
//                  A prepare ends here with PrepareEnd; a migration goes on
//                  with MigrateBegin. The source going away here is a
//                  failure, never a finished prepare.
//   receiving      cold, precopy, hybrid: rounds of images (each rebuilt from the
//                  previous round and page deltas, and verified) and the
//                  filesystem's last changes, up to the final round.
//                  diff, full, replay: trees, up to RoundBegin{start_fresh}.
//   launching      restore the final round (or start fresh; replay: run its
//                  replay hook), answer RestoreResult; for post-copy
//                  (destination_postcopy.cpp) the source opens
//                  the page link; `criu lazy-pages` answers the restored
//                  process's faults from a page store that the link fills,
//                  faults first, the rest in the background
//   waiting_ready  the readiness probe (destination_ready.cpp), answer Ready
//   postcopy       post-copy, hybrid: until lazy-pages holds every page;
//                  then PagesEnd on the link (a hybrid asks with the
//                  hashes of its last warm-up round's pages, and gets
//                  only those that changed). A source whose daemon died
//                  meanwhile may come back within postcopy.recover_timeout_ms
//                  on a new channel (SessionResume) and a new page link.
//   waiting_commit Commit makes the copy here the container; Abort, a closed
//                  connection, the commit deadline, or the daemon stopping
//                  make this side remove it: the source is restoring its own
//   committed      → done
//
// A copy restored here and not committed never outlives the session: on
// every failure and on cancel (the daemon stopping, an abort) it is removed
// and the source is told with Abort. A daemon killed meanwhile removes it
// when it starts again: the journal (journal.hpp) says receiving or restored
// before either exists, and committed before the acknowledgement.
#pragma once

#include <filesystem>
#include <optional>
#include <span>

#include "background.hpp"
#include "migration/context.hpp"
#include "migration/image_rounds.hpp"
#include "migration/page_links.hpp"
#include "migration/stats.hpp"
#include "migration/stopwatch.hpp"
#include "pages/lazy_pages_server.hpp"
#include "pages/page_pull.hpp"
#include "pages/page_store.hpp"
#include "pages/push_order.hpp"
#include "process/process.hpp"
#include "transport/channel.hpp"
#include "transport/page_link.hpp"

namespace migrated::migration {

class destination_session {
 public:
  enum class state {
    pulling, receiving, launching, waiting_ready, postcopy, waiting_commit, committed, removing, done, failed
  };

  destination_session(node_context& ctx, transport::channel& ch);

  // `pull` is the first request on the connection, already read.
  awaitable<void> run(const pb::Envelope& pull);

  state current() const { return state_; }
  // The daemon stopping, or an abort: give up the uncommitted copy. Once
  // Commit was read the exchange is finished instead.
  void cancel(const std::string& reason);

 private:
  awaitable<result<void>> serve(const pb::Envelope& pull);
  awaitable<result<void>> accept_pull(const pb::Envelope& pull);
  awaitable<result<transport::frame>> receive_filesystem();
  awaitable<result<void>> receive_images();
  awaitable<result<void>> receive_trees_until_start();
  awaitable<result<void>> receive_round(const pb::RoundBegin& round);
  awaitable<result<void>> expect_page_link();
  awaitable<result<void>> take_lazy_final(const pb::RoundBegin& round);
  awaitable<result<void>> provision(const pb::Envelope& env);
  awaitable<result<void>> provide_image(const pb::Provision& p);
  awaitable<result<void>> receive_image();
  awaitable<result<void>> receive_tree_for(const pb::TreeManifest& first);
  awaitable<result<void>> launch(bool fresh);
  awaitable<result<void>> become_ready(const stopwatch& since);
  awaitable<result<std::string>> wait_for_service();
  awaitable<result<void>> await_commit();
  // Post-copy (destination_postcopy.cpp).
  awaitable<result<runtime::container_info>> restore_lazily();
  awaitable<result<void>> start_lazy_pages(const std::filesystem::path& images);
  awaitable<result<void>> keep_page_link();
  awaitable<result<void>> listen_to_source();
  awaitable<result<transport::channel*>> source_back(const error& lost);
  awaitable<result<transport::frame>> heard_after_postcopy(std::span<const pb::Envelope::BodyCase> allowed,
                                                           std::chrono::milliseconds timeout);
  awaitable<result<void>> receive_pages_to_the_end();
  awaitable<void> end_page_transfer();
  awaitable<void> lazy_pages_ended();
  awaitable<void> clean_up(const result<void>& outcome);

  // The next frame if it is one of `allowed` (Abort always is, and ends
  // the session); otherwise a protocol error naming the state, told to the source.
  awaitable<result<transport::frame>> judge(result<transport::frame>& f, std::span<const pb::Envelope::BodyCase> allowed);
  awaitable<result<transport::frame>> next(std::span<const pb::Envelope::BodyCase> allowed,
                                           std::chrono::milliseconds timeout);
  void enter(state s, std::string detail = {});
  // Records a transition in the journal (durable when it returns), on the
  // pool: its fsyncs wait for the disk.
  awaitable<result<void>> note(journal::step s);

  node_context& ctx_;
  // The source's channel: the connection that brought Pull, or, once the
  // source's daemon restarted during post-copy, the one it resumed on.
  // Either is held by its connection's handler.
  transport::channel* ch_;
  transport::channel* const origin_;  // the Pull's, which outlives the session
  state state_ = state::pulling;
  migration_stats stats_;
  std::string id_;
  std::string container_;
  runtime::runtime* rt_ = nullptr;
  pb::Method method_ = pb::COLD;
  bool prepare_ = false;
  std::filesystem::path bundle_;    // where the container's tree goes (empty: not provisioned yet)
  std::vector<runtime::volume> volumes_;
  std::filesystem::path dir_;       // <storage>/incoming/<id>
  std::unique_ptr<round_receiver> rounds_;
  std::uint32_t next_round_ = 1;    // the index the next RoundBegin must carry
  bool created_ = false;            // a container exists here for this migration
  bool launched_ = false;           // it runs here (restored or started)
  bool journaled_ = false;          // a journal record exists for this migration
  std::optional<std::string> cancelled_;
  stopwatch total_;

  // Post-copy: the page link and what answers lazy-pages from it. Each
  // background step is waited for (end_page_transfer) before these go.
  struct lazy_transfer {
    explicit lazy_transfer(asio::any_io_executor ex)
        : lazy_ours(ex), lazy_theirs(ex), heard_wake(ex, asio::steady_timer::time_point::max()) {}
    page_links::expected claim;          // the link, once the source opened it
    page_links::expected comeback;       // a new session channel, should the source's daemon restart
    bool resumable = false;              // comeback is claimed
    transport::channel* link = nullptr;  // its channel, held by its connection's handler
    std::optional<transport::page_link_client> client;
    std::optional<pages::push_order> order;
    std::optional<pages::link_source> remote;
    std::optional<pages::page_store> store;
    std::optional<pages::image_page_server> base;  // a hybrid's last warm-up round
    pages::pull_options pull;  // (the pull refers to it while it runs)
    bool stop_pull = false;
    asio::local::stream_protocol::socket lazy_ours, lazy_theirs;  // to `criu lazy-pages`
    std::vector<std::string> lazy_argv;
    process::options lazy_options;
    background<void> link_ran;  // keep_page_link()
    // The source's next frame on the session's channel, read from post-copy
    // on (listen_to_source()): the Commit or Abort after PagesEnd, an Abort
    // while the pages come, or the channel's end when its daemon died.
    background<void> listening;
    std::optional<result<transport::frame>> heard;
    asio::steady_timer heard_wake;
    bool ending = false;        // the transfer is over or given up: a lost link is not waited for
    background<pages::pull_stats> pulled;
    background<pages::serve_stats> served;
    background<process::result_of_run> lazy_pages;
    stopwatch::clock::time_point restored_at{};
  };
  std::unique_ptr<lazy_transfer> lazy_;
};

std::string_view name(destination_session::state s);

}  // namespace migrated::migration
