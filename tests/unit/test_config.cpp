// Config: defaults, the shipped example, and that every kind of mistake is
// reported with the key path that caused it.

#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>
#include <string>

#include "common/config.hpp"

using namespace migrated;
using Catch::Matchers::Contains;

namespace {

// __FILE__ is absolute under CMake; MIGRATED_SOURCE_DIR covers other builds.
std::filesystem::path example_path() {
  if (const char* source = std::getenv("MIGRATED_SOURCE_DIR"))
    return std::filesystem::path(source) / "config/migrated.yaml";
  return std::filesystem::path(__FILE__).parent_path() / "../../config/migrated.yaml";
}

std::string parse_error(std::string_view yaml) {
  auto cfg = parse_config(yaml, "/x.yaml");
  REQUIRE_FALSE(cfg);
  CHECK(cfg.error().code == errc::config);
  return cfg.error().message;
}

std::string validate_error(const config& cfg) {
  auto checked = validate(cfg);
  REQUIRE_FALSE(checked);
  CHECK(checked.error().code == errc::config);
  return checked.error().message;
}

config minimal() {
  auto cfg = parse_config("node: edge-a\n", "test");
  REQUIRE(cfg);
  return *cfg;
}

}  // namespace

TEST_CASE("config: defaults fill every key but node", "[config]") {
  const config cfg = minimal();
  CHECK(cfg.node_name == "edge-a");
  CHECK(cfg.listen_tcp.to_string() == "0.0.0.0:7450");
  CHECK_FALSE(cfg.listen_udp);
  CHECK_FALSE(cfg.http.listen);  // no HTTP endpoint unless asked for
  CHECK(cfg.http.connections == 16);
  CHECK(cfg.peers.empty());
  CHECK(cfg.storage_dir == "/var/lib/migrated");
  CHECK(cfg.images_dir.empty());  // images under storage unless set
  CHECK(cfg.images_root() == "/var/lib/migrated");
  CHECK(cfg.lazy_images_dir == "/run/migrated/lazy");  // systemd's RuntimeDirectory, a tmpfs
  CHECK(cfg.runc.cgroup_parent == "migrated");
  CHECK(cfg.log.sink == "stderr");
  CHECK(cfg.transfer.zstd_level == 3);
  CHECK(cfg.transfer.chunk_bytes == 1u << 20);
  CHECK(cfg.timeouts.commit == std::chrono::milliseconds(10000));
  CHECK(cfg.postcopy.recover_timeout == std::chrono::milliseconds(30000));
  CHECK(cfg.pool_threads == 4);
  CHECK(cfg.max_concurrent_migrations == 4);
  CHECK(validate(cfg));
}

TEST_CASE("config: the shipped example parses and validates", "[config]") {
  auto cfg = load_config(example_path());
  REQUIRE(cfg);
  CHECK(cfg->node_name == "edge-a");
  REQUIRE(cfg->listen_udp);
  CHECK(cfg->listen_udp->port == 7451);
  REQUIRE(cfg->http.listen);  // on, and for this host's own tools only
  CHECK(cfg->http.listen->to_string() == "127.0.0.1:7452");
  const peer_config* b = cfg->find_peer("edge-b");
  REQUIRE(b);
  CHECK(b->address.to_string() == "10.77.0.2:7450");
  CHECK(cfg->find_peer("edge-z") == nullptr);
  CHECK(cfg->runc.root == "/run/migrated/runc");
  CHECK(cfg->timeouts.checkpoint == std::chrono::milliseconds(120000));
  CHECK(cfg->log.sink == "journald");  // the README's journalctl queries find its lines
  auto checked = validate(*cfg);
  INFO((checked ? std::string() : checked.error().message));
  CHECK(checked);
}

