// CPU control of a container's cgroup, for auto-converge: how much CPU time
// it has used, and a cap on how much it may use. Works on cgroup v2 (cpu.max,
// cpu.stat) and on v1 / hybrid hosts (cpu.cfs_quota_us + cpu.cfs_period_us,
// cpuacct.usage), found from /proc/<pid>/cgroup.
//
// The cap is relative to what the container uses (QEMU's auto-converge takes
// a share of a vCPU's time; a container may use a tiny fraction of one CPU,
// so a share of the machine would slow nothing). When the quota would fall
// under the kernel's 1 ms minimum, the period grows (up to 1 s) instead.
#pragma once

#include <filesystem>
#include <string>

#include "common/error.hpp"

namespace migrated::runtime {

class cgroup_cpu {
 public:
  static result<cgroup_cpu> of_process(int pid);

  // CPU seconds used by the cgroup since it was created.
  result<double> used_seconds() const;
  // The current limit, in a form restore_limit() takes back.
  result<std::string> saved_limit() const;
  result<void> restore_limit(const std::string& saved) const;
  // Caps the cgroup at `cpus` CPUs (0.05 = 5% of one CPU).
  result<void> cap(double cpus) const;

  static constexpr long default_period_us = 100000;  // the kernel's default
  static constexpr long min_quota_us = 1000;         // the kernel's minimum
  static constexpr long max_period_us = 1000000;     // the kernel's maximum

 private:
  bool v2_ = false;
  std::filesystem::path cpu_dir_;   // v2: the cgroup; v1: its cpu hierarchy directory
  std::filesystem::path acct_dir_;  // v1: its cpuacct hierarchy directory
};

}  // namespace migrated::runtime
