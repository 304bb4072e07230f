// Configuration: defaults, then the YAML file, then "key.path=value"
// overrides from the command line.
//
// Why a key table: the file and the command line must never drift apart, so
// every key has exactly one setter, found by its dotted path, and both the
// YAML walk and apply_override() end in it. A path that names neither a
// setter nor a section holding setters is an unknown key and an error: a
// misspelt timeout that silently keeps its default is worse than a daemon
// that refuses to start. Setters check the type and whatever range is needed
// to store the value; validate() then checks the finished config as a whole,
// so a config built in code (tests, migratectl) gets the same checks as one
// read from disk.

#include "common/config.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <charconv>
#include <fstream>
#include <iterator>
#include <limits>
#include <set>

#include <yaml-cpp/yaml.h>

namespace migrated {
namespace {

constexpr int zstd_level_max = 19;              // zstd's highest non-"ultra" level
constexpr std::int64_t chunk_kib_min = 64;      // smaller chunks spend more on framing than data
constexpr std::int64_t chunk_kib_max = 4096;    // larger ones stall the pipeline between hops
constexpr std::size_t name_max_chars = 63;      // a DNS label; names also become file names
constexpr std::string_view zstd_level_expectation = "an integer 0..19 (0 = off)";
constexpr std::string_view chunk_kib_expectation = "an integer 64..4096 (KiB)";
constexpr std::string_view name_expectation = "a name of 1..63 characters [A-Za-z0-9._-]";

std::string describe(const YAML::Node& value) {
  switch (value.Type()) {
    case YAML::NodeType::Scalar: return "'" + value.Scalar() + "'";
    case YAML::NodeType::Sequence: return "a list";
    case YAML::NodeType::Map: return "a mapping";
    default: return "nothing";
  }
}

std::unexpected<error> expected(std::string_view key, std::string_view what,
                                const YAML::Node& got) {
  return fail(errc::config,
              std::string(key) + ": expected " + std::string(what) + ", got " + describe(got));
}

result<std::int64_t> as_integer(std::string_view key, const YAML::Node& value,
                                std::string_view what, std::int64_t min, std::int64_t max) {
  if (value.IsScalar()) {
    const std::string& text = value.Scalar();
    std::int64_t number = 0;
    const char* end = text.data() + text.size();
    auto [stop, ec] = std::from_chars(text.data(), end, number);
    if (ec == std::errc{} && stop == end && number >= min && number <= max) return number;
  }
  return expected(key, what, value);
}

// --- readers: one per type of field, each naming the key in its errors ----

result<void> read(std::string& field, std::string_view key, const YAML::Node& value) {
  if (!value.IsScalar()) return expected(key, "a string", value);
  field = value.Scalar();
  return {};
}

result<void> read(std::filesystem::path& field, std::string_view key, const YAML::Node& value) {
  if (!value.IsScalar() || value.Scalar().empty()) return expected(key, "a path", value);
  field = value.Scalar();
  return {};
}

result<void> read(std::chrono::milliseconds& field, std::string_view key, const YAML::Node& value) {
  auto ms = as_integer(key, value, "a positive integer (milliseconds)", 1,
                       std::numeric_limits<std::int64_t>::max());
  if (!ms) return std::unexpected(ms.error());
  field = std::chrono::milliseconds(*ms);
  return {};
}

result<void> read(endpoint& field, std::string_view key, const YAML::Node& value) {
  if (!value.IsScalar()) return expected(key, "host:port", value);
  auto parsed = parse_endpoint(value.Scalar());
  if (!parsed) return fail(errc::config, std::string(key) + ": " + parsed.error().message);
  field = std::move(*parsed);
  return {};
}

result<void> read(bool& field, std::string_view key, const YAML::Node& value) {
  if (!value.IsScalar() || !YAML::convert<bool>::decode(value, field)) return expected(key, "true or false", value);
  return {};
}

// An integer field within [min, max].
template <std::int64_t min, std::int64_t max>
result<void> read_in(std::uint32_t& field, std::string_view key, const YAML::Node& value) {
  auto n = as_integer(key, value, "an integer " + std::to_string(min) + ".." + std::to_string(max), min, max);
  if (!n) return std::unexpected(n.error());
  field = static_cast<std::uint32_t>(*n);
  return {};
}

// --- setters: the one place each key is read, from the file or the command line

result<void> set_listen_udp(config& cfg, std::string_view key, const YAML::Node& value) {
  cfg.listen_udp.reset();  // "listen.udp=~" turns the UDP listener off
  if (value.IsNull()) return {};
  return read(cfg.listen_udp.emplace(), key, value);
}

result<void> set_http_listen(config& cfg, std::string_view key, const YAML::Node& value) {
  cfg.http.listen.reset();  // "http.listen=~" turns the HTTP endpoint off
  if (value.IsNull()) return {};
  return read(cfg.http.listen.emplace(), key, value);
}

// "peers.<name>": adds or replaces a peer; a null value removes it.
result<void> set_peer(config& cfg, std::string_view key, const YAML::Node& value) {
  const std::string name(key.substr(std::string_view("peers.").size()));
  auto it = std::ranges::find(cfg.peers, name, &peer_config::name);
  if (value.IsNull()) {
    if (it != cfg.peers.end()) cfg.peers.erase(it);
    return {};
  }
  if (it == cfg.peers.end()) it = cfg.peers.insert(it, peer_config{name, {}});
  return read(it->address, key, value);
}

result<void> set_zstd_level(config& cfg, std::string_view key, const YAML::Node& value) {
  auto level = as_integer(key, value, zstd_level_expectation, 0, zstd_level_max);
  if (!level) return std::unexpected(level.error());
  cfg.transfer.zstd_level = static_cast<int>(*level);
  return {};
}

result<void> set_chunk(config& cfg, std::string_view key, const YAML::Node& value) {
  auto kib = as_integer(key, value, chunk_kib_expectation, chunk_kib_min, chunk_kib_max);
  if (!kib) return std::unexpected(kib.error());
  cfg.transfer.chunk_bytes = static_cast<std::uint32_t>(*kib) * 1024;
  return {};
}

using setter = result<void> (*)(config&, std::string_view key, const YAML::Node&);

struct key_rule {
  std::string_view path;  // "a.b.c", or "a.*" for a map of names
  setter set;
};

// Captureless generic lambdas convert to `setter`; c, k, v: config, key path, value.
const key_rule rules[] = {
    {"node", [](auto& c, auto k, auto& v) { return read(c.node_name, k, v); }},
    {"listen.tcp", [](auto& c, auto k, auto& v) { return read(c.listen_tcp, k, v); }},
    {"listen.udp", set_listen_udp},
    {"http.listen", set_http_listen},
    {"http.connections", [](auto& c, auto k, auto& v) { return read_in<1, 1024>(c.http.connections, k, v); }},
    {"peers.*", set_peer},
    {"psk_file",
     [](auto&, auto k, auto&) -> result<void> {
       return fail(errc::config, std::string(k) + ": links use per-node certificates now; replace it with "
                                                  "tls.ca, tls.cert and tls.key (scripts/migrated-ca makes them)");
     }},
    {"tls.ca", [](auto& c, auto k, auto& v) { return read(c.tls.ca, k, v); }},
    {"tls.cert", [](auto& c, auto k, auto& v) { return read(c.tls.cert, k, v); }},
    {"tls.key", [](auto& c, auto k, auto& v) { return read(c.tls.key, k, v); }},
    {"allow_unlisted_destinations",
     [](auto& c, auto k, auto& v) { return read(c.allow_unlisted_destinations, k, v); }},
    {"storage", [](auto& c, auto k, auto& v) { return read(c.storage_dir, k, v); }},
    {"images", [](auto& c, auto k, auto& v) { return read(c.images_dir, k, v); }},
    {"lazy_images", [](auto& c, auto k, auto& v) { return read(c.lazy_images_dir, k, v); }},
    {"pool_threads", [](auto& c, auto k, auto& v) { return read_in<1, 64>(c.pool_threads, k, v); }},
    {"max_concurrent_migrations",
     [](auto& c, auto k, auto& v) { return read_in<1, 256>(c.max_concurrent_migrations, k, v); }},
    {"runtime.runc.binary", [](auto& c, auto k, auto& v) { return read(c.runc.binary, k, v); }},
    {"runtime.runc.root", [](auto& c, auto k, auto& v) { return read(c.runc.root, k, v); }},
    {"runtime.runc.bundles", [](auto& c, auto k, auto& v) { return read(c.runc.bundles, k, v); }},
    {"runtime.runc.cgroup_parent",
     [](auto& c, auto k, auto& v) { return read(c.runc.cgroup_parent, k, v); }},
    {"runtime.runc.cni.conf_dir", [](auto& c, auto k, auto& v) { return read(c.runc.cni_conf_dir, k, v); }},
    {"runtime.runc.cni.bin_dir", [](auto& c, auto k, auto& v) { return read(c.runc.cni_bin_dir, k, v); }},
    {"runtime.docker.enabled", [](auto& c, auto k, auto& v) { return read(c.docker.enabled, k, v); }},
    {"runtime.docker.socket", [](auto& c, auto k, auto& v) { return read(c.docker.socket, k, v); }},
    {"runtime.docker.accept_images",
     [](auto& c, auto k, auto& v) { return read(c.docker.accept_images, k, v); }},
    {"runtime.docker.registry", [](auto& c, auto k, auto& v) { return read(c.docker.registry, k, v); }},
    {"runtime.docker.runc_root", [](auto& c, auto k, auto& v) { return read(c.docker.runc_root, k, v); }},
    {"runtime.docker.stop_timeout_s",
     [](auto& c, auto k, auto& v) { return read_in<0, 300>(c.docker.stop_timeout_s, k, v); }},
    {"criu.binary", [](auto& c, auto k, auto& v) { return read(c.criu.binary, k, v); }},
    {"log.sink", [](auto& c, auto k, auto& v) { return read(c.log.sink, k, v); }},
    {"log.level", [](auto& c, auto k, auto& v) { return read(c.log.level, k, v); }},
    {"log.file", [](auto& c, auto k, auto& v) { return read(c.log.file, k, v); }},
    {"transfer.zstd_level", set_zstd_level},
    {"transfer.chunk_kib", set_chunk},
    {"timeouts.connect_ms",
     [](auto& c, auto k, auto& v) { return read(c.timeouts.connect, k, v); }},
    {"timeouts.io_ms", [](auto& c, auto k, auto& v) { return read(c.timeouts.io, k, v); }},
    {"timeouts.checkpoint_ms",
     [](auto& c, auto k, auto& v) { return read(c.timeouts.checkpoint, k, v); }},
    {"timeouts.restore_ms",
     [](auto& c, auto k, auto& v) { return read(c.timeouts.restore, k, v); }},
    {"timeouts.commit_ms", [](auto& c, auto k, auto& v) { return read(c.timeouts.commit, k, v); }},
    {"timeouts.outcome_ms", [](auto& c, auto k, auto& v) { return read(c.timeouts.outcome, k, v); }},
    {"timeouts.ready_ms", [](auto& c, auto k, auto& v) { return read(c.timeouts.ready, k, v); }},
    {"postcopy.recover_timeout_ms",
     [](auto& c, auto k, auto& v) -> result<void> {
       auto ms = as_integer(k, v, "milliseconds, 0 (no recovery) .. 3600000", 0, 3600000);
       if (!ms) return std::unexpected(ms.error());
       c.postcopy.recover_timeout = std::chrono::milliseconds(*ms);
       return {};
     }},
    {"limits.pending_connections",
     [](auto& c, auto k, auto& v) { return read_in<1, 4096>(c.limits.pending_connections, k, v); }},
    {"limits.pending_per_source",
     [](auto& c, auto k, auto& v) { return read_in<1, 4096>(c.limits.pending_per_source, k, v); }},
    {"limits.connections", [](auto& c, auto k, auto& v) { return read_in<1, 65536>(c.limits.connections, k, v); }},
    {"limits.handshake_ms", [](auto& c, auto k, auto& v) { return read(c.limits.handshake, k, v); }},
    {"limits.idle_ms", [](auto& c, auto k, auto& v) { return read(c.limits.idle, k, v); }},
    {"precopy.max_rounds", [](auto& c, auto k, auto& v) { return read_in<1, 30>(c.precopy.max_rounds, k, v); }},
    {"precopy.final_transfer_ms",
     [](auto& c, auto k, auto& v) { return read_in<1, 60000>(c.precopy.final_transfer_ms, k, v); }},
    {"precopy.min_shrink_pct",
     [](auto& c, auto k, auto& v) { return read_in<0, 99>(c.precopy.min_shrink_pct, k, v); }},
    {"precopy.auto_converge", [](auto& c, auto k, auto& v) { return read(c.precopy.auto_converge, k, v); }},
    {"precopy.throttle_step_pct",
     [](auto& c, auto k, auto& v) { return read_in<1, 99>(c.precopy.throttle_step_pct, k, v); }},
    {"precopy.throttle_max_pct",
     [](auto& c, auto k, auto& v) { return read_in<1, 99>(c.precopy.throttle_max_pct, k, v); }},
};

const key_rule* find_rule(std::string_view path) {
  for (const key_rule& rule : rules) {
    if (rule.path == path) return &rule;
    const std::string_view prefix = rule.path.substr(0, rule.path.size() - 1);  // "peers."
    if (rule.path.ends_with(".*") && path.size() > prefix.size() && path.starts_with(prefix))
      return &rule;
  }
  return nullptr;
}

// The root ("") and every proper prefix of a rule path ("runtime", "runtime.runc").
bool is_section(std::string_view path) {
  if (path.empty()) return true;
  return std::ranges::any_of(rules, [&](const key_rule& rule) {
    return rule.path.starts_with(path) && rule.path.substr(path.size()).starts_with('.');
  });
}

// Routes one YAML node to the setter of its path, or walks into a section.
result<void> apply_node(config& cfg, const std::string& path, const YAML::Node& value) {
  if (const key_rule* rule = find_rule(path)) return rule->set(cfg, path, value);
  if (!is_section(path)) return fail(errc::config, "unknown key '" + path + "'");
  if (value.IsNull()) return {};  // "peers:" with nothing under it
  if (!value.IsMap()) return expected(path.empty() ? "document" : path, "a mapping", value);
  std::set<std::string> seen;
  for (const auto& entry : value) {
    if (!entry.first.IsScalar() || entry.first.Scalar().empty())
      return expected(path.empty() ? "document" : path, "names as keys", entry.first);
    const std::string& name = entry.first.Scalar();
    const std::string child = path.empty() ? name : path + "." + name;
    if (!seen.insert(child).second) return fail(errc::config, "duplicate key '" + child + "'");
    if (auto applied = apply_node(cfg, child, entry.second); !applied) return applied;
  }
  return {};
}

result<YAML::Node> load_yaml(std::string_view text) {
  try {
    return YAML::Load(std::string(text));
  } catch (const YAML::Exception& e) {
    if (e.mark.is_null()) return fail(errc::config, e.msg);
    return fail(errc::config, "line " + std::to_string(e.mark.line + 1) + ", column " +
                                  std::to_string(e.mark.column + 1) + ": " + e.msg);
  }
}

bool is_host_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         c == '.' || c == '-' || c == '_';
}

bool is_ipv6_literal(std::string_view host) {
  const std::string address(host.substr(0, host.find('%')));  // "fe80::1%eth0"
  if (host.ends_with('%')) return false;
  in6_addr parsed{};
  return inet_pton(AF_INET6, address.c_str(), &parsed) == 1;
}

// validate() collects every problem, so --check-config reports them all at once.
using problems = std::vector<std::string>;

bool valid_name(std::string_view name) {
  if (name.empty() || name.size() > name_max_chars || name == "." || name == "..") return false;
  return std::ranges::all_of(name, is_host_char);  // the same set: [A-Za-z0-9._-]
}

void check_endpoint(problems& out, const std::string& key, const endpoint& address) {
  if (address.host.empty() || address.port == 0)
    out.push_back(key + ": expected host:port with a port 1..65535, got '" +
                  address.to_string() + "'");
}

void check_names(const config& cfg, problems& out) {
  const std::string expected_name = "expected " + std::string(name_expectation);
  if (cfg.node_name.empty())
    out.push_back("node: required (the name peers know this host by)");
  else if (!valid_name(cfg.node_name))
    out.push_back("node: " + expected_name + ", got '" + cfg.node_name + "'");
  std::set<std::string_view> seen;
  for (const peer_config& peer : cfg.peers) {
    const std::string key = "peers." + peer.name;
    if (!valid_name(peer.name))
      out.push_back(key + ": " + expected_name + ", got '" + peer.name + "'");
    else if (peer.name == cfg.node_name)
      out.push_back(key + ": names this node itself");
    else if (!seen.insert(peer.name).second)
      out.push_back(key + ": listed more than once");
    check_endpoint(out, key, peer.address);
  }
  check_endpoint(out, "listen.tcp", cfg.listen_tcp);
  if (cfg.listen_udp) check_endpoint(out, "listen.udp", *cfg.listen_udp);
  if (cfg.http.listen) check_endpoint(out, "http.listen", *cfg.http.listen);
}

void check_paths(const config& cfg, problems& out) {
  auto absolute_dir = [&](const std::string& key, const std::filesystem::path& dir) {
    if (!dir.is_absolute())
      out.push_back(key + ": expected an absolute directory path, got '" + dir.string() + "'");
  };
  absolute_dir("storage", cfg.storage_dir);
  if (!cfg.images_dir.empty()) absolute_dir("images", cfg.images_dir);
  absolute_dir("lazy_images", cfg.lazy_images_dir);
  // A starting daemon empties lazy_images' outgoing/, which under storage
  // or images holds the only copy of containers stopped mid-migration.
  auto normal = [](const std::filesystem::path& p) {
    auto n = p.lexically_normal();
    return n.has_filename() || n == n.root_path() ? n : n.parent_path();  // (without a trailing /)
  };
  if (normal(cfg.lazy_images_dir) == normal(cfg.storage_dir) || normal(cfg.lazy_images_dir) == normal(cfg.images_root()))
    out.push_back("lazy_images: '" + cfg.lazy_images_dir.string() +
                  "' is also storage or images; name a directory of its own (e.g. /run/migrated/lazy)");
  absolute_dir("runtime.runc.root", cfg.runc.root);
  absolute_dir("runtime.runc.bundles", cfg.runc.bundles);
  absolute_dir("runtime.runc.cni.conf_dir", cfg.runc.cni_conf_dir);
  absolute_dir("runtime.runc.cni.bin_dir", cfg.runc.cni_bin_dir);
  for (auto [key, file] : {std::pair{"tls.ca", &cfg.tls.ca}, {"tls.cert", &cfg.tls.cert}, {"tls.key", &cfg.tls.key}})
    if (file->empty()) out.push_back(std::string(key) + ": required");
  if (cfg.runc.binary.empty()) out.push_back("runtime.runc.binary: required");
  if (cfg.criu.binary.empty()) out.push_back("criu.binary: required");
  if (cfg.docker.enabled && !cfg.docker.socket.is_absolute())
    out.push_back("runtime.docker.socket: expected an absolute path, got '" + cfg.docker.socket.string() + "'");
  const std::filesystem::path parent(cfg.runc.cgroup_parent);
  if (cfg.runc.cgroup_parent.empty() || std::ranges::find(parent, "..") != parent.end())
    out.push_back("runtime.runc.cgroup_parent: expected a cgroup name without '..', got '" +
                  cfg.runc.cgroup_parent + "'");
}

void check_log(const config& cfg, problems& out) {
  static constexpr std::string_view sinks[] = {"stderr", "journald", "file"};
  static constexpr std::string_view levels[] = {"trace", "debug", "info", "warn", "error"};
  if (std::ranges::find(sinks, cfg.log.sink) == std::end(sinks))
    out.push_back("log.sink: expected stderr, journald or file, got '" + cfg.log.sink + "'");
  if (std::ranges::find(levels, cfg.log.level) == std::end(levels))
    out.push_back("log.level: expected trace, debug, info, warn or error, got '" +
                  cfg.log.level + "'");
  if (cfg.log.sink == "file" && cfg.log.file.empty())
    out.push_back("log.file: required when log.sink is file");
  if (cfg.log.sink != "file" && !cfg.log.file.empty())
    out.push_back("log.file: only used when log.sink is file (log.sink is '" + cfg.log.sink + "')");
}

void check_numbers(const config& cfg, problems& out) {
  if (cfg.transfer.zstd_level < 0 || cfg.transfer.zstd_level > zstd_level_max)
    out.push_back("transfer.zstd_level: expected " + std::string(zstd_level_expectation) +
                  ", got " + std::to_string(cfg.transfer.zstd_level));
  const std::uint32_t chunk = cfg.transfer.chunk_bytes;
  if (chunk % 1024 != 0 || chunk / 1024 < chunk_kib_min || chunk / 1024 > chunk_kib_max)
    out.push_back("transfer.chunk_kib: expected " + std::string(chunk_kib_expectation) + ", got " +
                  std::to_string(chunk) + " bytes");
  const std::pair<std::string_view, std::chrono::milliseconds> timeouts[] = {
      {"connect_ms", cfg.timeouts.connect}, {"io_ms", cfg.timeouts.io},
      {"checkpoint_ms", cfg.timeouts.checkpoint}, {"restore_ms", cfg.timeouts.restore},
      {"commit_ms", cfg.timeouts.commit}, {"ready_ms", cfg.timeouts.ready},
      {"outcome_ms", cfg.timeouts.outcome}};
  if (cfg.pool_threads < 1 || cfg.pool_threads > 64)
    out.push_back("pool_threads: expected an integer 1..64, got " + std::to_string(cfg.pool_threads));
  if (cfg.max_concurrent_migrations < 1 || cfg.max_concurrent_migrations > 256)
    out.push_back("max_concurrent_migrations: expected an integer 1..256, got " +
                  std::to_string(cfg.max_concurrent_migrations));
  if (cfg.precopy.throttle_step_pct > cfg.precopy.throttle_max_pct)
    out.push_back("precopy.throttle_step_pct: " + std::to_string(cfg.precopy.throttle_step_pct) +
                  " exceeds precopy.throttle_max_pct " + std::to_string(cfg.precopy.throttle_max_pct));
  for (const auto& [name, value] : timeouts)
    if (value.count() <= 0)
      out.push_back("timeouts." + std::string(name) +
                    ": expected a positive integer (milliseconds), got " +
                    std::to_string(value.count()));
}

}  // namespace