TEST_CASE("config: a full file sets every key", "[config]") {
  auto cfg = parse_config(R"(
node: n1
listen: {tcp: "[::1]:9000", udp: 127.0.0.1:9001}
peers: {n2: "host-2.example:9000", n3: "[fd00::3]:9000"}
tls: {ca: /etc/t/ca.crt, cert: /etc/t/n1.crt, key: /etc/t/n1.key}
allow_unlisted_destinations: true
storage: /s
images: /dev/shm/m
lazy_images: /dev/shm/lazy
pool_threads: 8
max_concurrent_migrations: 16
limits: {pending_connections: 5, pending_per_source: 2, connections: 9, handshake_ms: 700, idle_ms: 800}
runtime: {runc: {binary: /bin/runc, root: /r, bundles: /b, cgroup_parent: cg, cni: {conf_dir: /c, bin_dir: /p}}}
criu: {binary: /bin/criu}
log: {sink: file, level: debug, file: /l.log}
transfer: {zstd_level: 0, chunk_kib: 64}
timeouts: {connect_ms: 1, io_ms: 2, checkpoint_ms: 3, restore_ms: 4, commit_ms: 5}
postcopy: {recover_timeout_ms: 0}
)", "full");
  REQUIRE(cfg);
  CHECK(cfg->listen_tcp.host == "::1");
  CHECK(cfg->listen_tcp.to_string() == "[::1]:9000");
  REQUIRE(cfg->peers.size() == 2);
  CHECK(cfg->find_peer("n3")->address.host == "fd00::3");
  CHECK(cfg->runc.bundles == "/b");
  CHECK(cfg->storage_dir == "/s");
  CHECK(cfg->images_root() == "/dev/shm/m");
  CHECK(cfg->lazy_images_dir == "/dev/shm/lazy");
  CHECK(cfg->log.file == "/l.log");
  CHECK(cfg->transfer.chunk_bytes == 64u * 1024);
  CHECK(cfg->timeouts.restore == std::chrono::milliseconds(4));
  CHECK(cfg->pool_threads == 8);
  CHECK(cfg->max_concurrent_migrations == 16);
  CHECK(cfg->limits.pending_connections == 5);
  CHECK(cfg->limits.pending_per_source == 2);
  CHECK(cfg->limits.connections == 9);
  CHECK(cfg->limits.handshake == std::chrono::milliseconds(700));
  CHECK(cfg->limits.idle == std::chrono::milliseconds(800));
  CHECK(cfg->runc.cni_conf_dir == "/c");
  CHECK(cfg->runc.cni_bin_dir == "/p");
  CHECK(cfg->tls.ca == "/etc/t/ca.crt");
  CHECK(cfg->tls.cert == "/etc/t/n1.crt");
  CHECK(cfg->tls.key == "/etc/t/n1.key");
  CHECK(cfg->allow_unlisted_destinations);
  CHECK(cfg->postcopy.recover_timeout == std::chrono::milliseconds(0));  // 0: no recovery, allowed
  CHECK(validate(*cfg));
}

TEST_CASE("config: tls files and allow_unlisted_destinations", "[config]") {
  SECTION("defaults") {
    const config cfg = minimal();
    CHECK(cfg.tls.ca == "/etc/migrated/tls/ca.crt");
    CHECK(cfg.tls.cert == "/etc/migrated/tls/node.crt");
    CHECK(cfg.tls.key == "/etc/migrated/tls/node.key");
    CHECK_FALSE(cfg.allow_unlisted_destinations);
  }
  SECTION("dotted keys and overrides") {
    auto cfg = parse_config("node: a\ntls:\n  cert: /c.crt\n  key: /k.key\nallow_unlisted_destinations: false\n", "t");
    REQUIRE(cfg);
    CHECK(cfg->tls.cert == "/c.crt");
    CHECK(cfg->tls.key == "/k.key");
    CHECK(cfg->tls.ca == "/etc/migrated/tls/ca.crt");
    CHECK_FALSE(cfg->allow_unlisted_destinations);
    REQUIRE(apply_override(*cfg, "tls.ca=/other/ca.crt"));
    REQUIRE(apply_override(*cfg, "allow_unlisted_destinations=true"));
    CHECK(cfg->tls.ca == "/other/ca.crt");
    CHECK(cfg->allow_unlisted_destinations);
  }
  SECTION("psk_file is refused, pointing at the certificates") {
    const std::string message = parse_error("node: a\npsk_file: /etc/migrated/psk\n");
    CHECK_THAT(message, Contains("psk_file"));
    CHECK_THAT(message, Contains("tls.cert"));
    CHECK_THAT(message, Contains("migrated-ca"));
  }
  SECTION("an unknown tls key") {
    CHECK_THAT(parse_error("node: a\ntls: {certificate: /c}\n"), Contains("unknown key 'tls.certificate'"));
  }
  SECTION("allow_unlisted_destinations takes a boolean") {
    CHECK_THAT(parse_error("node: a\nallow_unlisted_destinations: maybe\n"), Contains("allow_unlisted_destinations"));
  }
  SECTION("an empty tls path fails validation") {
    config cfg = minimal();
    cfg.tls.key.clear();
    CHECK_THAT(validate_error(cfg), Contains("tls.key: required"));
  }
}

