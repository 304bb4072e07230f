// The Docker backend: the Engine API over its unix socket (docker/engine),
// never the docker CLI. Every API call is blocking and runs on the thread
// pool (config: pool_threads), never on the I/O thread.
//
// How a container moves between engines:
// - its writable layer (overlay2's UpperDir) is the tree that carries its
//   filesystem changes, synced like a runc bundle; named volumes move the
//   same way;
// - the destination creates a container from the source's configuration
//   (image, command, environment, labels, ports, volumes, restart policy,
//   networks with the same address on user-defined networks) before any
//   state arrives;
// - checkpoints are written straight into migrated's round directories (by
//   runc under the engine's runc root when the container is there: the
//   engine's own path copies every checkpoint twice; else through the API)
//   and, for a restore, moved to where Docker 20.10 looks for them on
//   start: <data-root>/containers/<id>/checkpoints/<name>.
// The engine must run with experimental features (checkpoint support) and
// the overlay2 storage driver; probe() says so at start-up otherwise.
#pragma once

#include "docker/engine.hpp"
#include "runtime/runc.hpp"
#include "runtime/runtime.hpp"

namespace migrated::runtime {

class docker_runtime final : public runtime {
 public:
  docker_runtime(const config& cfg, asio::thread_pool& pool, const criu::overrides& criu);

  std::string_view name() const override { return "docker"; }
  awaitable<result<container_info>> inspect(const std::string& id) override;
  awaitable<result<void>> checkpoint(const std::string& id, const checkpoint_request& req) override;
  awaitable<result<container_info>> restore(const std::string& id, const restore_request& req) override;
  awaitable<result<void>> remove(const std::string& id) override;
  awaitable<result<void>> thaw(const std::string& id) override;
  awaitable<result<container_info>> create(const std::string& id, const std::string& spec) override;
  awaitable<result<container_info>> start(const std::string& id, const std::filesystem::path& bundle,
                                          const std::filesystem::path& work_dir) override;
  awaitable<result<void>> stop(const std::string& id) override;
  awaitable<result<int>> exec(const std::string& id, const std::vector<std::string>& argv,
                              std::chrono::milliseconds timeout) override;
  awaitable<result<void>> hold_restarts(const container_info& c, bool hold) override;

  bool has_images() const override { return true; }
  awaitable<result<bool>> has_image(const std::string& image_id) override;
  awaitable<result<void>> pull_image(const std::string& registry, const std::string& ref) override;
  awaitable<result<std::string>> commit(const std::string& id, const std::string& ref) override;
  result<std::uint64_t> export_image(const std::string& ref, const byte_sink& sink) override;
  result<std::unique_ptr<image_import>> import_image() override;

  std::filesystem::path bundle_path(const std::string&) const override { return {}; }
  result<void> adapt_bundle(const std::filesystem::path&, const std::string&) const override { return {}; }

  // The engine answers, has checkpoint support and overlay2.
  awaitable<result<void>> probe();

 private:
  // One API call on the pool.
  awaitable<result<docker::json>> call(docker::http::verb method, const std::string& target,
                                       const docker::json& body, std::chrono::milliseconds timeout);

  // One dump, by runc under the engine's runc root when the container is there.
  awaitable<result<void>> dump(const std::string& id, const checkpoint_request& req);
  awaitable<result<void>> checkpoint_with_runc(const std::string& id, const std::string& full_id,
                                               const checkpoint_request& req);

  docker::engine engine_;
  config::docker_config cfg_;
  runc_runtime engine_runc_;  // runc on the engine's own runc root, for dumps
  std::chrono::milliseconds checkpoint_timeout_;
  std::chrono::milliseconds restore_timeout_;
  std::filesystem::path data_root_;  // the engine's DockerRootDir
  asio::thread_pool& pool_;
};

// The create request (POST /containers/create) that rebuilds the container
// `inspected` (GET /containers/{id}/json) on another engine.
docker::json create_spec(const docker::json& inspected);

// What migrated needs to know of a container, from GET /containers/{id}/json.
container_info describe_container(const docker::json& inspected);

}  // namespace migrated::runtime
