// CNI plugins and named network namespaces for the runc backend (see cni.hpp).
#include "runtime/cni.hpp"

#include <fstream>

#include <nlohmann/json.hpp>

#include "process/process.hpp"

namespace migrated::runtime::cni {
namespace {

using json = nlohmann::json;

const process::options quick{.timeout = std::chrono::seconds(10)};

// CRIU's own network lock (criu/net.c): its restore ends by removing the
// CRIU chain and its jumps, so a namespace locked this way opens exactly
// when the restored sockets are ready, and a client's retransmits meet no
// socket-less kernel (which would answer them with RST) before.
constexpr const char* criu_lock_rules =
    "*filter\n:CRIU - [0:0]\n-I INPUT -j CRIU\n-I OUTPUT -j CRIU\n"
    "-A CRIU -m mark --mark 0xc114 -j ACCEPT\n-A CRIU -j DROP\nCOMMIT\n";

awaitable<result<process::result_of_run>> run_checked(const std::vector<std::string>& argv, const process::options& opts,
                                                     const std::string& what) {
  auto r = co_await process::run(argv, opts);
  if (!r) co_return std::unexpected(r.error().context(what));
  if (!r->ok()) co_return fail(errc::runtime, what + ": " + r->summary());
  co_return r;
}

std::vector<std::string> in_netns(const std::filesystem::path& netns, std::vector<std::string> argv) {
  argv.insert(argv.begin(), {"nsenter", "--net=" + netns.string()});
  return argv;
}

// `ip -j` output, parsed.
result<json> parse(const process::result_of_run& r, const std::string& what) {
  auto j = json::parse(r.out, nullptr, false);
  if (j.is_discarded() || !j.is_array() || j.empty()) return fail(errc::runtime, what + ": unreadable answer of ip");
  return j;
}

}  // namespace

std::string attachment::to_json() const {
  return json{{"network", network}, {"ifname", ifname}, {"address", address}, {"mac", mac}}.dump();
}

result<attachment> attachment::from_json(std::string_view text) {
  auto j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return fail(errc::invalid_argument, "network description: not a JSON object");
  attachment a;
  a.network = j.value("network", "");
  a.ifname = j.value("ifname", "eth0");
  a.address = j.value("address", "");
  a.mac = j.value("mac", "");
  if (a.network.empty() || a.address.empty()) return fail(errc::invalid_argument, "network description: incomplete");
  return a;
}

std::string netns_name(const std::filesystem::path& netns) {
  if (netns.parent_path() != std::filesystem::path(netns_dir)) return {};
  return netns.filename().string();
}

awaitable<result<attachment>> plugins::describe(const std::filesystem::path& netns, const std::string& network,
                                                const std::string& ifname) {
  const std::string what = "network of " + netns.string();
  const auto argv = in_netns(netns, {"ip", "-j", "addr", "show", "dev", ifname});
  auto r = co_await run_checked(argv, quick, what);
  if (!r) co_return std::unexpected(r.error());
  auto j = parse(*r, what);
  if (!j) co_return std::unexpected(j.error());
  attachment a;
  a.network = network;
  a.ifname = ifname;
  a.mac = (*j)[0].value("address", "");
  for (const auto& info : (*j)[0].value("addr_info", json::array()))
    if (info.value("family", "") == "inet") {
      a.address = info.value("local", "") + "/" + std::to_string(info.value("prefixlen", 32));
      break;
    }
  if (a.address.empty()) co_return fail(errc::runtime, what + ": " + ifname + " has no IPv4 address");
  co_return a;
}

awaitable<result<void>> plugins::isolate(const std::filesystem::path& netns, const std::string& ifname, bool off) {
  const std::string what = std::string(off ? "take " : "put ") + ifname + " of " + netns.string() +
                           (off ? " off its bridge" : " back on its bridge");
  // The host end is the peer of the container's interface: its index here.
  const auto inside = in_netns(netns, {"ip", "-j", "link", "show", "dev", ifname});
  auto r = co_await run_checked(inside, quick, what);
  if (!r) co_return std::unexpected(r.error());
  auto j = parse(*r, what);
  if (!j) co_return std::unexpected(j.error());
  const int peer = (*j)[0].value("link_index", 0);
  if (peer <= 0) co_return fail(errc::runtime, what + ": " + ifname + " is not one end of a veth");
  const std::vector<std::string> here{"ip", "-j", "link", "show"};
  auto links = co_await run_checked(here, quick, what);
  if (!links) co_return std::unexpected(links.error());
  auto all = parse(*links, what);
  if (!all) co_return std::unexpected(all.error());
  std::string host_end;
  for (const auto& l : *all)
    if (l.value("ifindex", 0) == peer) host_end = l.value("ifname", "");
  if (host_end.empty()) co_return fail(errc::runtime, what + ": its host end is not in this network namespace");
  const std::vector<std::string> set{"ip", "link", "set", host_end, off ? "down" : "up"};
  if (auto ok = co_await run_checked(set, quick, what); !ok) co_return std::unexpected(ok.error());
  co_return result<void>{};
}

awaitable<result<void>> plugins::attach(const std::filesystem::path& netns, const std::string& container,
                                        const attachment& a) {
  const std::string name = netns_name(netns);
  const std::string what = "network of " + container;
  if (name.empty())
    co_return fail(errc::unsupported, what + ": its network namespace " + netns.string() + " is not under " + netns_dir);
  if (std::filesystem::exists(netns)) {  // left by an attempt that did not finish
    const std::vector<std::string> del{"ip", "netns", "delete", name};
    co_await process::run(del, quick);
  }
  const std::vector<std::string> add{"ip", "netns", "add", name};
  if (auto ok = co_await run_checked(add, quick, what + ": create " + netns.string()); !ok) co_return std::unexpected(ok.error());
  const std::vector<std::string> lo{"ip", "-n", name, "link", "set", "lo", "up"};
  if (auto ok = co_await run_checked(lo, quick, what + ": loopback"); !ok) co_return std::unexpected(ok.error());
  process::options lock = quick;
  lock.input = criu_lock_rules;
  for (const char* tool : {"iptables-restore", "ip6tables-restore"}) {
    const auto argv = in_netns(netns, {tool, "-w", "--noflush"});
    if (auto ok = co_await run_checked(argv, lock, what + ": lock"); !ok) co_return std::unexpected(ok.error());
  }
  if (auto ok = co_await plugin("ADD", netns, container, a); !ok) co_return std::unexpected(ok.error());
  co_return result<void>{};
}

awaitable<void> plugins::announce(const std::filesystem::path& netns, const attachment& a) {
  const std::string ip = a.address.substr(0, a.address.find('/'));
  const auto argv = in_netns(netns, {"busybox", "arping", "-U", "-c", "1", "-w", "1", "-I", a.ifname, ip});
  co_await process::run(argv, quick);  // a lost announcement costs the peer a retransmit, no more
}

awaitable<result<void>> plugins::detach(const std::filesystem::path& netns, const std::string& container,
                                        const attachment& a) {
  const std::string name = netns_name(netns);
  result<void> outcome;
  if (std::filesystem::exists(netns)) {
    if (auto ok = co_await plugin("DEL", netns, container, a); !ok) outcome = std::unexpected(ok.error());
  }
  if (!name.empty() && std::filesystem::exists(netns)) {
    const std::vector<std::string> del{"ip", "netns", "delete", name};
    if (auto ok = co_await run_checked(del, quick, "remove " + netns.string()); !ok && outcome)
      outcome = std::unexpected(ok.error());
  }
  co_return outcome;
}

// Runs the plugin of <conf_dir>/<network>.conf with the address and MAC
// asked for (the conf must list the "ips" and "mac" capabilities); the
// plugin's answer.
awaitable<result<std::string>> plugins::plugin(const std::string& command, const std::filesystem::path& netns,
                                               const std::string& container, const attachment& a) {
  const auto file = conf_dir_ / (a.network + ".conf");
  const std::string what = "CNI " + command + " " + a.network + " for " + container;
  std::ifstream in(file);
  json conf = json::parse(in, nullptr, false);
  if (!in.is_open() || conf.is_discarded() || !conf.is_object())
    co_return fail(errc::config, what + ": cannot read " + file.string());
  const std::string type = conf.value("type", "");
  if (type.empty() || type.find('/') != std::string::npos)
    co_return fail(errc::config, what + ": " + file.string() + " names no plugin type");
  json runtime_config = json::object();
  if (!a.address.empty()) runtime_config["ips"] = json::array({a.address});
  if (!a.mac.empty()) runtime_config["mac"] = a.mac;
  conf["runtimeConfig"] = runtime_config;
  process::options opts = quick;
  opts.input = conf.dump();
  opts.extra_env = {"CNI_COMMAND=" + command, "CNI_CONTAINERID=" + container, "CNI_NETNS=" + netns.string(),
                    "CNI_IFNAME=" + a.ifname, "CNI_PATH=" + bin_dir_.string()};
  const std::vector<std::string> argv{(bin_dir_ / type).string()};
  auto r = co_await process::run(argv, opts);
  if (!r) co_return std::unexpected(r.error().context(what));
  if (!r->ok()) {
    // A plugin that fails says why as JSON on stdout ({"code":…, "msg":…}).
    auto err = json::parse(r->out, nullptr, false);
    const std::string msg = err.is_object() ? err.value("msg", r->summary()) : r->summary();
    co_return fail(errc::runtime, what + ": " + msg);
  }
  co_return r->out;
}

}  // namespace migrated::runtime::cni