bool valid_node_name(std::string_view name) { return valid_name(name); }

result<endpoint> parse_endpoint(std::string_view text) {
  auto bad = [&](std::string_view why) {
    return fail(errc::invalid_argument, "expected host:port or [ipv6]:port, got '" +
                                            std::string(text) + "' (" + std::string(why) + ")");
  };
  std::string_view host, port;
  if (text.starts_with('[')) {
    const auto close = text.find(']');
    if (close == std::string_view::npos) return bad("no closing ']'");
    host = text.substr(1, close - 1);
    if (!text.substr(close + 1).starts_with(':')) return bad("missing port");
    port = text.substr(close + 2);
    if (!is_ipv6_literal(host)) return bad("not an IPv6 address");
  } else {
    const auto colon = text.rfind(':');
    if (colon == std::string_view::npos) return bad("missing port");
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) return bad("IPv6 addresses need brackets");
    if (host.size() > 253 || !std::ranges::all_of(host, is_host_char)) return bad("invalid host");
  }
  if (host.empty()) return bad("missing host");
  if (port.empty()) return bad("missing port");
  unsigned number = 0;
  auto [stop, ec] = std::from_chars(port.data(), port.data() + port.size(), number);
  if (ec != std::errc{} || stop != port.data() + port.size() || number == 0 || number > 65535)
    return bad("port must be 1..65535");
  return endpoint{std::string(host), static_cast<std::uint16_t>(number)};
}

