// What every backend shares: CPU accounting and throttling through the
// container's cgroup, the "no image store" answers, and the runtime set.
#include "runtime/runtime.hpp"

#include <algorithm>

#include "runtime/cgroup_cpu.hpp"
#include "runtime/cgroup_memory.hpp"

namespace migrated::runtime {
namespace {

std::unexpected<error> no_images(const runtime& rt) {
  return fail(errc::unsupported, "runtime " + std::string(rt.name()) + " has no image store");
}

}  // namespace

awaitable<result<bool>> runtime::has_image(const std::string&) { co_return no_images(*this); }
awaitable<result<void>> runtime::pull_image(const std::string&, const std::string&) { co_return no_images(*this); }
awaitable<result<std::string>> runtime::commit(const std::string&, const std::string&) { co_return no_images(*this); }
result<std::uint64_t> runtime::export_image(const std::string&, const byte_sink&) { return no_images(*this); }
result<std::unique_ptr<image_import>> runtime::import_image() { return no_images(*this); }

result<double> runtime::cpu_seconds(const container_info& c) {
  auto cpu = cgroup_cpu::of_process(c.pid);
  if (!cpu) return std::unexpected(cpu.error().context(c.id));
  return with_context(cpu->used_seconds(), c.id);
}

result<std::uint64_t> runtime::memory_bytes(const container_info& c) {
  return with_context(cgroup_memory_bytes(c.pid), c.id);
}

result<void> runtime::throttle(const container_info& c, std::uint32_t pct, double cpus_used) {
  auto cpu = cgroup_cpu::of_process(c.pid);
  if (!cpu) return std::unexpected(cpu.error().context("throttle " + c.id));
  if (pct == 0) {
    auto saved = cpu_limit_before_.find(c.id);
    if (saved == cpu_limit_before_.end()) return {};
    auto ok = cpu->restore_limit(saved->second);
    cpu_limit_before_.erase(saved);
    return with_context(ok, "lift the throttle of " + c.id);
  }
  if (!cpu_limit_before_.contains(c.id)) {
    auto saved = cpu->saved_limit();
    if (!saved) return std::unexpected(saved.error().context("throttle " + c.id));
    cpu_limit_before_[c.id] = *saved;
  }
  const double share = double(100 - std::min(pct, 99u)) / 100.0;
  return with_context(cpu->cap(std::max(cpus_used, 0.001) * share), "throttle " + c.id);
}

runtime* runtime_set::find(std::string_view name) const {
  for (auto& rt : all_)
    if (rt->name() == name) return rt.get();
  return nullptr;
}

std::vector<std::string> runtime_set::names() const {
  std::vector<std::string> out;
  for (auto& rt : all_) out.emplace_back(rt->name());
  return out;
}

awaitable<result<runtime_set::located>> runtime_set::locate(const std::string& container,
                                                             const std::string& name) const {
  std::vector<runtime*> asked;
  for (auto& rt : all_)
    if (name.empty() || rt->name() == name) asked.push_back(rt.get());
  if (asked.empty()) {
    std::string known;
    for (auto& n : names()) known += (known.empty() ? "" : ", ") + n;
    co_return fail(errc::unsupported, "runtime '" + name + "' is not enabled on this node (enabled: " + known + ")");
  }
  for (runtime* rt : asked) {
    auto info = co_await rt->inspect(container);
    if (info) co_return located{rt, std::move(*info)};
    // A named runtime's answer is the answer; otherwise ask the next one.
    if (!name.empty() || info.error().code != errc::not_found) co_return std::unexpected(info.error());
  }
  std::string tried;
  for (runtime* rt : asked) tried += (tried.empty() ? "" : " or ") + std::string(rt->name());
  co_return fail(errc::not_found, "container " + container + " does not exist (asked " + tried + ")");
}

}  // namespace migrated::runtime
