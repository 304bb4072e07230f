// runc backend. Every call is a `runc` child process, awaited; failures
// carry runc's last stderr line and, for checkpoint/restore, the Error lines
// of CRIU's log from the work directory.
#include "runtime/runc.hpp"

#include <signal.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "criu/criu.hpp"
#include "process/process.hpp"

namespace migrated::runtime {
namespace {

using json = nlohmann::json;

bool mentions_missing(const process::result_of_run& r) {
  const std::string& e = r.err;
  return e.find("does not exist") != std::string::npos || e.find("not found") != std::string::npos ||
         e.find("not exist") != std::string::npos;
}

// The msg="…" of the last level=error line of a runc --log file.
std::string last_error_line(const std::filesystem::path& log) {
  std::ifstream in(log);
  std::string line, last;
  while (std::getline(in, line))
    if (line.find("level=error") != std::string::npos) last = line;
  auto pos = last.find("msg=\"");
  if (pos == std::string::npos) return last;
  auto end = last.rfind('"');
  std::string msg = end > pos + 5 ? last.substr(pos + 5, end - pos - 5) : last;
  for (auto nl = msg.find("\\n"); nl != std::string::npos; nl = msg.find("\\n", nl)) msg.replace(nl, 2, "; ");
  return msg;
}

// CRIU writes netdev-<ns>.img only when it dumped a network namespace whole.
bool holds_netns(const std::filesystem::path& images) {
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(images, ec))
    if (e.path().filename().string().rfind("netdev-", 0) == 0) return true;
  return false;
}

// The interfaces of process `pid`'s network namespace but loopback, from
// /proc/<pid>/net/dev ("  eth0: 1234 ...").
std::vector<std::string> links_of(int pid) {
  std::vector<std::string> links;
  std::ifstream in("/proc/" + std::to_string(pid) + "/net/dev");
  std::string line;
  for (int n = 0; std::getline(in, line); ++n) {
    const auto colon = line.find(':');
    if (n < 2 || colon == std::string::npos) continue;  // two header lines
    auto name = line.substr(0, colon);
    name.erase(0, name.find_first_not_of(' '));
    if (name != "lo") links.push_back(name);
  }
  std::sort(links.begin(), links.end());
  return links;
}

// A network namespace in config.json without a path: the container's own.
bool has_own_netns(const std::filesystem::path& config_json) {
  std::ifstream in(config_json);
  const json j = json::parse(in, nullptr, false);
  if (j.is_discarded()) return false;
  const json namespaces = j.value("linux", json::object()).value("namespaces", json::array());
  for (const auto& ns : namespaces)
    if (ns.value("type", "") == "network") return !ns.contains("path") || ns.value("path", "").empty();
  return false;
}

error criu_failure(const std::string& what, const process::result_of_run& r, const std::filesystem::path& log) {
  std::string msg = what + ": " + r.summary();
  std::string lifted = criu::log_errors(log);
  if (!lifted.empty()) msg += "; criu: " + lifted;
  return error{errc::criu, msg};
}

}  // namespace

runc_runtime::runc_runtime(const config& cfg, criu::overrides criu)
    : cfg_(cfg.runc),
      checkpoint_timeout_(cfg.timeouts.checkpoint),
      restore_timeout_(cfg.timeouts.restore),
      criu_options_{"--tcp-established", "--file-locks"},
      criu_(std::move(criu)),
      node_(cfg.node_name),
      cni_(cfg.runc) {
  criu_binary_ = cfg.criu.binary.string();
}

runc_runtime::runc_runtime(const config& cfg, criu::overrides criu, const std::filesystem::path& root,
                           std::vector<std::string> criu_options)
    : runc_runtime(cfg, std::move(criu)) {
  criu_.with_netns.clear();
  cfg_.root = root;
  criu_options_ = std::move(criu_options);
}

std::vector<std::string> runc_runtime::base_args() const {
  return {cfg_.binary.string(), "--root", cfg_.root.string(), "--criu", criu_binary_};
}

