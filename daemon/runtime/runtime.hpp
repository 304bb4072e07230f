// A container runtime as migrated needs it: find a container, checkpoint
// it, restore it from images, create, start, stop and remove it, run a
// command inside it, and (for runtimes with an image store) move images.
// Each backend (runc, Docker) implements this interface; a node holds the
// ones its configuration enables (runtime_set). make_runtime() fails at
// start-up with one sentence when a backend cannot work on this host — not
// deep inside a migration.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "asio.hpp"
#include "common/config.hpp"
#include "common/error.hpp"
#include "criu/criu.hpp"

namespace migrated::runtime {

struct volume {
  std::string name;
  std::filesystem::path path;  // where its data lives on this host
};

struct container_info {
  std::string id;
  std::string status;                 // "running", "paused", "stopped", "created", "exited", ...
  int pid = 0;
  // The tree that carries the container's filesystem changes: runc: its
  // bundle (config.json + rootfs); Docker: its writable layer.
  std::filesystem::path bundle;
  std::string image;                  // image reference (runtimes with images)
  std::string image_id;               // "sha256:..."
  std::map<std::string, std::string> labels;  // Docker labels, OCI annotations
  std::string spec;                   // what create() needs at the destination
  std::vector<volume> volumes;        // named volumes whose data moves with it
  // It has a network namespace of its own that no path names (runc: no
  // `path` for it in config.json), so CRIU must carry it in the images ...
  bool own_netns = false;
  // ... which it can for loopback only: the other interfaces in it (a veth
  // on a bridge, say), which CRIU cannot recreate.
  std::vector<std::string> netns_links;
};

// CRIU takes the container's own network namespace into its images.
inline bool carries_netns(const container_info& c) { return c.own_netns && c.netns_links.empty(); }

struct checkpoint_request {
  std::filesystem::path image_dir;
  std::filesystem::path work_dir;     // CRIU logs land here
  bool leave_running = false;         // a warm-up dump: it runs on
  // The final dump of a move: the container stays here frozen, whole, until
  // thaw() (the move failed: it runs on as if nothing happened) or remove()
  // (the move succeeded). A failed dump leaves it running.
  bool keep_frozen = false;
  // With keep_frozen: it is frozen already (a post-copy's copy whose first
  // lazy dump ended with the daemon that ran it) and stays so whatever
  // becomes of this dump.
  bool already_frozen = false;
  // Its own network namespace goes into the images (carries_netns()).
  bool carry_netns = false;
  // With carry_netns: locked by nftables while CRIU dumps it, for a
  // restore whose CRIU can lift that lock (Capabilities.nftables_lock:
  // the restore lifts it the way the dump's inventory says).
  bool nftables_lock = false;
  std::filesystem::path bundle;       // runc: where its config.json is (its network)
  // Post-copy's final dump: no page of private memory is written. CRIU
  // keeps them in the frozen container and serves them on `page_socket`
  // (one end of a connected socketpair: CRIU's page-server protocol,
  // pages/dump_page_client), after writing one byte to `ready_fd` once
  // the images are complete. checkpoint() then returns only when the
  // transfer ended (the client's CLOSE) or `page_transfer_timeout` passed.
  // -1: an ordinary dump. Only runc takes it (errc::unsupported).
  int page_socket = -1;
  int ready_fd = -1;
  std::chrono::milliseconds page_transfer_timeout{std::chrono::hours(1)};
};

struct restore_request {
  std::filesystem::path bundle;
  std::filesystem::path image_dir;
  std::filesystem::path work_dir;
  // Restore without the lazy pages of a post-copy dump: `criu lazy-pages`
  // listens in work_dir (lazy-pages.socket) and fills them on demand.
  bool lazy_pages = false;
};

// Receives an image archive into the runtime's image store (blocking; runs
// on the pool while the archive streams in).
class image_import {
 public:
  virtual ~image_import() = default;
  virtual result<void> write(std::span<const std::uint8_t> bytes) = 0;
  // Ends the archive; the store has the image once this succeeds.
  virtual result<void> finish() = 0;
};

using byte_sink = std::function<bool(std::span<const std::uint8_t>)>;

class runtime {
 public:
  virtual ~runtime() = default;
  virtual std::string_view name() const = 0;

