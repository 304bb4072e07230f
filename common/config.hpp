// The daemon's configuration: defaults, then the YAML file, then command-line
// overrides ("key.path=value"), all through one parser; then validate()
// checks values and combinations. Unknown keys are errors naming the key path
// ("peers.edge-b: expected host:port"). config/migrated.yaml documents every key.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.hpp"

namespace migrated {

struct endpoint {
  std::string host;    // IPv4/IPv6 literal or name
  std::uint16_t port = 0;
  std::string to_string() const;  // "host:port", IPv6 in brackets
};

// 1..63 characters from [A-Za-z0-9._-], not "." or "..": node names, which
// also become file names.
bool valid_node_name(std::string_view name);

// "10.0.0.1:7450", "[::1]:7450", "localhost:7450"; port required, 1..65535.
result<endpoint> parse_endpoint(std::string_view text);

struct peer_config {
  std::string name;
  endpoint address;
};

struct config {
  std::string node_name;                     // node: (required)
  endpoint listen_tcp{"0.0.0.0", 7450};      // listen.tcp
  std::optional<endpoint> listen_udp;        // listen.udp (absent: no UDP)
  // The read-only HTTP endpoint: /metrics, /v1/migrations, /healthz
  // (server/http_server.hpp). No certificate: bind it where only the
  // host's own tools reach it.
  struct http_config {
    std::optional<endpoint> listen;          // http.listen (absent: no HTTP)
    std::uint32_t connections = 16;          // http.connections: 1..1024 at once
  } http;
  std::vector<peer_config> peers;            // peers: {name: host:port}
  // Migrate to a host:port that `peers:` does not list (its certificate must
  // still be a peer's of this fleet). Off: only listed peers.
  bool allow_unlisted_destinations = false;  // allow_unlisted_destinations:
  // This node's identity (credentials.hpp): tls.ca, tls.cert, tls.key.
  struct tls_config {
    std::filesystem::path ca = "/etc/migrated/tls/ca.crt";
    std::filesystem::path cert = "/etc/migrated/tls/node.crt";
    std::filesystem::path key = "/etc/migrated/tls/node.key";
  } tls;
  std::filesystem::path storage_dir = "/var/lib/migrated"; // storage:
  // Where checkpoint images go while a migration runs (outgoing/,
  // incoming/, measure/); empty: under storage_dir. A tmpfs here keeps the
  // images' writeback, and the fsyncs queued behind it, out of downtimes.
  std::filesystem::path images_dir;                        // images:
  const std::filesystem::path& images_root() const { return images_dir.empty() ? storage_dir : images_dir; }
  // Where a lazy dump (post-copy's final one) writes its images and CRIU's
  // log: they hold no memory, and on a tmpfs no file they need waits behind
  // the disk's writeback of earlier rounds while the container is frozen.
  std::filesystem::path lazy_images_dir = "/run/migrated/lazy";  // lazy_images:
  // Threads for blocking work (hashing, compression, file I/O, Docker API
  // calls); child processes need none.
  std::uint32_t pool_threads = 4;            // pool_threads: 1..64
  // Migrations this node runs as the source at once; more wait, queued.
  std::uint32_t max_concurrent_migrations = 4;  // max_concurrent_migrations: 1..256

  struct runc_config {
    std::filesystem::path binary = "runc";                       // runtime.runc.binary
    std::filesystem::path root = "/run/migrated/runc";           // runtime.runc.root
    std::filesystem::path bundles = "/var/lib/migrated/bundles"; // runtime.runc.bundles
    std::string cgroup_parent = "migrated";                      // runtime.runc.cgroup_parent
    // Containers on a CNI network (annotation migrated.network = a file
    // <conf_dir>/<name>.conf): where those files and the plugins are.
    std::filesystem::path cni_conf_dir = "/etc/cni/net.d";     // runtime.runc.cni.conf_dir
    std::filesystem::path cni_bin_dir = "/usr/lib/cni";        // runtime.runc.cni.bin_dir
  } runc;

  // The Docker backend (runtime.docker.*): off unless enabled.
  struct docker_config {
    bool enabled = false;                                   // runtime.docker.enabled
    std::filesystem::path socket = "/var/run/docker.sock";  // runtime.docker.socket
    bool accept_images = true;      // runtime.docker.accept_images: load images peers send
    std::string registry;           // runtime.docker.registry: pull missing images from here first
    std::uint32_t stop_timeout_s = 10;  // runtime.docker.stop_timeout_s: 0..300, SIGTERM → SIGKILL
    // runtime.docker.runc_root: the engine's runc state (<exec-root>/runtime-runc/moby);
    // checkpoints go to runc directly when the container is found there.
    std::filesystem::path runc_root = "/run/docker/runtime-runc/moby";
  } docker;