awaitable<result<void>> runc_runtime::probe() {
  std::vector<std::string> args{cfg_.binary.string(), "--version"};
  const process::options opts{.timeout = std::chrono::seconds(30)};
  auto r = co_await process::run(args, opts);
  if (!r) co_return std::unexpected(r.error().context("runc runtime"));
  if (!r->ok()) co_return fail(errc::runtime, "runc runtime: `" + cfg_.binary.string() + " --version` failed: " + r->summary());
  std::error_code ec;
  std::filesystem::create_directories(cfg_.root, ec);
  if (ec) co_return fail(errc::config, "runc runtime: cannot create state directory " + cfg_.root.string() + ": " + ec.message());
  std::filesystem::create_directories(cfg_.bundles, ec);
  if (ec) co_return fail(errc::config, "runc runtime: cannot create bundle directory " + cfg_.bundles.string() + ": " + ec.message());
  co_return result<void>{};
}

awaitable<result<container_info>> runc_runtime::inspect(const std::string& id) {
  auto args = base_args();
  args.insert(args.end(), {"state", id});
  const process::options opts{.timeout = std::chrono::seconds(30), .extra_env = criu_.engine};
  auto r = co_await process::run(args, opts);
  if (!r) co_return std::unexpected(r.error());
  if (!r->ok()) {
    if (mentions_missing(*r)) co_return fail(errc::not_found, "container " + id + " does not exist (runc root " + cfg_.root.string() + ")");
    co_return fail(errc::runtime, "runc state " + id + ": " + r->summary());
  }
  try {
    auto j = json::parse(r->out);
    container_info info;
    info.id = j.value("id", id);
    info.status = j.value("status", "");
    info.pid = j.value("pid", 0);
    info.bundle = j.value("bundle", "");
    if (j.contains("annotations") && j["annotations"].is_object())
      for (auto& [k, v] : j["annotations"].items())
        if (v.is_string()) info.labels[k] = v.get<std::string>();
    info.own_netns = has_own_netns(info.bundle / "config.json");
    if (info.own_netns && info.pid > 0) info.netns_links = links_of(info.pid);
    co_return info;
  } catch (const json::exception& e) {
    co_return fail(errc::runtime, "runc state " + id + ": unreadable output: " + e.what());
  }
}

// keep_frozen: `runc pause`, then a dump that leaves it running — CRIU
// gives a cgroup back in the freezer state it found it in, so it stays
// frozen, its memory and sockets intact, until thaw() or remove(). A
// container on a CNI network is described first (address, MAC: they go
// with the images) and, once frozen and dumped, taken off its bridge.
awaitable<result<void>> runc_runtime::checkpoint(const std::string& id, const checkpoint_request& req) {
  // (A copy frozen already was taken off its bridge by its first dump.)
  const auto net = req.keep_frozen && !req.already_frozen ? network_of(req.bundle) : std::nullopt;
  std::optional<cni::attachment> attached;
  if (net) {
    auto a = co_await cni_.describe(net->netns, net->name, "eth0");
    if (!a) co_return std::unexpected(a.error().context("checkpoint " + id));
    attached = *a;
  }
  if (req.keep_frozen && !req.already_frozen) {
    if (auto paused = co_await freezer("pause", id); !paused) co_return std::unexpected(paused.error().context("checkpoint " + id));
  }
  // The frozen copy leaves its bridge before CRIU looks at its sockets. A
  // dump that leaves the tasks behind lifts its network lock as it ends,
  // and the kernel would then acknowledge a client's segment into a socket
  // already dumped: the request lost, the client waiting for an answer
  // forever. Off the bridge, the client retransmits to the destination.
  result<void> outcome;
  if (attached) {
    std::ofstream(req.image_dir / cni::image_file) << attached->to_json() << "\n";
    outcome = co_await cni_.isolate(net->netns, attached->ifname, true);
  }
  if (outcome) outcome = co_await dump(id, req);
  if (outcome && attached) isolated_[id] = {*net, *attached};
  if (!outcome && attached) co_await cni_.isolate(net->netns, attached->ifname, false);
  if (!outcome && req.keep_frozen && !req.already_frozen) co_await freezer("resume", id);  // a failed dump leaves it running
  co_return outcome;
}

