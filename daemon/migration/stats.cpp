// A migration's statistics and the report built from them (see stats.hpp).
#include "migration/stats.hpp"

#include "transport/channel.hpp"

namespace migrated::migration {

void round_stats::add(const transport::stream_stats& s) {
  sent.files += s.files;
  sent.bytes_raw += s.bytes_raw;
  sent.bytes_wire += s.bytes_wire;
  sent.ms += s.ms;
}

round_stats& migration_stats::add_round(std::string kind) {
  rounds.push_back(round_stats{.kind = std::move(kind)});
  return rounds.back();
}

round_stats& migration_stats::round(std::string_view kind) {
  for (auto it = rounds.rbegin(); it != rounds.rend(); ++it)
    if (it->kind == kind) return *it;
  return add_round(std::string(kind));
}

std::uint64_t migration_stats::bytes_wire() const {
  std::uint64_t total = 0;
  for (const auto& r : rounds) total += r.sent.bytes_wire;
  total += postcopy.link_bytes();
  return total;
}

pb::Report to_report(const migration_stats& s) {
  pb::Report r;
  r.set_id(s.id);
  r.set_container(s.container);
  r.set_source(s.source);
  r.set_destination(s.destination);
  r.set_method(s.method);
  r.set_requested_method(s.requested_method);
  r.set_method_reason(s.method_reason);
  r.set_runtime(s.runtime);
  r.set_result(s.result);
  r.set_error(s.error);
  r.set_code(transport::to_code(s.error_code));
  r.set_phase(s.phase);
  r.set_started_unix_ms(s.started_unix_ms);
  r.set_total_ms(s.total_ms);
  r.set_pull_ms(s.pull_ms);
  r.set_image_ms(s.image_ms);
  r.set_checkpoint_ms(s.checkpoint_ms);
  r.set_transfer_ms(s.transfer_ms);
  r.set_restore_ms(s.restore_ms);
  r.set_ready_ms(s.ready_ms);
  r.set_downtime_ms(s.downtime_ms);
  r.set_rollback_ms(s.rollback_ms);
  r.set_warmup_frozen_ms(s.warmup_frozen_ms);
  r.set_postcopy_ms(s.postcopy.postcopy_ms());
  r.set_pages_faulted(s.postcopy.pages_faulted());
  r.set_pages_pushed(s.postcopy.pages_pulled());
  r.set_postcopy_faults(s.postcopy.faults());
  r.set_fault_p50_ms(s.postcopy.fault_p50_ms());
  r.set_fault_p99_ms(s.postcopy.fault_p99_ms());
  r.set_fault_max_ms(s.postcopy.fault_max_ms());
  r.set_bytes_postcopy(s.postcopy.link_bytes());
  r.set_pages_unchanged(s.postcopy.pages_unchanged());
  r.set_link_recoveries(s.link_recoveries);
  r.set_link_down_ms(s.link_down_ms);
  r.set_bytes_image(s.bytes_image);
  r.set_pages_image(s.pages_image);
  if (s.criu_dump) *r.mutable_criu_dump() = *s.criu_dump;
  if (s.criu_restore) *r.mutable_criu_restore() = *s.criu_restore;
  r.set_bytes_rootfs(s.bytes_rootfs);
  r.set_bytes_engine_image(s.bytes_engine_image);
  r.set_bytes_wire(s.bytes_wire());
  r.set_ready_probe(s.ready_probe);
  r.set_convergence(s.convergence);
  r.set_throttle_max_pct(s.throttle_max_pct);
  r.set_bandwidth_mib_s(s.bandwidth_mib_s);
  for (std::size_t i = 0; i < s.rounds.size(); ++i) {
    const auto& from = s.rounds[i];
    auto* to = r.add_rounds();
    to->set_index(std::uint32_t(i));
    to->set_kind(from.kind);
    to->set_duration_ms(from.duration_ms);
    to->set_checkpoint_ms(from.checkpoint_ms);
    to->set_files(from.sent.files);
    to->set_bytes_raw(from.sent.bytes_raw);
    to->set_bytes_wire(from.sent.bytes_wire);
    to->set_pages_scanned(from.pages.pages);
    to->set_pages_full(from.pages.full);
    to->set_pages_xor(from.pages.xor_pages);
    to->set_pages_ref(from.pages.ref);
    to->set_pages_skipped(from.pages.same + from.pages.zero);
    to->set_pages_dirty(from.pages_dirty());
    to->set_throttle_pct(from.throttle_pct);
    to->set_dirty_mib_s(from.dirty_mib_s);
  }
  return r;
}

namespace {
double us_to_ms(std::uint32_t us) { return double(us) / 1000.0; }
}  // namespace

pb::CriuDump criu_dump_report(const criu::DumpStatsEntry& e) {
  pb::CriuDump d;
  d.set_freezing_ms(us_to_ms(e.freezing_time()));
  d.set_frozen_ms(us_to_ms(e.frozen_time()));
  d.set_memdump_ms(us_to_ms(e.memdump_time()));
  d.set_memwrite_ms(us_to_ms(e.memwrite_time()));
  d.set_pages_scanned(e.pages_scanned());
  d.set_pages_skipped_parent(e.pages_skipped_parent());
  d.set_pages_written(e.pages_written());
  d.set_pages_lazy(e.pages_lazy());
  return d;
}

pb::CriuRestore criu_restore_report(const criu::RestoreStatsEntry& e) {
  pb::CriuRestore r;
  r.set_forking_ms(us_to_ms(e.forking_time()));
  r.set_restore_ms(us_to_ms(e.restore_time()));
  r.set_pages_compared(e.pages_compared());
  r.set_pages_skipped_cow(e.pages_skipped_cow());
  r.set_pages_restored(e.pages_restored());
  return r;
}

}  // namespace migrated::migration