  struct criu_config {
    std::filesystem::path binary = "criu";  // criu.binary
  } criu;

  struct log_config {
    std::string sink = "stderr";  // log.sink: stderr | journald | file
    std::string level = "info";   // log.level: trace|debug|info|warn|error
    std::filesystem::path file;   // log.file (required when sink is file)
  } log;

  struct transfer_config {
    int zstd_level = 3;                      // transfer.zstd_level: 0 (off) .. 19
    std::uint32_t chunk_bytes = 1u << 20;    // transfer.chunk_kib * 1024, 64 KiB .. 4 MiB
  } transfer;

  // Pre-copy: warm-up rounds while the container runs, then the final one.
  struct precopy_config {
    std::uint32_t max_rounds = 8;             // precopy.max_rounds: 1..30 warm-up rounds at most
    std::uint32_t final_transfer_ms = 50;     // precopy.final_transfer_ms: stop warming up when the
                                              //   last round's delta would cross the link this fast
    std::uint32_t min_shrink_pct = 10;        // precopy.min_shrink_pct: a round must shrink the delta
                                              //   by this much, else the rounds stop (or throttle)
    bool auto_converge = true;                // precopy.auto_converge: throttle a container that
                                              //   dirties memory faster than the link carries it
    std::uint32_t throttle_step_pct = 20;     // precopy.throttle_step_pct: 1..99
    std::uint32_t throttle_max_pct = 90;      // precopy.throttle_max_pct: 1..99
  } precopy;

  // Post-copy and hybrid: the page link between the two daemons.
  struct postcopy_config {
    // postcopy.recover_timeout_ms: how long a lost page link may stay down
    // (the destination's process waiting on its faults) while the source
    // opens another, before both sides give up and the source thaws its
    // copy; 0: a lost link rolls back at once.
    std::chrono::milliseconds recover_timeout{30000};
  } postcopy;

  // What a flood of connections may cost (limits.*). A connection that has
  // not proven its key yet is pending: the oldest pending one makes room for
  // a new one, so idle or slow connections never lock a controller out.
  struct limits_config {
    std::uint32_t pending_connections = 64;     // limits.pending_connections: 1..4096
    std::uint32_t pending_per_source = 8;       // limits.pending_per_source: 1..4096 (one source address)
    std::uint32_t connections = 256;            // limits.connections: 1..65536 authenticated at once
    std::chrono::milliseconds handshake{3000};  // limits.handshake_ms: to prove the key
    std::chrono::milliseconds idle{60000};      // limits.idle_ms: a controller between commands
  } limits;

  struct timeout_config {
    std::chrono::milliseconds connect{5000};      // timeouts.connect_ms
    std::chrono::milliseconds io{15000};          // timeouts.io_ms (one frame read/write)
    std::chrono::milliseconds checkpoint{120000}; // timeouts.checkpoint_ms
    std::chrono::milliseconds restore{120000};    // timeouts.restore_ms
    std::chrono::milliseconds commit{10000};      // timeouts.commit_ms (destination waits this long for Commit)
    std::chrono::milliseconds ready{30000};       // timeouts.ready_ms (readiness probe, unless the container says)
    // timeouts.outcome_ms: how long a source whose Commit went unanswered
    // asks the destination what became of it before it reports the
    // container lost (kept frozen, never thawed on a guess)
    std::chrono::milliseconds outcome{120000};
  } timeouts;

  const peer_config* find_peer(std::string_view name) const;
};

// Parses YAML text on top of the defaults. `origin` names the source in
// messages ("/etc/migrated/migrated.yaml").
result<config> parse_config(std::string_view yaml_text, std::string_view origin);
result<config> load_config(const std::filesystem::path& file);

// Applies "key.path=value" (value is YAML: "log.level=debug",
// "peers.edge-c=10.0.0.3:7450") through the same parser as the file.
result<void> apply_override(config& cfg, std::string_view assignment);

// Checks values and combinations; the message names the key path.
result<void> validate(const config& cfg);

}  // namespace migrated
