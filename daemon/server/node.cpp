// Node start-up and shutdown (see node.hpp).
#include "server/node.hpp"

#include <sys/utsname.h>
#include <systemd/sd-daemon.h>

#include <boost/asio/signal_set.hpp>

#include "common/log.hpp"
#include "criu/cgroup_yard.hpp"
#include "criu/criu.hpp"
#include "criu/page_pipes.hpp"
#include "migration/context.hpp"
#include "migration/journal_recovery.hpp"
#include "server/http_server.hpp"
#include "server/tcp_server.hpp"
#include "transport/tls.hpp"
#include "server/udp_server.hpp"

namespace migrated::server {
namespace {

std::shared_ptr<spdlog::logger> logger() { return log::get("main"); }

// How long a graceful stop waits for running migrations before it gives up
// (systemd's TimeoutStopSec is longer).
constexpr auto drain_limit = std::chrono::seconds(140);

result<asio::ip::address> listen_address(const endpoint& at, std::string_view key) {
  boost::system::error_code ec;
  auto addr = asio::ip::make_address(at.host, ec);
  if (ec) return fail(errc::config, std::string(key) + ": '" + at.host + "' is not an IP address");
  return addr;
}

result<tcp::acceptor> bind_tcp(asio::any_io_executor ex, const endpoint& at, std::string_view key = "listen.tcp") {
  auto addr = listen_address(at, key);
  if (!addr) return std::unexpected(addr.error());
  boost::system::error_code ec;
  tcp::acceptor acc(ex);
  tcp::endpoint ep(*addr, at.port);
  acc.open(ep.protocol(), ec);
  if (!ec) acc.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) acc.bind(ep, ec);
  if (!ec) acc.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return fail(errc::config, std::string(key) + ": listen on tcp " + at.to_string() + ": " + ec.message());
  return acc;
}

result<udp::socket> bind_udp(asio::any_io_executor ex, const endpoint& at) {
  auto addr = listen_address(at, "listen.udp");
  if (!addr) return std::unexpected(addr.error());
  boost::system::error_code ec;
  udp::socket s(ex);
  udp::endpoint ep(*addr, at.port);
  s.open(ep.protocol(), ec);
  if (!ec) s.bind(ep, ec);
  if (ec) return fail(errc::config, "listen on udp " + at.to_string() + ": " + ec.message());
  return s;
}

pb::Capabilities capabilities(const criu::features& f, const runtime::runtime_set& runtimes) {
  pb::Capabilities c;
  for (auto& name : runtimes.names()) c.add_runtimes(name);
  for (auto m : {"cold", "precopy", "diff", "full", "replay", "auto"}) c.add_methods(m);
  // Post-copy restores through userfaultfd and dumps with a CRIU that
  // takes its page socket from the configuration file (scripts/criu/0002).
  if (f.userfaultfd && f.own_netns) {
    c.add_methods("postcopy");
    c.add_methods("hybrid");
  }
  c.set_criu_version(f.version);
  c.set_dirty_tracking(f.dirty_tracking);
  c.set_userfaultfd(f.userfaultfd);
  c.set_own_netns(f.own_netns);
  c.set_nftables_lock(f.own_netns && f.nftables_lock);
  c.set_tmpfs_plain_tar(f.tmpfs_plain_tar);
  utsname u{};
  if (::uname(&u) == 0) {
    c.set_kernel(u.release);
    c.set_arch(u.machine);
  }
  return c;
}

// Images of an outgoing migration that survived a crash may be the only
// copy of a container's state: never delete them, tell the operator.
// This node's certificate must name it, as a peer: a daemon started with
// another node's or a controller's certificate would be somebody else.
result<credentials> load_identity(const config& cfg) {
  auto creds = credentials::load({cfg.tls.ca, cfg.tls.cert, cfg.tls.key});
  if (!creds) return std::unexpected(creds.error());
  const auto& self = creds->self();
  if (self.name != cfg.node_name)
    return fail(errc::config, "tls.cert " + cfg.tls.cert.string() + " is the certificate of " + self.name +
                                  ", but this node is " + cfg.node_name + " (node:)");
  if (self.role != node_role::peer)
    return fail(errc::config, "tls.cert " + cfg.tls.cert.string() + " is a controller's certificate; a daemon needs "
                                  "a peer's (scripts/migrated-ca issue DIR " + cfg.node_name + ")");
  return creds;
}

// images, lazy_images: directories of the daemon's own (made 0700 when
// missing): images hold containers' memory or registers and descriptors,
// so one that others can read, such as /dev/shm itself, is refused rather
// than narrowed.
result<void> open_own_dir(std::string_view key, const std::filesystem::path& dir) {
  namespace fs = std::filesystem;
  const std::string what = std::string(key) + " " + dir.string();
  std::error_code ec;
  if (!fs::exists(dir, ec)) {
    fs::create_directories(dir, ec);
    if (!ec) fs::permissions(dir, fs::perms::owner_all, fs::perm_options::replace, ec);
    if (ec) return fail(errc::config, what + ": " + ec.message());
  }
  const auto st = fs::status(dir, ec);
  if (ec || !fs::is_directory(st)) return fail(errc::config, what + ": " + (ec ? ec.message() : "not a directory"));
  if ((st.permissions() & (fs::perms::group_all | fs::perms::others_all)) != fs::perms::none)
    return fail(errc::config, what + ": others may read it, and images hold containers' state; name a directory "
                                     "of its own (e.g. /dev/shm/migrated), which the daemon makes 0700");
  return {};
}

void report_leftovers(const config& cfg) {
  std::error_code ec;
  for (auto& e : std::filesystem::directory_iterator(cfg.images_root() / "outgoing", ec))
    for (auto& round : std::filesystem::directory_iterator(e.path(), ec))
      if (round.path().filename().string().rfind("round-", 0) == 0)
        logger()->warn("images of an unfinished migration are kept in {}", round.path().string());
  std::filesystem::remove_all(cfg.images_root() / "incoming", ec);
  // A lazy dump ends with the daemon that ran it: its images are of no use
  // to anyone now (a post-copy taken up again dumps the frozen copy anew).
  std::filesystem::remove_all(cfg.lazy_images_dir / "outgoing", ec);
}

// The graceful stop (SIGTERM, what systemd sends): no new connections or
// commands; every running migration is cancelled — a source rolls back
// what it cannot finish, a destination removes its uncommitted copy and
// tells the source, a commit exchange in flight is finished — and the node
// waits for all of them, then for the controllers' last reports to go out.
awaitable<void> stop_gracefully(const config& cfg, tcp_server& tcp, std::optional<udp_server>& udp, commands& cmds,
                                migration::registry& registry) {
  sd_notify(0, "STOPPING=1");
  tcp.stop();
  if (udp) udp->stop();
  cmds.drain();
  const auto running = registry.running();
  if (running) logger()->info("{} migration(s) running: giving them up", running);
  registry.stop_all(cfg.node_name + " is stopping");
  asio::steady_timer tick(co_await asio::this_coro::executor);
  const auto deadline = std::chrono::steady_clock::now() + drain_limit;
  while ((registry.running() || !cmds.idle() || tcp.following()) && std::chrono::steady_clock::now() < deadline) {
    tick.expires_after(std::chrono::milliseconds(50));
    boost::system::error_code ec;
    co_await tick.async_wait(asio::redirect_error(use_awaitable, ec));
  }
  if (registry.running()) logger()->error("stopped with {} migration(s) still running", registry.running());
  else logger()->info("stopped");
}

}  // namespace