awaitable<result<void>> runc_runtime::dump(const std::string& id, const checkpoint_request& req) {
  auto args = base_args();
  args.insert(args.end(), {"checkpoint", "--image-path", req.image_dir.string(), "--work-path",
                           req.work_dir.string()});
  args.insert(args.end(), criu_options_.begin(), criu_options_.end());
  if (req.leave_running || req.keep_frozen) args.push_back("--leave-running");
  const bool netns = req.carry_netns && !criu_.with_netns.empty();
  const bool nft = netns && req.nftables_lock && !criu_.with_netns_nft.empty();
  process::options opts{.timeout = checkpoint_timeout_,
                        .extra_env = nft ? criu_.with_netns_nft : netns ? criu_.with_netns : criu_.engine};
  if (req.page_socket >= 0) {
    // The socket reaches CRIU through runc at page_socket_fd, named by the
    // configuration file (criu::overrides); runc writes a byte to its
    // --status-fd when CRIU says the page server is ready.
    if (criu_.lazy.empty())
      co_return fail(errc::unsupported, "checkpoint " + id +
                                            ": post-copy needs a CRIU that reads its configuration file after "
                                            "runc's request (scripts/criu/0002)");
    constexpr int ready_fd = criu::page_socket_fd + 1;
    args.insert(args.end(), {"--lazy-pages", "--status-fd", std::to_string(ready_fd)});
    opts.timeout = req.page_transfer_timeout;
    opts.extra_env = nft ? criu_.lazy_with_netns_nft : netns ? criu_.lazy_with_netns : criu_.lazy;
    opts.pass_fds = {{req.page_socket, criu::page_socket_fd}, {req.ready_fd, ready_fd}};
  }
  args.push_back(id);
  auto r = co_await process::run(args, opts);
  if (!r) co_return std::unexpected(r.error().context("checkpoint " + id));
  if (!r->ok()) co_return std::unexpected(criu_failure("checkpoint " + id, *r, req.work_dir / "dump.log"));
  co_return result<void>{};
}

awaitable<result<void>> runc_runtime::thaw(const std::string& id) {
  std::optional<std::pair<network, cni::attachment>> off;
  if (const auto it = isolated_.find(id); it != isolated_.end()) {
    off = it->second;
    isolated_.erase(it);
  } else if (auto info = co_await inspect(id); info) {
    // A daemon that restarted does not know whether the dump before took
    // the copy off its bridge; its bundle says whether it is on one, and
    // putting the host end up again changes nothing if it never went down.
    if (const auto net = network_of(info->bundle)) {
      auto a = co_await cni_.describe(net->netns, net->name, "eth0");
      if (!a) co_return std::unexpected(a.error().context("thaw " + id));
      off.emplace(*net, *a);
    }
  }
  if (off) {
    const auto [net, attached] = *off;
    if (auto on = co_await cni_.isolate(net.netns, attached.ifname, false); !on)
      co_return std::unexpected(on.error().context("thaw " + id));
    if (auto ok = co_await freezer("resume", id); !ok) co_return std::unexpected(ok.error().context("thaw " + id));
    co_await cni_.announce(net.netns, attached);
    co_return result<void>{};
  }
  co_return with_context(co_await freezer("resume", id), "thaw " + id);
}

awaitable<result<void>> runc_runtime::freezer(const std::string& verb, const std::string& id) {
  auto args = base_args();
  args.insert(args.end(), {verb, id});
  const process::options opts{.timeout = std::chrono::seconds(30), .extra_env = criu_.engine};
  auto r = co_await process::run(args, opts);
  if (!r) co_return std::unexpected(r.error());
  if (!r->ok()) co_return fail(errc::runtime, "runc " + verb + " " + id + ": " + r->summary());
  co_return result<void>{};
}

// `runc restore --detach` and `runc run --detach` alike: the container
// inherits runc's standard streams where its own were pipes, so it gets
// /dev/null and runc's errors are read from its --log; the pid file names
// the new init without another runc process on the critical path.
awaitable<result<container_info>> runc_runtime::launch(const std::string& id, const std::vector<std::string>& verb,
                                                       const std::filesystem::path& bundle,
                                                       const std::filesystem::path& work_dir,
                                                       std::string_view what,
                                                       const std::vector<std::string>& criu_env) {
  const auto runc_log = work_dir / "runc.log";
  const auto pid_file = work_dir / "started.pid";
  std::error_code ec;
  std::filesystem::remove(pid_file, ec);
  auto args = base_args();
  args.insert(args.end(), {"--log", runc_log.string(), "--log-format", "text"});
  args.insert(args.end(), verb.begin(), verb.end());
  args.insert(args.end(), {"--detach", "--bundle", bundle.string(), "--pid-file", pid_file.string(), id});
  const std::string label = std::string(what) + " " + id;
  const process::options opts{.timeout = restore_timeout_, .extra_env = criu_env, .discard_output = true};
  auto r = co_await process::run(args, opts);
  if (!r) co_return std::unexpected(r.error().context(label));
  if (!r->ok()) {
    r->err = last_error_line(runc_log);
    co_return std::unexpected(criu_failure(label, *r, work_dir / "restore.log"));
  }
  container_info info{id, "running", 0, bundle};
  std::ifstream pid_in(pid_file);
  if (!(pid_in >> info.pid) || info.pid <= 0 || ::kill(info.pid, 0) != 0)
    co_return fail(errc::runtime, label + ": runc succeeded but the process is not running");
  co_return info;
}

