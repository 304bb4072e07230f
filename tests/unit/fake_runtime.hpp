// A runtime for the session tests: containers live in memory, a checkpoint
// writes real CRIU page images (the fixtures of a tiny process, alternating
// between two dumps so rounds have deltas) plus the process's state, and a
// restore brings that state back only if the pages file it is given is
// byte for byte the one that was dumped — so a session that passes its
// images through the delta engine wrongly fails here.
//
// Every call counts as one operation in a plan shared by both sides of a
// migration; the plan can make operation N fail (or throw), which is how the
// tests inject a failure at every step.
#pragma once

#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "runtime/runtime.hpp"

namespace migrated::testing {

struct fault_plan {
  int fail_at = 0;          // 1-based operation that fails; 0: none
  bool throw_instead = false;
  int ops = 0;
  std::vector<std::string> log;  // "a:checkpoint", "b:restore", ...
  // Called at every operation (its 1-based number and name), before it runs.
  std::function<void(int, const std::string&)> on_step;
  std::set<std::string> always_fail;  // operations that fail every time ("a:thaw")

  // Counts one operation; true when it is the one to fail.
  bool step(const std::string& what) {
    log.push_back(what);
    ++ops;
    if (on_step) on_step(ops, what);
    if (always_fail.contains(what)) return true;
    if (ops != fail_at) return false;
    if (throw_instead) throw std::runtime_error("injected exception in " + what);
    return true;
  }
  int count(const std::string& what) const {
    int n = 0;
    for (auto& l : log) n += l == what;
    return n;
  }
};

class fake_runtime final : public runtime::runtime {
 public:
  struct container {
    std::string status = "running";
    int pid = 100;
    std::uint64_t state = 0;        // the process's memory, as far as the tests care
    std::filesystem::path bundle;
    std::map<std::string, std::string> labels{{"migrated.replay", "true"}};  // replay has a hook
  };

  fake_runtime(std::string side, fault_plan& plan, std::filesystem::path root, std::filesystem::path fixtures)
      : side_(std::move(side)), plan_(plan), root_(std::move(root)), fixtures_(std::move(fixtures)) {}

  std::map<std::string, container> containers;
  int stops = 0;       // final checkpoints and stops that ended a container
  int warm_dumps = 0;  // checkpoints that left it running (its state moved on by one each)
  int comebacks = 0;   // thaws, restores and starts that brought a container back here
  std::uint64_t memory = 1u << 20;  // what memory_bytes() reports (the images need about this much room)

  // A running container with a bundle of a few files.
  void add_running(const std::string& id, std::uint64_t state) {
    container c;
    c.state = state;
    c.bundle = root_ / "bundles-here" / id;
    std::filesystem::create_directories(c.bundle / "rootfs" / "data");
    std::ofstream(c.bundle / "config.json") << "{}\n";
    std::ofstream(c.bundle / "rootfs" / "data" / "file") << "contents of " << id << "\n";
    containers[id] = c;
  }
  bool running(const std::string& id) const {
    auto it = containers.find(id);
    return it != containers.end() && it->second.status == "running";
  }

  std::string_view name() const override { return "runc"; }

  awaitable<result<migrated::runtime::container_info>> inspect(const std::string& id) override {
    if (plan_.step(side_ + ":inspect")) co_return fail(errc::runtime, "injected: inspect");
    auto it = containers.find(id);
    if (it == containers.end()) co_return fail(errc::not_found, "container " + id + " does not exist");
    migrated::runtime::container_info info;
    info.id = id;
    info.status = it->second.status;
    info.pid = it->second.pid;
    info.bundle = it->second.bundle;
    info.labels = it->second.labels;
    co_return info;
  }

  awaitable<result<void>> checkpoint(const std::string& id, const migrated::runtime::checkpoint_request& req) override {
    if (plan_.step(side_ + ":checkpoint")) co_return fail(errc::criu, "injected: checkpoint");
    auto it = containers.find(id);
    if (it == containers.end() || it->second.status != "running") co_return fail(errc::runtime, id + " is not running");
    const std::string dump = (++dumps_ % 2) ? "tiny-1" : "tiny-2";
    std::filesystem::create_directories(req.image_dir);
    std::filesystem::copy_file(fixtures_ / (dump + "-pagemap-1.img"), req.image_dir / "pagemap-1.img",
                               std::filesystem::copy_options::overwrite_existing);
    std::filesystem::copy_file(fixtures_ / (dump + "-pages-1.img"), req.image_dir / "pages-1.img",
                               std::filesystem::copy_options::overwrite_existing);
    std::ofstream(req.image_dir / "fake-state.img") << it->second.state << " " << dump << "\n";
    if (req.leave_running) {
      ++it->second.state;  // it runs on and changes
      ++warm_dumps;
    } else if (req.keep_frozen) {
      it->second.status = "paused";  // frozen here, whole
      ++stops;
    } else {
      containers.erase(it);  // a final checkpoint ends the container
      ++stops;
    }
    co_return result<void>{};
  }