  // errc::not_found when no such container exists.
  virtual awaitable<result<container_info>> inspect(const std::string& id) = 0;
  virtual awaitable<result<void>> checkpoint(const std::string& id, const checkpoint_request& req) = 0;
  // Brings back the process state of `req.image_dir` in container `id`
  // (runc: from its bundle; Docker: a created or exited container).
  virtual awaitable<result<container_info>> restore(const std::string& id, const restore_request& req) = 0;
  // Kills and deletes (also a frozen one); success when it does not exist.
  virtual awaitable<result<void>> remove(const std::string& id) = 0;
  // Lets a container frozen by checkpoint(keep_frozen) run on.
  virtual awaitable<result<void>> thaw(const std::string& id) = 0;

  // Destination: makes container `id` ready to receive its filesystem tree
  // and returns it (`bundle` is where the tree goes). runc: an empty bundle
  // directory; Docker: a container created (not started) from `spec`.
  virtual awaitable<result<container_info>> create(const std::string& id, const std::string& spec) = 0;
  // Starts a container fresh, without process state (filesystem methods,
  // and bringing back the source when one of them fails).
  virtual awaitable<result<container_info>> start(const std::string& id, const std::filesystem::path& bundle,
                                                  const std::filesystem::path& work_dir) = 0;
  // Stops a running container and keeps its filesystem.
  virtual awaitable<result<void>> stop(const std::string& id) = 0;
  // Runs argv inside the running container; its exit code.
  virtual awaitable<result<int>> exec(const std::string& id, const std::vector<std::string>& argv,
                                      std::chrono::milliseconds timeout) = 0;
  // Keeps the runtime from restarting the container on its own while it is
  // being moved (Docker's restart policy would start a fresh copy the moment
  // the final checkpoint stops it); false puts the policy back.
  virtual awaitable<result<void>> hold_restarts(const container_info&, bool) { co_return result<void>{}; }

  // Runtimes with an image store (Docker). Without one, images travel
  // inside the bundle and these are never called.
  virtual bool has_images() const { return false; }
  virtual awaitable<result<bool>> has_image(const std::string& image_id);
  virtual awaitable<result<void>> pull_image(const std::string& registry, const std::string& ref);
  // Commits the container's filesystem as image `ref`; the new image's id.
  virtual awaitable<result<std::string>> commit(const std::string& id, const std::string& ref);
  virtual result<std::uint64_t> export_image(const std::string& ref, const byte_sink& sink);
  virtual result<std::unique_ptr<image_import>> import_image();

  // CPU seconds the container has used so far (auto-converge's measure of
  // its demand), from its cgroup.
  virtual result<double> cpu_seconds(const container_info& c);
  // Bytes of memory its checkpoint will write (anonymous and shared pages,
  // from its cgroup): what a destination needs room for.
  virtual result<std::uint64_t> memory_bytes(const container_info& c);
  // Auto-converge: caps the container at (100 - pct)% of the `cpus_used`
  // CPUs it has been using (through its cgroup); pct 0 restores the limit
  // it had before the first throttle.
  virtual result<void> throttle(const container_info& c, std::uint32_t pct, double cpus_used);

  // Where this node keeps the bundle of a container it receives.
  virtual std::filesystem::path bundle_path(const std::string& id) const = 0;
  // Makes a received bundle fit this node (cgroup path, rootfs location).
  virtual result<void> adapt_bundle(const std::filesystem::path& bundle, const std::string& id) const = 0;

 private:
  std::map<std::string, std::string> cpu_limit_before_;  // container id -> CPU limit before throttling
};

// "runc" or "docker", whose runc calls point CRIU at `criu` (criu::write_overrides).
// Checks the backend can work here (binary answers,
// engine reachable with checkpoint support, directories usable).
awaitable<result<std::unique_ptr<runtime>>> make_runtime(std::string_view name, const config& cfg,
                                                         asio::thread_pool& pool, const criu::overrides& criu);

// The runtimes a node's configuration enables, in order (runc first).
class runtime_set {
 public:
  void add(std::unique_ptr<runtime> rt) { all_.push_back(std::move(rt)); }
  runtime* find(std::string_view name) const;
  std::vector<std::string> names() const;
  // The runtime named `name`, or (empty name) the first one that knows the
  // container, with the container as it found it; errc::not_found naming the
  // runtimes asked otherwise.
  struct located {
    runtime* rt = nullptr;
    container_info container;
  };
  awaitable<result<located>> locate(const std::string& container, const std::string& name) const;

 private:
  std::vector<std::unique_ptr<runtime>> all_;
};

}  // namespace migrated::runtime
