// The image sets of a migration's rounds. Every round is a complete CRIU
// dump; what travels is, per file, either the file (small images: core, mm,
// files, pagemaps...) or, for pages files, the page delta against the same
// process's pages in the previous round (images/delta.hpp). Each side keeps
// exactly one previous round — its dump and its page hashes — and drops
// older ones. The first round has no previous one: its pages still skip
// zero and duplicate pages. Cold migration is a single, final round.
#pragma once

#include <atomic>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "images/delta.hpp"
#include "transport/file_stream.hpp"

namespace migrated::migration {

struct round_totals {
  images::delta_stats pages;   // summed over the round's pages files
  std::uint64_t other_bytes = 0;  // non-page files, sent whole
};

// What a side remembers of a round's dump.
struct dump_memory {
  std::filesystem::path dir;
  std::map<std::string, images::page_set> sets;        // by pagemap name
  std::map<std::string, images::page_hashes> hashes;   // by pagemap name
};

class round_sender {
 public:
  explicit round_sender(std::filesystem::path base) : base_(std::move(base)) {}

  // Where the next dump goes: <base>/round-<n>, created empty (or under
  // another base, for a dump that is kept elsewhere).
  result<std::filesystem::path> next_dir() { return next_dir(base_); }
  result<std::filesystem::path> next_dir(const std::filesystem::path& base);
  // The files of the dump in `dir`, page files last as delta producers.
  result<std::vector<transport::outgoing_file>> files_for(const std::filesystem::path& dir,
                                                          std::uint32_t chunk_bytes);
  // The round in `dir` was delivered: it becomes the previous one.
  void delivered();
  round_totals totals() const;
  // The newest dump (for a rollback restore).
  std::filesystem::path latest_dir() const { return latest_; }
  std::uint32_t rounds() const { return index_; }

 private:
  std::filesystem::path base_;
  std::filesystem::path latest_;
  std::uint32_t index_ = 0;
  std::shared_ptr<dump_memory> previous_;
  std::shared_ptr<dump_memory> current_;
  mutable std::mutex mutex_;   // totals and hashes are written by producers on the pool
  round_totals totals_;
};

// A copy of a delivered round's pages file, made in the background so the
// next round's delta can be applied to it in place: only the changed pages
// are written, instead of copying every unchanged one while the container
// is stopped.
struct staged_copy {
  std::filesystem::path file;
  std::atomic<bool> ready{false};
  std::atomic<bool> cancel{false};  // not needed any more: stop copying
  bool ok = false;
};

class round_receiver {
 public:
  explicit round_receiver(std::filesystem::path base) : base_(std::move(base)) {}
  ~round_receiver() {
    for (auto& [name, copy] : staged_) copy->cancel.store(true);
  }

  result<std::filesystem::path> begin_round(std::uint32_t index);
  // Receive options for the current round: page deltas are decoded against
  // the previous round and verified with the sender's tree digest.
  transport::receive_options options(asio::thread_pool& pool);
  // The round was rebuilt and verified: it becomes the previous one, and
  // copies of its pages files are started on the pool for the next round.
  // After the final round there is none: nothing is copied or removed (the
  // restore needs the disk more; the session's clean-up removes the rounds).
  void delivered(asio::thread_pool& pool, bool final);
  // How many page files of the current round were rebuilt in place.
  std::uint32_t patched_in_place() const { return patched_; }
  std::filesystem::path current_dir() const { return current_ ? current_->dir : std::filesystem::path(); }
  // The round before the current one (a hybrid's last warm-up round, kept
  // after the final round); empty when there is none.
  std::filesystem::path previous_dir() const { return previous_ ? previous_->dir : std::filesystem::path(); }

 private:
  std::filesystem::path base_;
  std::shared_ptr<dump_memory> previous_;
  std::shared_ptr<dump_memory> current_;
  std::map<std::string, std::shared_ptr<staged_copy>> staged_;  // by pagemap name
  std::uint32_t rounds_delivered_ = 0;
  std::uint32_t patched_ = 0;
  std::mutex mutex_;
};

}  // namespace migrated::migration
