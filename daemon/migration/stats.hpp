// What a migration measured, as plain values: the steps write here as they
// go, and the report (pb::Report, for the controller, status and logs) is
// built from it by to_report() — never patched by several steps. Both
// sides keep one; the destination fills fewer fields.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "criu_images.pb.h"
#include "images/delta.hpp"
#include "migrated.pb.h"
#include "transport/file_stream.hpp"

namespace migrated::migration {

// One round of bytes sent: the pull (bundle/layer and volumes while the
// container runs), an image sent peer to peer, a warm-up round, or the final
// one (images, and what the filesystem changed since the pull).
struct round_stats {
  std::string kind;              // "pull", "image", "warmup", "final"
  double duration_ms = 0;
  double checkpoint_ms = 0;      // its dump (the container is frozen meanwhile)
  double dirty_mib_s = 0;        // pages changed since the previous round / time between them
  std::uint32_t throttle_pct = 0;
  transport::stream_stats sent;  // files, bytes raw and on the wire
  images::delta_stats pages;     // page files of the round, summed

  std::uint64_t pages_dirty() const { return pages.full + pages.xor_pages + pages.ref; }
  void add(const transport::stream_stats& s);
};

struct migration_stats {
  std::string id, container, source, destination, runtime;
  pb::Method requested_method = pb::COLD;
  pb::Method method = pb::COLD;
  std::string method_reason;     // auto: why `method`
  std::string phase;             // the last phase entered
  pb::Result result = pb::RESULT_RUNNING;
  std::string error;
  errc error_code = errc::ok;
  std::int64_t started_unix_ms = 0;

  double total_ms = 0, pull_ms = 0, image_ms = 0, checkpoint_ms = 0, transfer_ms = 0, restore_ms = 0,
         ready_ms = 0, downtime_ms = 0, rollback_ms = 0;
  double warmup_frozen_ms = 0;           // frozen before the final checkpoint (warm-up, auto's measure)
  std::uint64_t bytes_image = 0;         // the final dump's files
  std::uint64_t bytes_rootfs = 0;        // filesystem trees (bundle, layer, volumes)
  std::uint64_t bytes_engine_image = 0;  // an image sent peer to peer
  std::string ready_probe;               // what answered for ready_ms
  std::string convergence;               // why the warm-up rounds stopped
  std::uint32_t throttle_max_pct = 0;
  double bandwidth_mib_s = 0;
  std::vector<round_stats> rounds;
  pb::PagesEnd postcopy;                 // post-copy: how the pages came (the destination's PagesEnd)
  std::uint32_t link_recoveries = 0;     // post-copy: page links lost and opened again
  double link_down_ms = 0;               //   and how long the pages stopped, in all
  std::optional<pb::CriuDump> criu_dump;        // CRIU's statistics of the final dump
  std::optional<pb::CriuRestore> criu_restore;  //   and of the restore
  std::uint64_t pages_image = 0;         // pages in the final images' pagemaps

  round_stats& add_round(std::string kind);
  // The newest round of `kind`, added when there is none yet.
  round_stats& round(std::string_view kind);
  std::uint64_t bytes_wire() const;
};

pb::Report to_report(const migration_stats& s);

// CRIU's own statistics as the report gives them (times in ms).
pb::CriuDump criu_dump_report(const criu::DumpStatsEntry& e);
pb::CriuRestore criu_restore_report(const criu::RestoreStatsEntry& e);

}  // namespace migrated::migration
