// The migrations this node took part in, finished, on disk: what
// `migratectl history` lists, newest first, across restarts. One file per
// finished report under <storage>/history/, named
// <finished unix ms, 13 digits>-<id>.pb (the Report, serialized), so that
// names sort by age; at most `max_kept`, the oldest dropped.
//
// A file goes to <name>.tmp and is renamed: a reader finds a whole report
// or none. It is not fsync'd: a power cut may lose the newest reports,
// never a container (that is the journal's affair, journal.hpp), and the
// I/O thread that finishes a migration does not wait for a disk. A file
// that does not parse is skipped with a warning and left in place.
#pragma once

#include <cstdint>
#include <deque>
#include <filesystem>
#include <string>
#include <vector>

#include "common/error.hpp"
#include "migrated.pb.h"

namespace migrated::migration {

class history {
 public:
  static constexpr std::size_t default_kept = 1000;

  explicit history(std::filesystem::path dir, std::size_t max_kept = default_kept)
      : dir_(std::move(dir)), max_(max_kept ? max_kept : 1) {}
  const std::filesystem::path& dir() const { return dir_; }

  // Creates the directory and reads what it holds (the oldest beyond the
  // limit are removed); an error when the directory cannot be used.
  result<void> open();
  // Keeps `r` as finished at `finished_unix_ms`.
  result<void> add(const pb::Report& r, std::int64_t finished_unix_ms);
  // Newest first; at most `limit` (0: all kept).
  std::vector<pb::Report> newest(std::size_t limit = 0) const;
  // The report of migration `id`; null when none is kept.
  const pb::Report* find(const std::string& id) const;
  std::size_t size() const { return kept_.size(); }

 private:
  struct kept {
    std::string file;  // its name in dir_
    pb::Report report;
  };
  void drop_oldest();

  std::filesystem::path dir_;
  std::size_t max_;
  std::deque<kept> kept_;  // oldest first
};

}  // namespace migrated::migration