  awaitable<result<void>> thaw(const std::string& id) override {
    if (plan_.step(side_ + ":thaw")) co_return fail(errc::runtime, "injected: thaw");
    auto it = containers.find(id);
    if (it == containers.end() || it->second.status != "paused") co_return fail(errc::runtime, id + " is not frozen");
    it->second.status = "running";
    ++comebacks;
    co_return result<void>{};
  }

  awaitable<result<migrated::runtime::container_info>> restore(const std::string& id, const migrated::runtime::restore_request& req) override {
    if (plan_.step(side_ + ":restore")) co_return fail(errc::criu, "injected: restore");
    std::ifstream in(req.image_dir / "fake-state.img");
    std::uint64_t state = 0;
    std::string dump;
    if (!(in >> state >> dump)) co_return fail(errc::criu, "no process state in " + req.image_dir.string());
    if (slurp(req.image_dir / "pages-1.img") != slurp(fixtures_ / (dump + "-pages-1.img")))
      co_return fail(errc::criu, "pages-1.img differs from the dumped " + dump);
    if (containers.contains(id) && containers[id].status == "running") co_return fail(errc::runtime, id + " already runs");
    container c;
    c.state = state;
    c.bundle = req.bundle;
    c.pid = 200 + int(plan_.ops);
    containers[id] = c;
    ++comebacks;
    co_return info_of(id);
  }

  awaitable<result<void>> remove(const std::string& id) override {
    if (plan_.step(side_ + ":remove")) co_return fail(errc::runtime, "injected: remove");
    containers.erase(id);
    co_return result<void>{};
  }

  awaitable<result<migrated::runtime::container_info>> create(const std::string& id, const std::string&) override {
    if (plan_.step(side_ + ":create")) co_return fail(errc::io, "injected: create");
    migrated::runtime::container_info info{id, "created", 0, bundle_path(id)};
    std::filesystem::create_directories(info.bundle);
    co_return info;
  }

  awaitable<result<migrated::runtime::container_info>> start(const std::string& id, const std::filesystem::path& bundle,
                                                   const std::filesystem::path&) override {
    if (plan_.step(side_ + ":start")) co_return fail(errc::runtime, "injected: start");
    if (!std::filesystem::exists(bundle / "rootfs" / "data" / "file"))
      co_return fail(errc::runtime, "start " + id + ": the bundle has no rootfs");
    container c;
    c.state = 0;  // a fresh start has no memory state
    c.bundle = bundle;
    containers[id] = c;
    ++comebacks;
    co_return info_of(id);
  }

  awaitable<result<void>> stop(const std::string& id) override {
    if (plan_.step(side_ + ":stop")) co_return fail(errc::runtime, "injected: stop");
    if (containers.erase(id)) ++stops;
    co_return result<void>{};
  }

  awaitable<result<int>> exec(const std::string&, const std::vector<std::string>&, std::chrono::milliseconds) override {
    if (plan_.step(side_ + ":exec")) co_return fail(errc::runtime, "injected: exec");
    co_return 0;
  }

  result<double> cpu_seconds(const migrated::runtime::container_info&) override { return 0.0; }
  result<std::uint64_t> memory_bytes(const migrated::runtime::container_info&) override { return memory; }
  result<void> throttle(const migrated::runtime::container_info&, std::uint32_t, double) override { return {}; }

  std::filesystem::path bundle_path(const std::string& id) const override { return root_ / "bundles" / id; }
  result<void> adapt_bundle(const std::filesystem::path&, const std::string&) const override { return {}; }

 private:
  static std::string slurp(const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  }
  migrated::runtime::container_info info_of(const std::string& id) {
    const auto& c = containers[id];
    return migrated::runtime::container_info{id, c.status, c.pid, c.bundle};
  }

  std::string side_;
  fault_plan& plan_;
  std::filesystem::path root_;
  std::filesystem::path fixtures_;
  int dumps_ = 0;
};

}  // namespace migrated::testing
