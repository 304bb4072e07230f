// The runc backend: `runc --root <root> state|checkpoint|restore|kill|delete`.
// Containers migrated to this node get their bundle under runc.bundles/<id>
// and the cgroup path /<runc.cgroup_parent>/<id>, so two nodes can share one
// machine (docs/operations.md).
#pragma once

#include <map>

#include "runtime/runtime.hpp"

namespace migrated::runtime {

class runc_runtime final : public runtime {
 public:
  runc_runtime(const config& cfg, asio::thread_pool& pool);

  std::string_view name() const override { return "runc"; }
  awaitable<result<container_info>> inspect(const std::string& id) override;
  awaitable<result<void>> checkpoint(const std::string& id, const checkpoint_request& req) override;
  awaitable<result<container_info>> restore(const std::string& id, const restore_request& req) override;
  awaitable<result<void>> remove(const std::string& id) override;
  result<double> cpu_seconds(const container_info& c) override;
  result<void> throttle(const container_info& c, std::uint32_t pct, double cpus_used) override;
  std::filesystem::path bundle_path(const std::string& id) const override;
  result<void> adapt_bundle(const std::filesystem::path& bundle, const std::string& id) const override;

  // `runc --version` must answer; the root directory must be creatable.
  awaitable<result<void>> probe();

 private:
  std::vector<std::string> base_args() const;

  config::runc_config cfg_;
  std::chrono::milliseconds checkpoint_timeout_;
  std::chrono::milliseconds restore_timeout_;
  std::string criu_binary_;
  std::map<std::string, std::string> cpu_limit_before_;  // container id -> CPU limit before throttling
  asio::thread_pool& pool_;
};

}  // namespace migrated::runtime
