// A report as JSON (see report_json.hpp).
#include "common/report_json.hpp"

#include <cmath>
#include <string>

#include "common/error.hpp"
#include "common/names.hpp"

namespace migrated {
namespace {

double ms3(double v) { return std::round(v * 1000.0) / 1000.0; }

}  // namespace

nlohmann::ordered_json report_to_json(const pb::Report& r) {
  using json = nlohmann::ordered_json;
  json rounds = json::array();
  for (auto& x : r.rounds())
    rounds.push_back({{"index", x.index()},
                      {"kind", x.kind()},
                      {"duration_ms", ms3(x.duration_ms())},
                      {"checkpoint_ms", ms3(x.checkpoint_ms())},
                      {"files", x.files()},
                      {"bytes_raw", x.bytes_raw()},
                      {"bytes_wire", x.bytes_wire()},
                      {"pages_scanned", x.pages_scanned()},
                      {"pages_full", x.pages_full()},
                      {"pages_xor", x.pages_xor()},
                      {"pages_ref", x.pages_ref()},
                      {"pages_skipped", x.pages_skipped()},
                      {"pages_dirty", x.pages_dirty()},
                      {"dirty_mib_s", ms3(x.dirty_mib_s())},
                      {"throttle_pct", x.throttle_pct()}});
  // CRIU's own statistics: null where CRIU wrote none.
  json criu_dump = nullptr, criu_restore = nullptr;
  if (r.has_criu_dump()) {
    const auto& d = r.criu_dump();
    criu_dump = {{"freezing_ms", ms3(d.freezing_ms())},     {"frozen_ms", ms3(d.frozen_ms())},
                 {"memdump_ms", ms3(d.memdump_ms())},       {"memwrite_ms", ms3(d.memwrite_ms())},
                 {"pages_scanned", d.pages_scanned()},      {"pages_skipped_parent", d.pages_skipped_parent()},
                 {"pages_written", d.pages_written()},      {"pages_lazy", d.pages_lazy()}};
  }
  if (r.has_criu_restore()) {
    const auto& x = r.criu_restore();
    criu_restore = {{"forking_ms", ms3(x.forking_ms())},     {"restore_ms", ms3(x.restore_ms())},
                    {"pages_compared", x.pages_compared()}, {"pages_skipped_cow", x.pages_skipped_cow()},
                    {"pages_restored", x.pages_restored()}};
  }
  return {
      {"id", r.id()},
      {"container", r.container()},
      {"source", r.source()},
      {"destination", r.destination()},
      {"method", std::string(method_name(r.method()))},
      {"requested_method", std::string(method_name(r.requested_method()))},
      {"method_reason", r.method_reason()},
      {"runtime", r.runtime()},
      {"result", std::string(result_name(r.result()))},
      {"error", r.error()},
      {"code", std::string(to_string(static_cast<errc>(r.code())))},
      {"phase", r.phase()},
      {"downtime_ms", ms3(r.downtime_ms())},
      {"total_ms", ms3(r.total_ms())},
      {"pull_ms", ms3(r.pull_ms())},
      {"checkpoint_ms", ms3(r.checkpoint_ms())},
      {"transfer_ms", ms3(r.transfer_ms())},
      {"restore_ms", ms3(r.restore_ms())},
      {"ready_ms", ms3(r.ready_ms())},
      {"ready_probe", r.ready_probe()},
      {"image_ms", ms3(r.image_ms())},
      {"bytes_engine_image", r.bytes_engine_image()},
      {"rollback_ms", ms3(r.rollback_ms())},
      {"warmup_frozen_ms", ms3(r.warmup_frozen_ms())},
      {"bytes_image", r.bytes_image()},
      {"bytes_rootfs", r.bytes_rootfs()},
      {"bytes_wire", r.bytes_wire()},
      {"bandwidth_mib_s", ms3(r.bandwidth_mib_s())},
      {"throttle_max_pct", r.throttle_max_pct()},
      {"convergence", r.convergence()},
      {"postcopy_ms", ms3(r.postcopy_ms())},
      {"pages_faulted", r.pages_faulted()},
      {"pages_pushed", r.pages_pushed()},
      {"postcopy_faults", r.postcopy_faults()},
      {"fault_p50_ms", ms3(r.fault_p50_ms())},
      {"fault_p99_ms", ms3(r.fault_p99_ms())},
      {"fault_max_ms", ms3(r.fault_max_ms())},
      {"bytes_postcopy", r.bytes_postcopy()},
      {"pages_unchanged", r.pages_unchanged()},
      {"link_recoveries", r.link_recoveries()},
      {"link_down_ms", ms3(r.link_down_ms())},
      {"pages_image", r.pages_image()},
      {"criu_dump", criu_dump},
      {"criu_restore", criu_restore},
      {"started_unix_ms", r.started_unix_ms()},
      {"rounds", rounds},
  };
}

std::string json_text(const nlohmann::ordered_json& j) {
  return j.dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

}  // namespace migrated
