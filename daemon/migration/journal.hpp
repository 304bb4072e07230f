// The migration journal: what each migration this node takes part in has
// done to a container, on disk, so that a daemon killed at any moment
// (SIGKILL, a power cut) knows on its next start what to bring back, what
// to release and what to remove (journal_recovery.hpp).
//
// One file per migration, <storage>/journal/<id>.json, rewritten at every
// transition that matters: the new record goes to <id>.json.tmp, is
// fsync'd, renamed over the old one, and the directory is fsync'd. A rename
// is atomic, so a reader finds the old record or the new one, never half of
// each. The file holds one line of JSON and one line with its XXH3-128: a
// record that does not match (a torn sector, a bit flipped on the disk) is
// refused with an error naming the file, and recovery touches nothing for
// it (see docs/design.md, "After a crash").
//
//   source       accepted → stopping → stopped → committing → committed
//                (removed when the migration ends: done or rolled back)
//   destination  receiving → restored → committed
//                (removed when its copy is removed; a committed record
//                stays as the answer to the source's OutcomeQuery and is
//                pruned after `committed_kept` or beyond `committed_max`)
//
// Writes are synchronous on the calling thread: a transition must be on
// disk before the step that depends on it (the Commit frame, its
// acknowledgement) and atomic with the session state that the I/O thread
// changes; a record is a few hundred bytes and a migration writes about six.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.hpp"

namespace migrated::migration::journal {

enum class role { source, destination };

enum class step {
  accepted,    // source: the migration began; the container runs untouched
  stopping,    // source: the final checkpoint (or a stop) is about to begin
  stopped,     // source: frozen (or stopped) here, its images in `images`
  committing,  // source: Commit is about to be sent; only the destination knows what follows
  committed,   // both: the container is the destination's
  receiving,   // destination: a container of this name may exist here (created, not running)
  restored,    // destination: the copy runs here, not committed
};

struct entry {
  std::string migration_id;
  role side = role::source;
  step state = step::accepted;
  std::string container;
  std::string runtime;
  std::string method;
  // Source: the destination as it was asked for (peer name or host:port);
  // destination: the source's node name.
  std::string peer;
  std::filesystem::path images;  // source: the final checkpoint's images
  std::filesystem::path bundle;  // source: what a restore or a fresh start needs
  bool frozen = false;           // source, stopped: the copy here is frozen (a thaw brings it back)
  std::int64_t updated_unix_ms = 0;
};

std::string_view name(role r);
std::string_view name(step s);
std::optional<step> parse_step(std::string_view s);

// A step belongs to a side (committed to both).
bool valid_for(role r, step s);

// The file format (exposed for the tests of torn and corrupt records).
std::string encode(const entry& e);
result<entry> decode(std::string_view text, std::string_view where);

class store {
 public:
  // Committed destination records answer the source's OutcomeQuery: kept
  // this long (far beyond the source's retries) and at most this many.
  static constexpr auto committed_kept = std::chrono::hours(24 * 30);
  static constexpr std::size_t committed_max = 1000;

  explicit store(std::filesystem::path dir) : dir_(std::move(dir)) {}
  const std::filesystem::path& dir() const { return dir_; }

  // Creates the directory (fsync'd into its parent) and removes temporary
  // files a crash left; an error when the directory cannot be used.
  result<void> open();
  // Durable once it returns: temporary file, fsync, rename, fsync of the directory.
  result<void> write(entry e);
  // Durable too; success when there is no record.
  result<void> remove(const std::string& migration_id);
  // errc::not_found when there is none; errc::checksum for a torn or corrupt one.
  result<entry> read(const std::string& migration_id) const;

  struct unreadable {
    std::string migration_id;  // from the file's name
    error why;                 // names the file
  };
  struct contents {
    std::vector<entry> entries;
    std::vector<unreadable> refused;
  };
  contents load() const;
  // Drops committed destination records beyond the limits above.
  void prune(std::chrono::system_clock::time_point now);

 private:
  std::filesystem::path file_of(const std::string& migration_id) const;
  std::filesystem::path dir_;
};

}  // namespace migrated::migration::journal