TEST_CASE("config: parse errors name the origin and the key path", "[config]") {
  SECTION("unknown nested key") {
    CHECK(parse_error("runtime:\n  runc:\n    rooot: /x\n") ==
          "config /x.yaml: unknown key 'runtime.runc.rooot'");
  }
  SECTION("unknown top-level key") {
    CHECK_THAT(parse_error("node: a\nnodes: b\n"), Contains("unknown key 'nodes'"));
  }
  SECTION("a value where a section belongs") {
    CHECK_THAT(parse_error("runtime: runc\n"),
               Contains("runtime: expected a mapping, got 'runc'"));
  }
  SECTION("bad integer") {
    CHECK(parse_error("timeouts:\n  io_ms: abc\n") ==
          "config /x.yaml: timeouts.io_ms: expected a positive integer (milliseconds), got 'abc'");
    CHECK_THAT(parse_error("timeouts: {commit_ms: 0}"), Contains("timeouts.commit_ms"));
    CHECK_THAT(parse_error("timeouts: {connect_ms: -5}"), Contains("got '-5'"));
  }
  SECTION("bad type") {
    CHECK_THAT(parse_error("node: [a, b]\n"), Contains("node: expected a string, got a list"));
    CHECK_THAT(parse_error("storage:\n"), Contains("storage: expected a path, got nothing"));
  }
  SECTION("out-of-range numbers") {
    CHECK_THAT(parse_error("transfer: {zstd_level: 20}"),
               Contains("transfer.zstd_level: expected an integer 0..19"));
    CHECK_THAT(parse_error("transfer: {chunk_kib: 63}"),
               Contains("transfer.chunk_kib: expected an integer 64..4096 (KiB), got '63'"));
    CHECK_THAT(parse_error("pool_threads: 0"), Contains("pool_threads: expected an integer 1..64, got '0'"));
    CHECK_THAT(parse_error("pool_threads: many"), Contains("pool_threads: expected an integer 1..64"));
    CHECK_THAT(parse_error("max_concurrent_migrations: 257"),
               Contains("max_concurrent_migrations: expected an integer 1..256, got '257'"));
    CHECK_THAT(parse_error("limits: {pending_connections: 0}"),
               Contains("limits.pending_connections: expected an integer 1..4096, got '0'"));
    CHECK_THAT(parse_error("limits: {handshake_ms: soon}"), Contains("limits.handshake_ms"));
    CHECK_THAT(parse_error("postcopy: {recover_timeout_ms: -1}"),
               Contains("postcopy.recover_timeout_ms: expected milliseconds, 0 (no recovery) .. 3600000"));
  }
  SECTION("bad endpoint") {
    CHECK_THAT(parse_error("peers:\n  edge-b: 10.0.0.2\n"),
               Contains("peers.edge-b: expected host:port") && Contains("missing port"));
    CHECK_THAT(parse_error("listen: {tcp: '10.0.0.1:0'}"), Contains("listen.tcp:"));
    CHECK_THAT(parse_error("http: {listen: 'localhost'}"), Contains("http.listen: expected host:port"));
    CHECK_THAT(parse_error("http: {connections: 0}"), Contains("http.connections: expected an integer 1..1024, got '0'"));
  }
  SECTION("duplicate key") {
    CHECK_THAT(parse_error("peers:\n  b: h:1\n  b: h:2\n"), Contains("duplicate key 'peers.b'"));
  }
  SECTION("YAML syntax error gives line and column") {
    CHECK_THAT(parse_error("node: a\nlisten:\n  tcp: [1.2.3.4\n"), Contains("config /x.yaml: line "));
    CHECK_THAT(parse_error("node: a\n  bad: indent\n"), Contains("line 2, column"));
  }
  SECTION("the document must be a mapping") {
    CHECK_THAT(parse_error("just text\n"), Contains("document: expected a mapping"));
  }
}

