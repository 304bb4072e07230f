// Report and status rendering for migratectl (see output.hpp).
#include "ctl/output.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "common/names.hpp"
#include "common/report_json.hpp"

namespace migrated::ctl {
namespace {

using json = nlohmann::ordered_json;

double ms3(double v) { return std::round(v * 1000.0) / 1000.0; }

std::string human_bytes(std::uint64_t b) {
  if (b < 1024) return fmt::format("{} B", b);
  if (b < 1024 * 1024) return fmt::format("{:.1f} KiB", b / 1024.0);
  if (b < 1024ull * 1024 * 1024) return fmt::format("{:.1f} MiB", b / 1048576.0);
  return fmt::format("{:.2f} GiB", b / 1073741824.0);
}

}  // namespace

std::string report_json(const pb::Report& r) { return json_text(report_to_json(r)); }

std::string report_table(const pb::Report& r) {
  std::string out = fmt::format("migration {}  {}  {} -> {}  {}/{}  {}\n", r.id(), r.container(), r.source(),
                                r.destination(), method_name(r.method()), r.runtime(),
                                result_name(r.result()));
  if (!r.error().empty()) out += fmt::format("  error       {}\n", r.error());
  out += fmt::format("  downtime    {:10.3f} ms\n", r.downtime_ms());
  out += fmt::format("  total       {:10.3f} ms\n", r.total_ms());
  out += fmt::format("  pull        {:10.3f} ms\n", r.pull_ms());
  out += fmt::format("  checkpoint  {:10.3f} ms\n", r.checkpoint_ms());
  out += fmt::format("  transfer    {:10.3f} ms\n", r.transfer_ms());
  out += fmt::format("  restore     {:10.3f} ms\n", r.restore_ms());
  out += fmt::format("  ready       {:10.3f} ms{}\n", r.ready_ms(), r.ready_probe().empty() ? "" : "  (" + r.ready_probe() + ")");
  if (!r.method_reason().empty()) out += fmt::format("  auto        {}\n", r.method_reason());
  if (r.bytes_engine_image() > 0)
    out += fmt::format("  image       {} sent peer to peer in {:.1f} ms\n", human_bytes(r.bytes_engine_image()), r.image_ms());
  if (r.rollback_ms() > 0) out += fmt::format("  rollback    {:10.3f} ms\n", r.rollback_ms());
  if (r.warmup_frozen_ms() > 0)
    out += fmt::format("  frozen      {:10.3f} ms  before the final checkpoint (warm-up, measuring)\n", r.warmup_frozen_ms());
  out += fmt::format("  bytes       image {}, rootfs {}, on the wire {}\n", human_bytes(r.bytes_image()),
                     human_bytes(r.bytes_rootfs()), human_bytes(r.bytes_wire()));
  if (r.has_criu_dump()) {
    const auto& d = r.criu_dump();
    out += fmt::format("  CRIU dump   freezing {:.1f} ms, frozen {:.1f} ms, memory {:.1f} + {:.1f} ms; pages "
                       "scanned {}, written {}, in parent {}, lazy {}\n",
                       d.freezing_ms(), d.frozen_ms(), d.memdump_ms(), d.memwrite_ms(), d.pages_scanned(),
                       d.pages_written(), d.pages_skipped_parent(), d.pages_lazy());
  }
  if (r.has_criu_restore()) {
    const auto& x = r.criu_restore();
    out += fmt::format("  CRIU restore forking {:.1f} ms, restore {:.1f} ms; pages restored {}\n", x.forking_ms(),
                       x.restore_ms(), x.pages_restored());
  }
  if (!r.convergence().empty()) out += fmt::format("  warm-up     {}\n", r.convergence());
  if (restores_lazily(r.method()))
    out += fmt::format("  post-copy   {:.1f} ms after the restore: {} pages faulted, {} pushed ({}); faults p50 {:.2f} / "
                       "p99 {:.2f} / max {:.2f} ms\n",
                       r.postcopy_ms(), r.pages_faulted(), r.pages_pushed(), human_bytes(r.bytes_postcopy()),
                       r.fault_p50_ms(), r.fault_p99_ms(), r.fault_max_ms());
  if (r.link_recoveries() > 0)
    out += fmt::format("  page link   lost and opened again {} time(s), {:.0f} ms without pages in all\n",
                       r.link_recoveries(), r.link_down_ms());
  if (r.method() == pb::HYBRID)
    out += fmt::format("  hybrid      {} pages unchanged since the last warm-up round: not sent again\n",
                       r.pages_unchanged());
  if (r.throttle_max_pct() > 0) out += fmt::format("  throttle    up to {}% CPU taken (auto-converge), lifted\n", r.throttle_max_pct());
  if (r.rounds_size() > 0) {
    out += fmt::format("  {:>5}  {:<7} {:>10} {:>10} {:>8} {:>8} {:>7} {:>8} {:>10} {:>10} {:>4}\n", "round", "kind", "ms",
                       "dump ms", "full", "xor", "ref", "skipped", "raw", "wire", "thr%");
    for (auto& x : r.rounds())
      out += fmt::format("  {:>5}  {:<7} {:>10.1f} {:>10.1f} {:>8} {:>8} {:>7} {:>8} {:>10} {:>10} {:>4}\n", x.index(),
                         x.kind(), x.duration_ms(), x.checkpoint_ms(), x.pages_full(), x.pages_xor(), x.pages_ref(),
                         x.pages_skipped(), human_bytes(x.bytes_raw()), human_bytes(x.bytes_wire()), x.throttle_pct());
  }
  return out;
}

std::string status_json(const pb::StatusReply& s) {
  json migrations = json::array();
  for (auto& r : s.migrations()) migrations.push_back(report_to_json(r));
  json caps = {{"runtimes", json(std::vector<std::string>(s.caps().runtimes().begin(), s.caps().runtimes().end()))},
               {"methods", json(std::vector<std::string>(s.caps().methods().begin(), s.caps().methods().end()))},
               {"criu_version", s.caps().criu_version()},
               {"kernel", s.caps().kernel()},
               {"arch", s.caps().arch()},
               {"dirty_tracking", s.caps().dirty_tracking()},
               {"userfaultfd", s.caps().userfaultfd()},
               {"own_netns", s.caps().own_netns()},
               {"nftables_lock", s.caps().nftables_lock()}};
  json j = {{"node", s.node()}, {"uptime_s", ms3(s.uptime_s())}, {"capabilities", caps}, {"migrations", migrations}};
  return json_text(j);
}

std::string status_table(const pb::StatusReply& s) {
  const auto& c = s.caps();
  std::string out = fmt::format(
      "node {}  up {:.0f} s  criu {}  kernel {} {}  dirty tracking {}  userfaultfd {}  own netns {}  nftables lock {}\n",
      s.node(), s.uptime_s(), c.criu_version(), c.kernel(), c.arch(), c.dirty_tracking() ? "yes" : "no",
      c.userfaultfd() ? "yes" : "no", c.own_netns() ? "yes" : "no", c.nftables_lock() ? "yes" : "no");
  if (s.migrations_size() == 0) return out + "no migrations\n";
  out += fmt::format("{:<16} {:<16} {:<10} {:<10} {:<8} {:<12} {:<12} {:>12}\n", "id", "container", "source",
                     "dest", "method", "result", "phase", "downtime ms");
  for (auto& r : s.migrations())
    out += fmt::format("{:<16} {:<16} {:<10} {:<10} {:<8} {:<12} {:<12} {:>12.3f}\n", r.id(), r.container(),
                       r.source(), r.destination(), method_name(r.method()),
                       result_name(r.result()), r.phase(), r.downtime_ms());
  return out;
}

std::string history_json(const pb::HistoryReply& h) {
  json migrations = json::array();
  for (auto& r : h.migrations()) migrations.push_back(report_to_json(r));
  json j = {{"node", h.node()}, {"migrations", migrations}};
  return json_text(j);
}

std::string history_table(const pb::HistoryReply& h) {
  if (h.migrations_size() == 0) return "no past migrations on " + h.node() + "\n";
  std::string out = fmt::format("{:<20} {:<16} {:<16} {:<10} {:<10} {:<8} {:<12} {:>12}\n", "started (UTC)", "id",
                                "container", "source", "dest", "method", "result", "downtime ms");
  for (auto& r : h.migrations()) {
    const std::time_t t = std::time_t(r.started_unix_ms() / 1000);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char when[32];
    std::strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", &tm);
    // (A destination's report has no downtime: the source measures it.)
    const std::string downtime = r.downtime_ms() > 0 ? fmt::format("{:.3f}", r.downtime_ms()) : "-";
    out += fmt::format("{:<20} {:<16} {:<16} {:<10} {:<10} {:<8} {:<12} {:>12}\n", when, r.id(), r.container(),
                       r.source(), r.destination(), method_name(r.method()), result_name(r.result()), downtime);
  }
  return out;
}

std::string measure_json(const pb::MeasureReply& m) {
  json j = {{"container", m.container()},
            {"interval_ms", ms3(m.interval_ms())},
            {"pages", m.pages()},
            {"pages_changed", m.pages_changed()},
            {"dirty_mib_s", ms3(m.dirty_mib_s())},
            {"checkpoint_ms", ms3(m.checkpoint_ms())},
            {"bytes_image", m.bytes_image()},
            {"bandwidth_mib_s", ms3(m.bandwidth_mib_s())},
            {"predicted_cold_downtime_ms", ms3(m.predicted_cold_downtime_ms())},
            {"predicted_precopy_downtime_ms", ms3(m.predicted_precopy_downtime_ms())},
            {"preflight", m.preflight()}};
  return json_text(j);
}

std::string failure_json(const error& e, int exit_code) {
  json j = {{"ok", false}, {"error", e.message}, {"code", std::string(to_string(e.code))}, {"exit_code", exit_code}};
  return j.dump(-1, ' ', false, json::error_handler_t::replace);  // (an error may quote any bytes)
}

std::string reply_json(const pb::Reply& r) {
  json j = {{"ok", r.ok()}, {"id", r.migration_id()}, {"code", int(r.code())}, {"message", r.message()}};
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string measure_table(const pb::MeasureReply& m) {
  std::string out = fmt::format("{}: {} of {} pages changed in {:.0f} ms: dirty rate {:.2f} MiB/s\n", m.container(),
                                m.pages_changed(), m.pages(), m.interval_ms(), m.dirty_mib_s());
  out += fmt::format("  checkpoint  {:.1f} ms for {}\n", m.checkpoint_ms(), human_bytes(m.bytes_image()));
  if (m.bandwidth_mib_s() > 0)
    out += fmt::format("  link        {:.1f} MiB/s\n  predicted downtime: cold {:.0f} ms, precopy {:.0f} ms\n",
                       m.bandwidth_mib_s(), m.predicted_cold_downtime_ms(), m.predicted_precopy_downtime_ms());
  if (!m.preflight().empty()) out += fmt::format("  cannot move its process state: {}\n", m.preflight());
  return out;
}

std::string transfer_line(const pb::Progress& p, double phase_start_ms) {
  const double seconds = (p.elapsed_ms() - phase_start_ms) / 1000.0;
  const double rate = seconds > 0 ? p.bytes_done() / seconds : 0;  // bytes per second
  std::string line = human_bytes(p.bytes_done());
  // (The total is the daemon's estimate: a stream's framing may pass it.)
  const bool known = p.bytes_total() > 0;
  const auto done = std::min(p.bytes_done(), p.bytes_total());
  if (known)
    line += fmt::format(" of {} ({:.0f}%)", human_bytes(p.bytes_total()), 100.0 * done / p.bytes_total());
  else
    line += " sent";
  if (rate > 0) {
    line += fmt::format(", {}/s", human_bytes(static_cast<std::uint64_t>(rate)));
    if (known) line += fmt::format(", {:.0f} s left", std::ceil((p.bytes_total() - done) / rate));
  }
  return line;
}

void progress_printer::started(const std::string& id, const std::string& container, const std::string& to,
                               const std::string& method, bool interruptible) {
  if (!enabled_) return;
  std::fprintf(stderr, "migration %s: %s to %s, %s%s\n", id.c_str(), container.c_str(), to.c_str(), method.c_str(),
               interruptible ? " (Ctrl-C: abort or detach)" : "");
  std::fflush(stderr);
}

void progress_printer::show(const pb::Progress& p) {
  if (!enabled_) return;
  if (p.phase() != phase_) {
    if (in_place_) std::fputc('\n', stderr);
    in_place_ = false;
    phase_ = p.phase();
    phase_start_ms_ = p.elapsed_ms();
    std::fprintf(stderr, "%9.1f ms  %-10s %s\n", p.elapsed_ms(), p.phase().c_str(), p.detail().c_str());
  } else if (p.bytes_done() > 0) {
    // (\033[K: the rest of a longer line before goes)
    std::fprintf(stderr, "\r%9.1f ms  %-10s %s\033[K", p.elapsed_ms(), p.phase().c_str(),
                 transfer_line(p, phase_start_ms_).c_str());
    in_place_ = true;
  }
  std::fflush(stderr);
}

void progress_printer::finish() {
  if (in_place_) std::fputc('\n', stderr);
  in_place_ = false;
}

}  // namespace migrated::ctl
