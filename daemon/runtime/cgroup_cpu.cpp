// cgroup CPU accounting and caps (see cgroup_cpu.hpp).
#include "runtime/cgroup_cpu.hpp"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>

namespace migrated::runtime {
namespace {

const std::filesystem::path cgroup_root = "/sys/fs/cgroup";

result<std::string> read_line(const std::filesystem::path& file) {
  std::ifstream in(file);
  std::string line;
  if (!in || !std::getline(in, line)) return fail(errc::io, "read " + file.string());
  return line;
}

result<void> write_value(const std::filesystem::path& file, const std::string& value) {
  std::ofstream out(file);
  out << value;
  out.flush();
  if (!out) return fail(errc::io, "write '" + value + "' to " + file.string());
  return {};
}

bool lists(const std::string& controllers, std::string_view name) {
  std::stringstream list(controllers);
  for (std::string c; std::getline(list, c, ',');)
    if (c == name) return true;
  return false;
}

// Quota and period (µs) that give `cpus` CPUs.
std::pair<long, long> quota_for(double cpus) {
  long period = cgroup_cpu::default_period_us;
  double quota = cpus * double(period);
  if (quota < cgroup_cpu::min_quota_us) {
    period = std::min(cgroup_cpu::max_period_us, long(std::ceil(cgroup_cpu::min_quota_us / std::max(cpus, 1e-6))));
    quota = cgroup_cpu::min_quota_us;
  }
  return {long(quota), period};
}

}  // namespace

result<cgroup_cpu> cgroup_cpu::of_process(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/cgroup");
  if (!in) return fail(errc::not_found, "process " + std::to_string(pid) + " is gone");
  cgroup_cpu v1, v2;
  bool have_v1 = false, have_acct = false, have_v2 = false;
  for (std::string line; std::getline(in, line);) {
    auto first = line.find(':'), second = line.find(':', first + 1);
    if (first == std::string::npos || second == std::string::npos) continue;
    const std::string controllers = line.substr(first + 1, second - first - 1);
    const std::string path = line.substr(second + 2);  // drop the leading '/'
    if (controllers.empty()) {
      v2.v2_ = true;
      v2.cpu_dir_ = cgroup_root / path;
      have_v2 = std::filesystem::exists(v2.cpu_dir_ / "cpu.max");
    }
    if (lists(controllers, "cpu") && std::filesystem::exists(cgroup_root / "cpu" / path / "cpu.cfs_quota_us")) {
      v1.cpu_dir_ = cgroup_root / "cpu" / path;
      have_v1 = true;
    }
    if (lists(controllers, "cpuacct") && std::filesystem::exists(cgroup_root / "cpuacct" / path / "cpuacct.usage")) {
      v1.acct_dir_ = cgroup_root / "cpuacct" / path;
      have_acct = true;
    }
  }
  if (have_v1 && have_acct) return v1;
  if (have_v2) return v2;
  return fail(errc::unsupported, "process " + std::to_string(pid) + " has no cgroup with CPU control and accounting");
}

result<double> cgroup_cpu::used_seconds() const {
  if (!v2_) {
    auto ns = read_line(acct_dir_ / "cpuacct.usage");
    if (!ns) return std::unexpected(ns.error());
    return std::stod(*ns) / 1e9;
  }
  std::ifstream in(cpu_dir_ / "cpu.stat");
  for (std::string key, value; in >> key >> value;)
    if (key == "usage_usec") return std::stod(value) / 1e6;
  return fail(errc::io, "no usage_usec in " + (cpu_dir_ / "cpu.stat").string());
}

result<std::string> cgroup_cpu::saved_limit() const {
  if (v2_) return read_line(cpu_dir_ / "cpu.max");
  auto quota = read_line(cpu_dir_ / "cpu.cfs_quota_us");
  auto period = read_line(cpu_dir_ / "cpu.cfs_period_us");
  if (!quota) return quota;
  if (!period) return period;
  return *quota + " " + *period;
}

result<void> cgroup_cpu::restore_limit(const std::string& saved) const {
  if (v2_) return write_value(cpu_dir_ / "cpu.max", saved);
  std::istringstream in(saved);
  std::string quota, period;
  in >> quota >> period;
  // Lift the quota first: a period change is refused while it would make
  // the current quota exceed the parent's.
  if (auto ok = write_value(cpu_dir_ / "cpu.cfs_quota_us", "-1"); !ok) return ok;
  if (auto ok = write_value(cpu_dir_ / "cpu.cfs_period_us", period); !ok) return ok;
  return write_value(cpu_dir_ / "cpu.cfs_quota_us", quota);
}

result<void> cgroup_cpu::cap(double cpus) const {
  auto [quota, period] = quota_for(cpus);
  if (v2_) return write_value(cpu_dir_ / "cpu.max", std::to_string(quota) + " " + std::to_string(period));
  if (auto ok = write_value(cpu_dir_ / "cpu.cfs_quota_us", "-1"); !ok) return ok;
  if (auto ok = write_value(cpu_dir_ / "cpu.cfs_period_us", std::to_string(period)); !ok) return ok;
  return write_value(cpu_dir_ / "cpu.cfs_quota_us", std::to_string(quota));
}

}  // namespace migrated::runtime