TEST_CASE("config: a missing file is a config error naming it", "[config]") {
  auto cfg = load_config("/nonexistent/migrated.yaml");
  REQUIRE_FALSE(cfg);
  CHECK(cfg.error().code == errc::config);
  CHECK_THAT(cfg.error().message, Contains("/nonexistent/migrated.yaml"));
}

TEST_CASE("config: endpoints", "[config]") {
  auto v4 = parse_endpoint("10.0.0.1:7450");
  REQUIRE(v4);
  CHECK(v4->host == "10.0.0.1");
  CHECK(v4->port == 7450);
  auto v6 = parse_endpoint("[fe80::1%eth0]:1");
  REQUIRE(v6);
  CHECK(v6->to_string() == "[fe80::1%eth0]:1");
  CHECK(parse_endpoint("localhost:65535"));
  for (const char* bad : {"10.0.0.1", "10.0.0.1:", ":7450", "h:0", "h:65536", "h:12x", "h:-1",
                          "::1:7450", "[::1]", "[::1]7450", "[::1:7450", "[nope]:1", "a b:1"}) {
    INFO(bad);
    auto parsed = parse_endpoint(bad);
    REQUIRE_FALSE(parsed);
    CHECK_THAT(parsed.error().message, Contains(bad));
  }
}

TEST_CASE("config: overrides go through the same keys", "[config]") {
  config cfg = minimal();
  REQUIRE(apply_override(cfg, "log.level=debug"));
  CHECK(cfg.log.level == "debug");
  REQUIRE(apply_override(cfg, "peers.edge-c=10.0.0.3:7450"));
  REQUIRE(cfg.find_peer("edge-c"));
  CHECK(cfg.find_peer("edge-c")->address.port == 7450);
  REQUIRE(apply_override(cfg, "peers.edge-c=10.0.0.3:7460"));
  CHECK(cfg.peers.size() == 1);
  CHECK(cfg.find_peer("edge-c")->address.port == 7460);
  REQUIRE(apply_override(cfg, "peers.edge-c=~"));
  CHECK(cfg.peers.empty());
  REQUIRE(apply_override(cfg, "listen.udp='[::]:7451'"));
  CHECK(cfg.listen_udp->host == "::");
  REQUIRE(apply_override(cfg, "http.listen=127.0.0.1:9000"));
  CHECK(cfg.http.listen->port == 9000);
  REQUIRE(apply_override(cfg, "http.listen=~"));
  CHECK_FALSE(cfg.http.listen);
  REQUIRE(apply_override(cfg, "timeouts={io_ms: 7}"));
  CHECK(cfg.timeouts.io == std::chrono::milliseconds(7));

  const config before = cfg;
  auto unknown = apply_override(cfg, "log.levle=debug");
  REQUIRE_FALSE(unknown);
  CHECK(unknown.error().code == errc::config);
  CHECK(unknown.error().message == "config override: unknown key 'log.levle'");
  auto bad_value = apply_override(cfg, "timeouts={io_ms: 9, commit_ms: x}");
  REQUIRE_FALSE(bad_value);
  CHECK_THAT(bad_value.error().message, Contains("timeouts.commit_ms"));
  CHECK(cfg.timeouts.io == before.timeouts.io);  // a failed override changes nothing
  CHECK_FALSE(apply_override(cfg, "no-equals-sign"));
  CHECK_FALSE(apply_override(cfg, "=debug"));
  CHECK_THAT(apply_override(cfg, "node=[").error().message, Contains("line 1"));
}

