// Measurement of a container's dirty rate and the link to a peer (see
// measure.hpp). The two dumps go to a scratch directory removed afterwards,
// on the pool.
#include "migration/measure.hpp"

#include "common/auth.hpp"
#include "common/unique_fd.hpp"
#include "images/delta.hpp"
#include "migration/destination.hpp"
#include "migration/stopwatch.hpp"

namespace migrated::migration {
namespace {

constexpr std::uint32_t default_interval_ms = 1000;
constexpr std::uint32_t max_interval_ms = 60000;
constexpr std::uint64_t probe_bytes = 16u << 20;     // long enough to fill a 1 Gbit link for ~0.1 s
constexpr std::uint32_t probe_frame_bytes = 1u << 20;

// Pages of `second` that differ from `first`, over every process.
result<images::delta_stats> compare_dumps(const std::filesystem::path& first, const std::filesystem::path& second) {
  auto before = images::read_all_page_sets(first);
  if (!before) return std::unexpected(before.error());
  auto after = images::read_all_page_sets(second);
  if (!after) return std::unexpected(after.error());
  images::delta_stats total;
  for (auto& cur : *after) {
    auto cur_fd = open_readonly(second / cur.pages_name);
    if (!cur_fd) return std::unexpected(cur_fd.error());
    images::previous_dump prev;
    unique_fd prev_fd;
    images::page_hashes prev_hashes;
    for (auto& p : *before) {
      if (p.pagemap_name != cur.pagemap_name) continue;
      auto fd = open_readonly(first / p.pages_name);
      if (!fd) return std::unexpected(fd.error());
      prev_fd = std::move(*fd);
      auto h = images::hash_pages_file(p, prev_fd.get());
      if (!h) return std::unexpected(h.error());
      prev_hashes = std::move(h->hashes);
      prev = {&p, &prev_hashes, prev_fd.get()};
    }
    auto discard = [](std::span<const std::uint8_t>) -> result<void> { return {}; };
    auto r = images::encode_delta(prev, cur, cur_fd->get(), 1u << 20, discard);
    if (!r) return std::unexpected(r.error());
    total.pages += r->stats.pages;
    total.full += r->stats.full;
    total.xor_pages += r->stats.xor_pages;
    total.ref += r->stats.ref;
    total.same += r->stats.same;
    total.zero += r->stats.zero;
    total.bytes_raw += r->stats.bytes_raw;
    total.bytes_delta += r->stats.bytes_delta;
  }
  return total;
}

awaitable<result<double>> probe_bandwidth(node_context& ctx, const std::string& destination) {
  auto ch = co_await connect_destination(ctx, destination);
  if (!ch) co_return std::unexpected(ch.error());
  const auto payload = auth::random_bytes(probe_frame_bytes);  // random: compression cannot help
  stopwatch sw;
  for (std::uint64_t sent = 0; sent < probe_bytes; sent += probe_frame_bytes) {
    pb::Envelope env;
    env.mutable_probe()->set_bytes(probe_bytes);
    if (auto ok = co_await ch->send(env, payload); !ok) co_return std::unexpected(ok.error());
  }
  auto r = co_await transport::expect_reply(*ch, "bandwidth probe", ctx.cfg.timeouts.io);
  if (!r) co_return std::unexpected(r.error());
  ch->close();
  co_return double(probe_bytes) / 1048576.0 / (sw.ms() / 1000.0);
}

}  // namespace

namespace {

// What would keep the process state from moving, though the dumps work.
std::string preflight(const runtime::container_info& c, bool criu_keeps_netns) {
  if (!c.own_netns) return {};
  if (!c.netns_links.empty()) {
    std::string links;
    for (const auto& l : c.netns_links) links += (links.empty() ? "" : ", ") + l;
    return "its network namespace has interfaces CRIU cannot recreate (" + links + ")";
  }
  if (!criu_keeps_netns) return "this node's CRIU cannot carry its network namespace (scripts/criu/0002)";
  return {};
}

// The measurement itself, with its dumps in `dir`.
awaitable<result<pb::MeasureReply>> measure_in(node_context& ctx, const pb::MeasureRequest& req,
                                               const std::filesystem::path& dir) {
  auto found = co_await ctx.runtimes.locate(req.container(), req.runtime());
  if (!found) co_return std::unexpected(found.error());
  runtime::runtime* rt = found->rt;
  const auto& status = found->container.status;
  if (status != "running")
    co_return fail(errc::invalid_argument, "container " + req.container() + " is " + status + ", not running");
  const std::uint32_t interval = req.interval_ms() ? std::min(req.interval_ms(), max_interval_ms) : default_interval_ms;
  auto made = co_await offload(ctx.pool, [&dir]() -> result<void> {
    std::error_code ec;
    for (auto sub : {"1", "2", "work"}) std::filesystem::create_directories(dir / sub, ec);
    if (ec) return fail(errc::io, "create " + dir.string() + ": " + ec.message());
    return {};
  });
  if (!made) co_return std::unexpected(made.error());

  // Dumps never restored: locked the cheaper way whenever this CRIU can.
  const bool netns = runtime::carries_netns(found->container);
  const runtime::checkpoint_request first{.image_dir = dir / "1",
                                          .work_dir = dir / "work",
                                          .leave_running = true,
                                          .carry_netns = netns,
                                          .nftables_lock = true};
  const auto t1 = stopwatch::clock::now();
  if (auto ok = co_await rt->checkpoint(req.container(), first); !ok) co_return std::unexpected(ok.error());
  asio::steady_timer wait(co_await asio::this_coro::executor, t1 + std::chrono::milliseconds(interval));
  co_await wait.async_wait(use_awaitable);
  const runtime::checkpoint_request second{.image_dir = dir / "2",
                                           .work_dir = dir / "work",
                                           .leave_running = true,
                                           .carry_netns = netns,
                                           .nftables_lock = true};
  const auto t2 = stopwatch::clock::now();
  if (auto ok = co_await rt->checkpoint(req.container(), second); !ok) co_return std::unexpected(ok.error());
  const double dump_ms = stopwatch::between(t2, stopwatch::clock::now());
  auto stats = co_await offload(ctx.pool, [&] { return compare_dumps(dir / "1", dir / "2"); });
  if (!stats) co_return std::unexpected(stats.error());

  pb::MeasureReply m;
  m.set_container(req.container());
  m.set_preflight(preflight(found->container, ctx.me.caps.own_netns()));
  m.set_interval_ms(stopwatch::between(t1, t2));
  m.set_pages(stats->pages);
  m.set_pages_changed(stats->full + stats->xor_pages + stats->ref);
  m.set_dirty_mib_s(double(m.pages_changed()) * 4096 / 1048576.0 / (m.interval_ms() / 1000.0));
  m.set_checkpoint_ms(dump_ms);
  const std::uint64_t image_bytes = co_await offload(ctx.pool, [&dir] {
    std::uint64_t bytes = 0;
    std::error_code ec;
    for (auto& e : std::filesystem::directory_iterator(dir / "2", ec))
      if (e.is_regular_file()) bytes += e.file_size(ec);
    return bytes;
  });
  m.set_bytes_image(image_bytes);
  if (!req.destination().empty()) {
    auto bw = co_await probe_bandwidth(ctx, req.destination());
    if (!bw) co_return std::unexpected(bw.error().context("bandwidth to " + req.destination()));
    m.set_bandwidth_mib_s(*bw);
    // Restore costs about what the dump did; the link decides the rest.
    const double mib_per_ms = *bw / 1000.0;
    const double image_mib = double(image_bytes) / 1048576.0;
    m.set_predicted_cold_downtime_ms(2 * dump_ms + image_mib / mib_per_ms);
    // The final pre-copy round carries what is dirtied while the last
    // warm-up round and the final dump run (about two dumps' time).
    const double final_mib = m.dirty_mib_s() * (2 * dump_ms / 1000.0);
    m.set_predicted_precopy_downtime_ms(2 * dump_ms + final_mib / mib_per_ms);
  }
  co_return m;
}

}  // namespace

awaitable<result<pb::MeasureReply>> measure(node_context& ctx, const pb::MeasureRequest& req) {
  const auto dir = ctx.cfg.images_root() / "measure" / ("m-" + to_hex(auth::random_bytes(6)));
  auto m = co_await measure_in(ctx, req, dir);
  co_await offload(ctx.pool, [&dir] {  // two whole dumps: not on the I/O thread
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  });
  co_return m;
}

awaitable<result<void>> answer_probe(transport::channel& ch, const transport::frame& first) {
  const std::uint64_t total = first.msg.probe().bytes();
  if (total > (1ull << 30)) co_return fail(errc::invalid_argument, "probe larger than 1 GiB");
  std::uint64_t got = first.payload.size();
  while (got < total) {
    auto f = co_await ch.recv();
    if (!f) co_return std::unexpected(f.error().context("bandwidth probe"));
    if (!f->msg.has_probe()) co_return fail(errc::protocol, "bandwidth probe: unexpected message");
    got += f->payload.size();
  }
  co_return co_await ch.reply(first.msg.request_id(), {});
}

}  // namespace migrated::migration
