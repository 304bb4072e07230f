// A container runtime as migrated needs it: find a container, checkpoint
// it, restore it from images, remove it, and say where bundles live. Each
// backend (runc here; Docker later) implements this small interface and is
// chosen by make_runtime(), which fails at start-up with one sentence when
// the backend cannot work on this host — not deep inside a migration.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

#include "asio.hpp"
#include "common/config.hpp"
#include "common/error.hpp"

namespace migrated::runtime {

struct container_info {
  std::string id;
  std::string status;                 // "running", "paused", "stopped", ...
  int pid = 0;
  std::filesystem::path bundle;       // config.json + rootfs
};

struct checkpoint_request {
  std::filesystem::path image_dir;
  std::filesystem::path work_dir;     // CRIU logs land here
  bool leave_running = false;
};

struct restore_request {
  std::filesystem::path bundle;
  std::filesystem::path image_dir;
  std::filesystem::path work_dir;
};

class runtime {
 public:
  virtual ~runtime() = default;
  virtual std::string_view name() const = 0;

  // errc::not_found when no such container exists.
  virtual awaitable<result<container_info>> inspect(const std::string& id) = 0;
  virtual awaitable<result<void>> checkpoint(const std::string& id, const checkpoint_request& req) = 0;
  virtual awaitable<result<container_info>> restore(const std::string& id, const restore_request& req) = 0;
  // Kills and deletes; success when the container does not exist.
  virtual awaitable<result<void>> remove(const std::string& id) = 0;

  // CPU seconds the container has used so far (auto-converge's measure of
  // its demand).
  virtual result<double> cpu_seconds(const container_info& c) = 0;
  // Auto-converge: caps the container at (100 - pct)% of the `cpus_used`
  // CPUs it has been using (through its cgroup); pct 0 restores the limit
  // it had before the first throttle.
  virtual result<void> throttle(const container_info& c, std::uint32_t pct, double cpus_used) = 0;

  // Where this node keeps the bundle of a container it receives.
  virtual std::filesystem::path bundle_path(const std::string& id) const = 0;
  // Makes a received bundle fit this node (cgroup path, rootfs location).
  virtual result<void> adapt_bundle(const std::filesystem::path& bundle, const std::string& id) const = 0;
};

// "runc" → the runc backend. Checks the binary answers and its state
// directory is usable.
awaitable<result<std::unique_ptr<runtime>>> make_runtime(std::string_view name, const config& cfg,
                                                         asio::thread_pool& pool);

}  // namespace migrated::runtime
