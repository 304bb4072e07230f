// make_runtime: the one place that knows every backend.
#include "runtime/docker.hpp"
#include "runtime/runc.hpp"

namespace migrated::runtime {

awaitable<result<std::unique_ptr<runtime>>> make_runtime(std::string_view name, const config& cfg,
                                                         asio::thread_pool& pool, const criu::overrides& criu) {
  if (name == "runc") {
    auto rt = std::make_unique<runc_runtime>(cfg, criu);
    if (auto ok = co_await rt->probe(); !ok) co_return std::unexpected(ok.error());
    co_return std::unique_ptr<runtime>(std::move(rt));
  }
  if (name == "docker") {
    auto rt = std::make_unique<docker_runtime>(cfg, pool, criu);
    if (auto ok = co_await rt->probe(); !ok) co_return std::unexpected(ok.error());
    co_return std::unique_ptr<runtime>(std::move(rt));
  }
  co_return fail(errc::unsupported, "runtime '" + std::string(name) + "' is not supported (known: runc, docker)");
}

}  // namespace migrated::runtime