awaitable<int> run_node(const config& cfg, asio::thread_pool& pool) {
  auto ex = co_await asio::this_coro::executor;
  auto fatal = [](const error& e) {
    logger()->critical("{}", e.message);
    return 1;
  };
  auto creds = load_identity(cfg);
  if (!creds) co_return fatal(creds.error());
  auto tls = transport::make_tls_context(*creds);
  if (!tls) co_return fatal(tls.error());
  std::error_code ec;
  std::filesystem::create_directories(cfg.storage_dir, ec);
  if (ec) co_return fatal(error{errc::config, "storage " + cfg.storage_dir.string() + ": " + ec.message()});
  if (!cfg.images_dir.empty())
    if (auto ok = open_own_dir("images", cfg.images_dir); !ok) co_return fatal(ok.error());
  if (auto ok = open_own_dir("lazy_images", cfg.lazy_images_dir); !ok) co_return fatal(ok.error());
  migration::journal::store journal(cfg.storage_dir / "journal");
  if (auto ok = journal.open(); !ok) co_return fatal(ok.error());
  migration::history past(cfg.storage_dir / "history");
  if (auto ok = past.open(); !ok) co_return fatal(ok.error());

  auto features = co_await criu::detect(cfg.criu.binary);
  if (!features.usable)
    co_return fatal(error{errc::unsupported, "CRIU at '" + cfg.criu.binary.string() + "' is not usable: " + features.problem});
  auto yard = criu::make_cgroup_yard(cfg.storage_dir / "criu" / "cgroup-yard");
  if (!yard)
    logger()->info("CRIU mounts a view of every cgroup hierarchy on each dump and restore: {}", yard.error().message);
  // runc always asks CRIU to leave a container's network namespace empty;
  // the overrides undo that when this CRIU can (scripts/criu/0002).
  auto criu_env = criu::write_overrides(cfg.storage_dir / "criu", features, yard ? *yard : std::filesystem::path{});
  if (!criu_env) co_return fatal(criu_env.error());
  if (!features.own_netns)
    logger()->warn("CRIU {} does not accept \"empty-ns none\" (scripts/criu/0002): a container with a network "
                   "namespace of its own arrives without its network (loopback down, TCP connections refused)",
                   features.version);
  runtime::runtime_set runtimes;
  for (std::string_view name : {"runc", "docker"}) {
    if (name == "docker" && !cfg.docker.enabled) continue;
    auto rt = co_await runtime::make_runtime(name, cfg, pool, *criu_env);
    if (!rt) co_return fatal(rt.error());
    runtimes.add(std::move(*rt));
  }

  auto tcp_acc = bind_tcp(ex, cfg.listen_tcp);
  if (!tcp_acc) co_return fatal(tcp_acc.error());
  std::optional<udp::socket> udp_sock;
  if (cfg.listen_udp) {
    auto s = bind_udp(ex, *cfg.listen_udp);
    if (!s) co_return fatal(s.error());
    udp_sock.emplace(std::move(*s));
  }
  std::optional<tcp::acceptor> http_acc;
  if (cfg.http.listen) {
    auto acc = bind_tcp(ex, *cfg.http.listen, "http.listen");
    if (!acc) co_return fatal(acc.error());
    http_acc.emplace(std::move(*acc));
  }
  migration::registry registry(cfg.node_name);
  registry.keep_history(&past);
  migration::metrics counted(MIGRATED_VERSION);
  registry.count_in(&counted);
  migration::admission slots(ex, cfg.max_concurrent_migrations);
  migration::page_links links;
  migration::page_links resumes("resumed session");
  migration::node_context ctx{cfg,
                              std::move(*creds),
                              std::move(*tls),
                              {cfg.node_name, pb::ROLE_DAEMON, capabilities(features, runtimes)},
                              pool,
                              runtimes,
                              registry,
                              slots,
                              &journal,
                              &links,
                              &resumes};
  // Before anyone is served: what a crash left half done (journal_recovery.hpp).
  auto resumable = co_await migration::recover_journal(ctx);
  report_leftovers(cfg);
  commands cmds(ctx, ex);
  for (const auto& e : resumable) cmds.resume_postcopy(e);
  tcp_server tcp(ctx, cmds, std::move(*tcp_acc));
  std::optional<udp_server> udp;
  if (udp_sock) udp.emplace(ctx, cmds, std::move(*udp_sock));
  std::optional<http_server> http;
  if (http_acc) http.emplace(cfg.node_name, registry, counted, std::move(*http_acc), cfg.http.connections);

  // The node runs until a signal, or until a listener fails: a node that no
  // longer listens stops (exit 1) so that systemd restarts it.
  asio::steady_timer stop(ex, asio::steady_timer::time_point::max());
  int exit_code = 0;
  auto on_listener_end = [&](std::string_view which) {
    return [&, which](std::exception_ptr e) {
      if (!e) return;
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& ex) {
        logger()->critical("{} listener crashed: {}", which, ex.what());
      } catch (...) {
        logger()->critical("{} listener crashed", which);
      }
      exit_code = 1;
      stop.cancel();
    };
  };
  asio::co_spawn(ex, tcp.run(), on_listener_end("tcp"));
  if (udp) asio::co_spawn(ex, udp->run(), on_listener_end("udp"));
  if (http) asio::co_spawn(ex, http->run(), on_listener_end("http"));

  std::string rts;
  for (auto& n : runtimes.names()) rts += (rts.empty() ? "" : ", ") + n;
  logger()->info("{} listening on tcp {}{}{} (runtimes {}; criu {}, dirty tracking {}, userfaultfd {}, own netns {}; "
                 "{} pool threads, {} concurrent migrations)",
                 cfg.node_name, cfg.listen_tcp.to_string(), cfg.listen_udp ? ", udp " + cfg.listen_udp->to_string() : "",
                 cfg.http.listen ? ", http " + cfg.http.listen->to_string() : "",
                 rts, features.version, features.dirty_tracking ? "yes" : "no", features.userfaultfd ? "yes" : "no",
                 features.own_netns ? "yes" : "no", cfg.pool_threads, cfg.max_concurrent_migrations);
  if (features.page_pipe_bytes < criu::page_pipe_max_bytes)
    logger()->warn("CRIU's page pipes hold {} KiB here (fs.pipe-max-size, and no CAP_SYS_RESOURCE): collecting a "
                   "frozen container's memory takes up to {}x the round trips; raise fs.pipe-max-size to {} "
                   "(the package's /usr/lib/sysctl.d/60-migrated.conf)",
                   features.page_pipe_bytes >> 10, criu::page_pipe_max_bytes / features.page_pipe_bytes,
                   criu::page_pipe_max_bytes);
  sd_notify(0, "READY=1");

  asio::signal_set signals(ex, SIGTERM, SIGINT);
  signals.async_wait([&](boost::system::error_code ec, int sig) {
    if (ec) return;
    logger()->info("signal {}: stopping", sig);
    stop.cancel();
  });
  boost::system::error_code stop_ec;
  co_await stop.async_wait(asio::redirect_error(use_awaitable, stop_ec));
  signals.cancel();
  if (http) http->stop();
  co_await stop_gracefully(cfg, tcp, udp, cmds, registry);
  co_return exit_code;
}

}  // namespace migrated::server
