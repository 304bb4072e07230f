// The runc backend: `runc --root <root> state|checkpoint|restore|run|exec|kill|delete`.
// Containers migrated to this node get their bundle under runc.bundles/<id>
// and the cgroup path /<runc.cgroup_parent>/<id>, so two nodes can share one
// machine (docs/operations.md).
#pragma once

#include <map>
#include <optional>

#include "runtime/cni.hpp"
#include "runtime/runtime.hpp"

namespace migrated::runtime {

class runc_runtime final : public runtime {
 public:
  // `criu`: the options every CRIU that runc runs gets (criu::write_overrides).
  runc_runtime(const config& cfg, criu::overrides criu);
  // runc on a state directory another manager owns (Docker's runc root),
  // with the CRIU options that manager's own restore will use; a network
  // namespace of the container's own is that manager's to set up.
  runc_runtime(const config& cfg, criu::overrides criu, const std::filesystem::path& root,
               std::vector<std::string> criu_options);

  std::string_view name() const override { return "runc"; }
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
  std::filesystem::path bundle_path(const std::string& id) const override;
  result<void> adapt_bundle(const std::filesystem::path& bundle, const std::string& id) const override;

  // `runc --version` must answer; the root directory must be creatable.
  awaitable<result<void>> probe();

 private:
  std::vector<std::string> base_args() const;
  // `runc pause|resume ID`.
  awaitable<result<void>> freezer(const std::string& verb, const std::string& id);
  // `runc delete --force ID` (its network stays).
  awaitable<result<void>> delete_container(const std::string& id);
  // The container's CNI network (cni.hpp), when its bundle names one.
  struct network {
    std::string name;                // annotation migrated.network
    std::filesystem::path netns;     // the named namespace in config.json
  };
  std::optional<network> network_of(const std::filesystem::path& bundle) const;
  awaitable<result<void>> dump(const std::string& id, const checkpoint_request& req);
  awaitable<result<container_info>> launch(const std::string& id, const std::vector<std::string>& verb,
                                           const std::filesystem::path& bundle,
                                           const std::filesystem::path& work_dir, std::string_view what,
                                           const std::vector<std::string>& criu_env);

  config::runc_config cfg_;
  std::chrono::milliseconds checkpoint_timeout_;
  std::chrono::milliseconds restore_timeout_;
  std::string criu_binary_;
  std::vector<std::string> criu_options_;  // on dumps and restores alike
  criu::overrides criu_;                   // CRIU_CONFIG_FILE for runc's CRIU
  std::string node_;                       // names the namespaces of containers restored here
  cni::plugins cni_;
  // Frozen containers whose interface is off its bridge: they get it back on thaw().
  std::map<std::string, std::pair<network, cni::attachment>> isolated_;
};

}  // namespace migrated::runtime