TEST_CASE("config: validate checks values and combinations", "[config]") {
  SECTION("node is required") {
    auto cfg = parse_config("peers: {b: h:1}\n", "t");
    REQUIRE(cfg);
    CHECK_THAT(validate_error(*cfg), Contains("node: required"));
  }
  config cfg = minimal();
  SECTION("invalid node name") {
    cfg.node_name = "edge a";
    CHECK_THAT(validate_error(cfg), Contains("node: expected"));
    cfg.node_name = std::string(64, 'a');
    CHECK_THAT(validate_error(cfg), Contains("node: expected"));
  }
  SECTION("peers: valid names, not this node, distinct") {
    cfg.peers.push_back({"bad/name", {"h", 1}});
    CHECK_THAT(validate_error(cfg), Contains("peers.bad/name: expected a name"));
    cfg.peers = {{"edge-a", {"h", 1}}};
    CHECK_THAT(validate_error(cfg), Contains("peers.edge-a: names this node itself"));
    cfg.peers = {{"b", {"h", 1}}, {"b", {"h", 2}}};
    CHECK_THAT(validate_error(cfg), Contains("peers.b: listed more than once"));
    cfg.peers = {{"b", {"h", 0}}};
    CHECK_THAT(validate_error(cfg), Contains("peers.b: expected host:port"));
  }
  SECTION("log.file is given if and only if the sink is a file") {
    cfg.log.sink = "file";
    CHECK(validate_error(cfg) == "config: log.file: required when log.sink is file");
    cfg.log.file = "/tmp/m.log";
    CHECK(validate(cfg));
    cfg.log.sink = "journald";
    CHECK_THAT(validate_error(cfg), Contains("log.file: only used when log.sink is file"));
  }
  SECTION("sink and level names") {
    cfg.log.sink = "syslog";
    cfg.log.level = "verbose";
    const std::string message = validate_error(cfg);
    CHECK_THAT(message, Contains("log.sink: expected") && Contains("log.level: expected"));
  }
  SECTION("ranges") {
    cfg.transfer.zstd_level = 20;
    CHECK_THAT(validate_error(cfg), Contains("transfer.zstd_level"));
    cfg.transfer.zstd_level = 0;
    cfg.transfer.chunk_bytes = 8u << 20;
    CHECK_THAT(validate_error(cfg), Contains("transfer.chunk_kib"));
    cfg.transfer.chunk_bytes = 64u * 1024 + 1;
    CHECK_THAT(validate_error(cfg), Contains("transfer.chunk_kib"));
    cfg.transfer.chunk_bytes = 64u * 1024;
    cfg.timeouts.restore = std::chrono::milliseconds(0);
    CHECK_THAT(validate_error(cfg), Contains("timeouts.restore_ms: expected a positive integer"));
  }
  SECTION("directories are absolute") {
    cfg.storage_dir = "var/lib/migrated";
    cfg.images_dir = "shm/m";
    cfg.lazy_images_dir = "lazy";
    cfg.runc.root = "run";
    const std::string message = validate_error(cfg);
    CHECK_THAT(message, Contains("storage: expected an absolute directory path"));
    CHECK_THAT(message, Contains("images: expected an absolute directory path, got 'shm/m'"));
    CHECK_THAT(message, Contains("lazy_images: expected an absolute directory path, got 'lazy'"));
    cfg.storage_dir = "/var/lib/migrated";
    cfg.images_dir.clear();
    cfg.lazy_images_dir = "/var/lib/migrated/";
    CHECK_THAT(validate_error(cfg), Contains("lazy_images: '/var/lib/migrated/' is also storage or images"));
    CHECK_THAT(message, Contains("runtime.runc.root: expected an absolute directory path"));
    CHECK_THAT(message, !Contains("runtime.runc.bundles"));
  }
  SECTION("cgroup parent and binaries") {
    cfg.runc.cgroup_parent = "../escape";
    cfg.criu.binary.clear();
    const std::string message = validate_error(cfg);
    CHECK_THAT(message, Contains("runtime.runc.cgroup_parent") && Contains("criu.binary: required"));
  }
}