// A container on a CNI network gets its namespace set up first, with the
// address and MAC it had (network.json beside the images), and announced
// once it runs; a restore that fails takes the namespace down again.
awaitable<result<container_info>> runc_runtime::restore(const std::string& id, const restore_request& req) {
  std::optional<cni::attachment> attached;
  const auto net = network_of(req.bundle);
  if (net) {
    std::ifstream in(req.image_dir / cni::image_file);
    const std::string text{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
    auto a = cni::attachment::from_json(text);
    if (!a) co_return std::unexpected(a.error().context("restore " + id + ": " + cni::image_file));
    if (auto ok = co_await cni_.attach(net->netns, id, *a); !ok) {
      co_await cni_.detach(net->netns, id, *a);
      co_return std::unexpected(ok.error().context("restore " + id));
    }
    attached = *a;
  }
  std::vector<std::string> verb{"restore", "--image-path", req.image_dir.string(), "--work-path",
                                req.work_dir.string()};
  verb.insert(verb.end(), criu_options_.begin(), criu_options_.end());
  if (req.lazy_pages) verb.push_back("--lazy-pages");
  // Images that hold the network namespace restore it (they were dumped
  // with it). The restore lifts the lock its dump put on the namespace
  // the way the dump's inventory says, whatever the configuration asks.
  const bool netns = !criu_.with_netns.empty() && holds_netns(req.image_dir);
  auto restored = co_await launch(id, verb, req.bundle, req.work_dir, "restore",
                                  netns ? criu_.with_netns : criu_.engine);
  if (attached && !restored) co_await cni_.detach(net->netns, id, *attached);
  if (attached && restored) co_await cni_.announce(net->netns, *attached);
  co_return restored;
}

awaitable<result<container_info>> runc_runtime::start(const std::string& id, const std::filesystem::path& bundle,
                                                      const std::filesystem::path& work_dir) {
  const std::vector<std::string> verb{"run"};
  co_return co_await launch(id, verb, bundle, work_dir, "start", criu_.engine);
}

awaitable<result<container_info>> runc_runtime::create(const std::string& id, const std::string&) {
  container_info info{id, "created", 0, bundle_path(id)};
  std::error_code ec;
  std::filesystem::create_directories(info.bundle, ec);
  if (ec) co_return fail(errc::io, "create " + info.bundle.string() + ": " + ec.message());
  co_return info;
}

// SIGTERM, up to 10 s for the container to end, SIGKILL, then delete: the
// bundle (its filesystem) stays.
awaitable<result<void>> runc_runtime::stop(const std::string& id) {
  auto args = base_args();
  args.insert(args.end(), {"kill", id, "TERM"});
  const process::options opts{.timeout = std::chrono::seconds(30), .extra_env = criu_.engine};
  auto r = co_await process::run(args, opts);
  if (!r) co_return std::unexpected(r.error().context("stop " + id));
  asio::steady_timer timer(co_await asio::this_coro::executor);
  for (int i = 0; i < 100; ++i) {
    auto info = co_await inspect(id);
    if (!info || info->status == "stopped") break;
    timer.expires_after(std::chrono::milliseconds(100));
    co_await timer.async_wait(use_awaitable);
  }
  co_return co_await delete_container(id);  // its network stays: a fresh start needs it
}

awaitable<result<int>> runc_runtime::exec(const std::string& id, const std::vector<std::string>& argv,
                                          std::chrono::milliseconds timeout) {
  auto args = base_args();
  args.insert(args.end(), {"exec", id});
  args.insert(args.end(), argv.begin(), argv.end());
  const process::options opts{.timeout = timeout, .extra_env = criu_.engine};
  auto r = co_await process::run(args, opts);
  if (!r) co_return std::unexpected(r.error().context("exec in " + id));
  if (r->signal) co_return fail(errc::runtime, "exec in " + id + ": killed by signal " + std::to_string(r->signal));
  co_return r->exit_code;
}

// Gone for good: a container on a CNI network gives its address back and
// its namespace goes.
//
// Only a namespace that is this container's here: one runc ran it in, or
// one of this node's naming that a restore left. A destination removing a
// container it never launched still has the source's bundle, whose
// namespace is the source's (the same path, where nodes share /run/netns).
awaitable<result<void>> runc_runtime::remove(const std::string& id) {
  isolated_.erase(id);
  auto known = co_await inspect(id);
  const auto bundle = known ? known->bundle : bundle_path(id);
  const auto net = network_of(bundle);
  if (auto ok = co_await delete_container(id); !ok) co_return ok;
  if (net && (known || net->netns.filename() == "migrated-" + node_ + "-" + id)) {
    cni::attachment a;
    a.network = net->name;
    if (auto ok = co_await cni_.detach(net->netns, id, a); !ok) co_return std::unexpected(ok.error().context("remove " + id));
  }
  co_return result<void>{};
}

awaitable<result<void>> runc_runtime::delete_container(const std::string& id) {
  auto args = base_args();
  args.insert(args.end(), {"delete", "--force", id});
  const process::options opts{.timeout = std::chrono::seconds(30), .extra_env = criu_.engine};
  auto r = co_await process::run(args, opts);
  if (!r) co_return std::unexpected(r.error().context("remove " + id));
  if (!r->ok() && !mentions_missing(*r)) co_return fail(errc::runtime, "runc delete " + id + ": " + r->summary());
  co_return result<void>{};
}

std::filesystem::path runc_runtime::bundle_path(const std::string& id) const { return cfg_.bundles / id; }

std::optional<runc_runtime::network> runc_runtime::network_of(const std::filesystem::path& bundle) const {
  if (bundle.empty()) return std::nullopt;
  std::ifstream in(bundle / "config.json");
  const json j = json::parse(in, nullptr, false);
  if (j.is_discarded()) return std::nullopt;
  const json notes = j.value("annotations", json::object());
  if (!notes.is_object() || !notes.contains(cni::annotation) || !notes[cni::annotation].is_string()) return std::nullopt;
  for (const auto& ns : j.value("linux", json::object()).value("namespaces", json::array()))
    if (ns.value("type", "") == "network" && !ns.value("path", "").empty())
      return network{notes[cni::annotation].get<std::string>(), ns.value("path", "")};
  return std::nullopt;
}

result<void> runc_runtime::adapt_bundle(const std::filesystem::path& bundle, const std::string& id) const {
  auto file = bundle / "config.json";
  json j;
  try {
    std::ifstream in(file);
    if (!in) return fail(errc::not_found, "bundle " + bundle.string() + " has no config.json");
    j = json::parse(in);
  } catch (const json::exception& e) {
    return fail(errc::invalid_argument, file.string() + ": " + e.what());
  }
  j["linux"]["cgroupsPath"] = "/" + cfg_.cgroup_parent + "/" + id;
  // A container on a CNI network gets a namespace of this node's naming (two
  // nodes may share one /run/netns, as the test hosts do).
  const bool on_cni = j.value("annotations", json::object()).contains(cni::annotation);
  if (on_cni && j["linux"].contains("namespaces"))
    for (auto& ns : j["linux"]["namespaces"])
      if (ns.value("type", "") == "network" && ns.contains("path"))
        ns["path"] = (std::filesystem::path(cni::netns_dir) / ("migrated-" + node_ + "-" + id)).string();
  auto tmp = file;
  tmp += ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << j.dump(2);
    if (!out) return fail(errc::io, "write " + tmp.string());
  }
  std::error_code ec;
  std::filesystem::rename(tmp, file, ec);
  if (ec) return fail(errc::io, "rename " + tmp.string() + ": " + ec.message());
  return {};
}

}  // namespace migrated::runtime
