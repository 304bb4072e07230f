// --method auto: measure, then choose, and say why in the report.
//
// Process state is worth keeping whenever CRIU can take it: the choice
// between cold and pre-copy follows measure.hpp's predictions (dirty rate,
// image size, link bandwidth). When pre-copy cannot reach its target —
// its final round would take longer on the link than
// precopy.final_transfer_ms, or the container dirties memory as fast as
// the link carries it, so that only throttling would get there — and both
// nodes can (runc, userfaultfd), post-copy moves the process first
// instead: its downtime does not depend on the dirty rate. When a live checkpoint is impossible (CRIU
// refuses the container), the filesystem methods remain: replay when the
// container names a replay hook (its state can be rebuilt), otherwise diff
// (the writable layer; the image goes along peer to peer if missing, which
// costs no more than full's committed image would).
#include <fmt/format.h>

#include "common/log.hpp"
#include "common/names.hpp"
#include "migration/measure.hpp"
#include "migration/source_session.hpp"

namespace migrated::migration {
namespace {

std::shared_ptr<spdlog::logger> logger() { return log::get("migration"); }

// Pre-copy must beat cold clearly to be worth its warm-up rounds.
constexpr double precopy_advantage = 0.8;

std::uint64_t tree_bytes(const std::filesystem::path& root) {
  std::uint64_t bytes = 0;
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(root, ec); !ec && it != decltype(it)(); it.increment(ec))
    if (it->is_regular_file(ec)) bytes += it->file_size(ec);
  return bytes;
}

}  // namespace

awaitable<result<void>> source_session::choose_method() {
  if (req_.method() != pb::AUTO) co_return result<void>{};
  enter(state::measuring, "auto: measuring");
  const auto& c = copy_->container();
  pb::MeasureRequest mr;
  mr.set_container(req_.container());
  mr.set_runtime(stats_.runtime);
  mr.set_destination(req_.destination());
  // What cannot move with the process (its network) needs no measuring.
  const auto carried = can_move_process();
  result<pb::MeasureReply> m = std::unexpected(carried ? error{} : carried.error());
  if (carried) m = co_await measure(ctx_, mr);  // (not in ?:, see design.md)
  if (m) stats_.warmup_frozen_ms += 2 * m->checkpoint_ms();  // its two dumps froze the service
  std::string why;
  if (m) {
    const bool pre = m->predicted_precopy_downtime_ms() < precopy_advantage * m->predicted_cold_downtime_ms();
    req_.set_method(pre ? pb::PRECOPY : pb::COLD);
    why = fmt::format("live checkpoint works ({:.0f} ms, {:.1f} MiB image); dirty rate {:.1f} MiB/s, link {:.1f} MiB/s: "
                      "predicted downtime precopy {:.0f} ms vs cold {:.0f} ms",
                      m->checkpoint_ms(), double(m->bytes_image()) / 1048576.0, m->dirty_mib_s(),
                      m->bandwidth_mib_s(), m->predicted_precopy_downtime_ms(), m->predicted_cold_downtime_ms());
    // (The prediction is two dumps' time plus the final round on the link.)
    const double final_round_ms = m->predicted_precopy_downtime_ms() - 2 * m->checkpoint_ms();
    const bool outruns = m->bandwidth_mib_s() > 0 && m->dirty_mib_s() >= m->bandwidth_mib_s();
    const bool lazy = !copy_->rt().has_images() && offers(ctx_.me.caps, pb::POSTCOPY) &&
                      offers(peer_->peer.caps(), pb::POSTCOPY);
    if (lazy && (outruns || final_round_ms > double(ctx_.cfg.precopy.final_transfer_ms))) {
      req_.set_method(pb::POSTCOPY);
      why += outruns ? "; it dirties memory as fast as the link carries it, so pre-copy would only converge by "
                       "throttling it: post-copy"
                     : fmt::format("; pre-copy's final round would take {:.0f} ms on the link, over "
                                   "precopy.final_transfer_ms ({} ms): post-copy",
                                   final_round_ms, ctx_.cfg.precopy.final_transfer_ms);
    }
  } else if (m.error().code == errc::criu || m.error().code == errc::runtime || m.error().code == errc::unsupported) {
    const bool hook = c.labels.contains("migrated.replay");
    const auto root = c.bundle;
    const double layer_mib = double(co_await offload(ctx_.pool, [&root] { return tree_bytes(root); })) / 1048576.0;
    req_.set_method(hook ? pb::REPLAY : pb::DIFF);
    why = fmt::format("no live checkpoint ({}); {}, writable layer {:.1f} MiB", m.error().message,
                      hook ? "the container has a replay hook (migrated.replay)" : "no replay hook: moving the writable layer",
                      layer_mib);
  } else {
    co_return std::unexpected(m.error().context("auto: measure"));
  }
  stats_.method = req_.method();
  stats_.method_reason = why;
  log::info(*logger(), id_, phase::measure, "auto chose {}: {}", method_name(req_.method()), why);
  co_return result<void>{};
}

}  // namespace migrated::migration