std::string endpoint::to_string() const {
  const std::string port_text = std::to_string(port);
  if (host.find(':') != std::string::npos) return "[" + host + "]:" + port_text;
  return host + ":" + port_text;
}

const peer_config* config::find_peer(std::string_view name) const {
  auto it = std::ranges::find(peers, name, &peer_config::name);
  return it == peers.end() ? nullptr : &*it;
}

result<config> parse_config(std::string_view yaml_text, std::string_view origin) {
  const std::string where = "config " + std::string(origin);
  auto root = load_yaml(yaml_text);
  if (!root) return std::unexpected(root.error().context(where));
  config cfg;
  if (auto applied = apply_node(cfg, "", *root); !applied)
    return std::unexpected(applied.error().context(where));
  return cfg;
}

result<config> load_config(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    const int err = errno;
    return fail(errc::config, "config " + file.string() + ": cannot open: " + std::strerror(err));
  }
  const std::string text{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  if (in.bad()) return fail(errc::config, "config " + file.string() + ": read failed");
  return parse_config(text, file.string());
}

result<void> validate(const config& cfg) {
  problems found;
  check_names(cfg, found);
  check_paths(cfg, found);
  check_log(cfg, found);
  check_numbers(cfg, found);
  if (found.empty()) return {};
  std::string message = "config: " + found.front();
  for (std::size_t i = 1; i < found.size(); ++i) message += "; " + found[i];
  return fail(errc::config, std::move(message));
}

// Applied to a copy, so a failed override leaves `cfg` untouched.
result<void> apply_override(config& cfg, std::string_view assignment) {
  const auto equals = assignment.find('=');
  if (equals == std::string_view::npos || equals == 0)
    return fail(errc::config, "config override '" + std::string(assignment) +
                                  "': expected key.path=value");
  const std::string path(assignment.substr(0, equals));
  auto value = load_yaml(assignment.substr(equals + 1));
  if (!value) return std::unexpected(value.error().context("config override: " + path));
  config next = cfg;
  if (auto applied = apply_node(next, path, *value); !applied)
    return std::unexpected(applied.error().context("config override"));
  cfg = std::move(next);
  return {};
}

}  // namespace migrated
