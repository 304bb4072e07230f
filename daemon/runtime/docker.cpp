// Docker backend (see docker.hpp for how a container moves between engines).
#include "runtime/docker.hpp"

#include <regex>

#include "criu/criu.hpp"
#include "runtime/containerd_staging.hpp"

namespace migrated::runtime {
namespace {

using docker::json;
using docker::http::verb;
using docker::query_escape;

std::string text(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

// Docker's checkpoint errors name CRIU's log ("… path= /run/…/criu-dump.log:
// unknown"): lift its Error lines into the message.
error with_criu_log(const error& e) {
  static const std::regex path_re(R"(path= ?(/\S+\.log))");
  std::smatch m;
  if (!std::regex_search(e.message, m, path_re)) return e;
  auto lifted = criu::log_errors(m[1].str());
  return lifted.empty() ? e : error{errc::criu, e.message + "; criu: " + lifted};
}

result<void> done(const result<json>& r) {
  if (!r) return std::unexpected(r.error());
  return {};
}

}  // namespace

container_info describe_container(const json& j) {
  container_info info;
  info.id = text(j, "Name");
  if (!info.id.empty() && info.id[0] == '/') info.id.erase(0, 1);
  const json& state = j.value("State", json::object());
  info.status = text(state, "Status");
  info.pid = state.value("Pid", 0);
  const json& driver = j.value("GraphDriver", json::object());
  info.bundle = text(driver.value("Data", json::object()), "UpperDir");
  const json& cfg = j.value("Config", json::object());
  info.image = text(cfg, "Image");
  info.image_id = text(j, "Image");
  if (auto labels = cfg.find("Labels"); labels != cfg.end() && labels->is_object())
    for (auto& [k, v] : labels->items())
      if (v.is_string()) info.labels[k] = v.get<std::string>();
  for (const auto& m : j.value("Mounts", json::array()))
    if (text(m, "Type") == "volume" && text(m, "Driver") == "local")
      info.volumes.push_back({text(m, "Name"), text(m, "Source")});
  info.spec = create_spec(j).dump();
  return info;
}

namespace {

// The default networks exist everywhere and take no fixed address.
bool user_defined(const std::string& network) {
  return network != "bridge" && network != "host" && network != "none" && network != "default";
}

class load_stream final : public image_import {
 public:
  explicit load_stream(docker::engine::upload up) : up_(std::move(up)) {}
  result<void> write(std::span<const std::uint8_t> bytes) override {
    return with_context(up_.write(bytes), "load image");
  }
  result<void> finish() override {
    auto r = up_.finish();
    if (!r) return std::unexpected(r.error().context("load image"));
    return {};
  }

 private:
  docker::engine::upload up_;
};

}  // namespace

json create_spec(const json& inspected) {
  json spec = inspected.value("Config", json::object());
  spec["HostConfig"] = inspected.value("HostConfig", json::object());
  json endpoints = json::object();
  const json settings = inspected.value("NetworkSettings", json::object());
  const json networks = settings.value("Networks", json::object());
  for (auto& [name, net] : networks.items()) {
    if (!user_defined(name)) continue;
    json ep = json::object();
    json ipam = net.value("IPAMConfig", json());
    if (!ipam.is_object()) ipam = json::object();
    // Keep the address (seed E's kept IP): the network exists on both hosts.
    if (text(ipam, "IPv4Address").empty() && !text(net, "IPAddress").empty())
      ipam["IPv4Address"] = text(net, "IPAddress");
    ep["IPAMConfig"] = ipam;
    if (net.contains("Aliases") && net["Aliases"].is_array()) {
      // Docker adds the short container id as an alias; it means nothing there.
      json aliases = json::array();
      const std::string short_id = text(inspected, "Id").substr(0, 12);
      for (auto& a : net["Aliases"])
        if (a.is_string() && a.get<std::string>() != short_id) aliases.push_back(a);
      ep["Aliases"] = aliases;
    }
    endpoints[name] = ep;
  }
  if (!endpoints.empty()) spec["NetworkingConfig"] = {{"EndpointsConfig", endpoints}};
  return spec;
}

docker_runtime::docker_runtime(const config& cfg, asio::thread_pool& pool, const criu::overrides& criu)
    : engine_(cfg.docker.socket),
      cfg_(cfg.docker),
      engine_runc_(cfg, criu, cfg.docker.runc_root, {}),
      checkpoint_timeout_(cfg.timeouts.checkpoint),
      restore_timeout_(cfg.timeouts.restore),
      pool_(pool) {}

awaitable<result<json>> docker_runtime::call(verb method, const std::string& target, const json& body,
                                             std::chrono::milliseconds timeout) {
  const docker::engine& e = engine_;
  co_return co_await offload(pool_, [&e, method, &target, &body, timeout] { return e.call(method, target, body, timeout); });
}

awaitable<result<void>> docker_runtime::probe() {
  const std::string where = "docker runtime (" + cfg_.socket.string() + ")";
  const json none;
  auto info = co_await call(verb::get, "/info", none, std::chrono::seconds(10));
  if (!info) co_return std::unexpected(info.error().context(where));
  if (!info->value("ExperimentalBuild", false))
    co_return fail(errc::config, where + ": the engine lacks checkpoint support: run dockerd with --experimental "
                                         "(or \"experimental\": true in daemon.json)");
  if (text(*info, "Driver") != "overlay2")
    co_return fail(errc::config, where + ": storage driver '" + text(*info, "Driver") +
                                     "' is not supported (overlay2 is: migrated moves the writable layer)");
  data_root_ = text(*info, "DockerRootDir");
  if (data_root_.empty()) co_return fail(errc::runtime, where + ": the engine did not say its DockerRootDir");
  co_return result<void>{};
}

awaitable<result<container_info>> docker_runtime::inspect(const std::string& id) {
  const json none;
  auto j = co_await call(verb::get, "/containers/" + query_escape(id) + "/json", none, std::chrono::seconds(30));
  if (!j) {
    if (j.error().code == errc::not_found)
      co_return fail(errc::not_found, "container " + id + " does not exist (Docker engine " + cfg_.socket.string() + ")");
    co_return std::unexpected(j.error());
  }
  co_return describe_container(*j);
}

// keep_frozen: the engine pauses the container (it knows it is paused, so
// its restart policy never sees an exit), then a dump that leaves it running.
awaitable<result<void>> docker_runtime::checkpoint(const std::string& id, const checkpoint_request& req) {
  if (req.page_socket >= 0)
    co_return fail(errc::unsupported, "checkpoint " + id +
                                          ": Docker restores a checkpoint only whole (its start?checkpoint= takes "
                                          "no lazy pages), so post-copy is for runc containers");
  if (!req.keep_frozen) co_return co_await dump(id, req);
  const json none;
  auto paused = co_await call(verb::post, "/containers/" + query_escape(id) + "/pause", none, std::chrono::seconds(30));
  if (!paused) co_return std::unexpected(paused.error().context("checkpoint " + id + ": pause"));
  checkpoint_request dump_req = req;
  dump_req.leave_running = true;
  dump_req.keep_frozen = false;
  auto ok = co_await dump(id, dump_req);
  if (!ok) co_await thaw(id);  // a failed dump leaves it running
  co_return ok;
}

awaitable<result<void>> docker_runtime::thaw(const std::string& id) {
  const json none;
  auto r = co_await call(verb::post, "/containers/" + query_escape(id) + "/unpause", none, std::chrono::seconds(30));
  co_return with_context(done(r), "thaw " + id);
}

awaitable<result<void>> docker_runtime::dump(const std::string& id, const checkpoint_request& req) {
  const json none;
  auto j = co_await call(verb::get, "/containers/" + query_escape(id) + "/json", none, std::chrono::seconds(30));
  if (!j) co_return std::unexpected(j.error().context("checkpoint " + id));
  // Docker refuses to write into an existing checkpoint directory.
  std::error_code ec;
  std::filesystem::remove(req.image_dir, ec);
  const std::string full_id = text(*j, "Id");
  if (!full_id.empty() && std::filesystem::exists(cfg_.runc_root / full_id / "state.json", ec))
    co_return co_await checkpoint_with_runc(id, full_id, req);
  const json body{{"CheckpointID", req.image_dir.filename().string()},
                  {"CheckpointDir", req.image_dir.parent_path().string()},
                  {"Exit", !req.leave_running}};
  auto r = co_await call(verb::post, "/containers/" + query_escape(id) + "/checkpoints", body, checkpoint_timeout_);
  if (!r) co_return std::unexpected(with_criu_log(r.error()).context("checkpoint " + id));
  co_return result<void>{};
}

// The engine's own checkpoint goes through containerd, which tars the
// images into its content store and Docker untars them again: 4-7x the dump
// itself (1.1-2.1 s against 0.2-0.3 s for 32 MiB here). The container is a
// runc container under the engine's runc root, so dump it there, with the
// options Docker's restore uses (none: no --tcp-established, no
// --file-locks). A final dump ends the container as `docker stop` would; the
// engine sees it exit (137), and `start --checkpoint` brings it back.
awaitable<result<void>> docker_runtime::checkpoint_with_runc(const std::string& id, const std::string& full_id,
                                                             const checkpoint_request& req) {
  auto ok = co_await engine_runc_.checkpoint(full_id, req);
  if (!ok) co_return fail(ok.error().code, "checkpoint " + id + " (" + ok.error().message + ")");
  co_return result<void>{};
}

awaitable<result<container_info>> docker_runtime::restore(const std::string& id, const restore_request& req) {
  if (req.lazy_pages)
    co_return fail(errc::unsupported, "restore " + id + ": Docker restores a checkpoint only whole, without lazy pages");
  const json none;
  auto j = co_await call(verb::get, "/containers/" + query_escape(id) + "/json", none, std::chrono::seconds(30));
  if (!j) co_return std::unexpected(j.error().context("restore " + id));
  // After a dump with runc the engine learns of the exit a moment later.
  asio::steady_timer timer(co_await asio::this_coro::executor);
  for (int i = 0; i < 100 && j->value("State", json::object()).value("Running", false); ++i) {
    timer.expires_after(std::chrono::milliseconds(50));
    co_await timer.async_wait(use_awaitable);
    j = co_await call(verb::get, "/containers/" + query_escape(id) + "/json", none, std::chrono::seconds(30));
    if (!j) co_return std::unexpected(j.error().context("restore " + id));
  }
  // Docker 20.10 ignores a checkpoint directory on start: put the images
  // where it looks. A rename when the storage shares the filesystem.
  const std::string name = "migrated-" + req.image_dir.filename().string();
  const auto target = data_root_ / "containers" / text(*j, "Id") / "checkpoints" / name;
  const auto from = req.image_dir;
  auto placed = co_await offload(pool_, [&from, &target]() -> std::error_code {
    std::error_code ec;
    std::filesystem::create_directories(target.parent_path(), ec);
    std::filesystem::remove_all(target, ec);
    std::filesystem::rename(from, target, ec);
    if (!ec) return ec;
    ec.clear();  // another filesystem: copy it
    std::filesystem::copy(from, target, std::filesystem::copy_options::recursive, ec);
    return ec;
  });
  if (placed) co_return fail_errno(placed.value(), "restore " + id + ": place the checkpoint in " + target.string());
  // containerd unpacks the checkpoint into a directory of its own and never
  // removes it: a copy of the container's memory per restore, found and
  // removed once the start has answered (containerd_staging.hpp).
  auto staging = co_await offload(pool_, [&target] {
    return std::make_pair(take_staging_snapshot(), identify_checkpoint(target));
  });
  auto started = co_await call(verb::post, "/containers/" + query_escape(id) + "/start?checkpoint=" + query_escape(name),
                               none, restore_timeout_);
  co_await offload(pool_, [&staging] { remove_staged_copies(staging.first, staging.second); });
  if (!started) {
    // The images go back where the caller keeps them (a source's rollback
    // names that directory when it gives up).
    co_await offload(pool_, [&from, &target] {
      std::error_code ec;
      std::filesystem::rename(target, from, ec);
    });
    co_return std::unexpected(with_criu_log(started.error()).context("restore " + id));
  }
  co_await offload(pool_, [&target] {  // the process runs: the images have served
    std::error_code ec;
    std::filesystem::remove_all(target, ec);
  });
  auto info = co_await inspect(id);
  if (!info) co_return std::unexpected(info.error().context("restore " + id));
  if (info->status != "running" || info->pid <= 0)
    co_return fail(errc::runtime, "restore " + id + ": Docker started it but it is " + info->status);
  co_return info;
}

awaitable<result<void>> docker_runtime::remove(const std::string& id) {
  const json none;
  auto r = co_await call(verb::delete_, "/containers/" + query_escape(id) + "?force=1", none, std::chrono::seconds(60));
  if (!r && r.error().code != errc::not_found) co_return std::unexpected(r.error().context("remove " + id));
  co_return result<void>{};
}

awaitable<result<container_info>> docker_runtime::create(const std::string& id, const std::string& spec) {
  json body;
  try {
    body = json::parse(spec);
  } catch (const json::exception& e) {
    co_return fail(errc::invalid_argument, "create " + id + ": unreadable container spec: " + e.what());
  }
  auto r = co_await call(verb::post, "/containers/create?name=" + query_escape(id), body, std::chrono::seconds(60));
  if (!r) co_return std::unexpected(r.error().context("create " + id));
  co_return co_await inspect(id);
}

awaitable<result<container_info>> docker_runtime::start(const std::string& id, const std::filesystem::path&,
                                                        const std::filesystem::path&) {
  const json none;
  auto r = co_await call(verb::post, "/containers/" + query_escape(id) + "/start", none, restore_timeout_);
  if (!r) co_return std::unexpected(r.error().context("start " + id));
  co_return co_await inspect(id);
}

awaitable<result<void>> docker_runtime::stop(const std::string& id) {
  const json none;
  const auto wait = std::chrono::seconds(cfg_.stop_timeout_s + 30);
  auto r = co_await call(verb::post, "/containers/" + query_escape(id) + "/stop?t=" + std::to_string(cfg_.stop_timeout_s),
                         none, wait);
  co_return with_context(done(r), "stop " + id);
}

awaitable<result<int>> docker_runtime::exec(const std::string& id, const std::vector<std::string>& argv,
                                            std::chrono::milliseconds timeout) {
  const json body{{"Cmd", argv}, {"AttachStdout", false}, {"AttachStderr", false}};
  auto made = co_await call(verb::post, "/containers/" + query_escape(id) + "/exec", body, std::chrono::seconds(30));
  if (!made) co_return std::unexpected(made.error().context("exec in " + id));
  const std::string exec_id = text(*made, "Id");
  const json detach{{"Detach", true}};
  auto started = co_await call(verb::post, "/exec/" + exec_id + "/start", detach, std::chrono::seconds(30));
  if (!started) co_return std::unexpected(started.error().context("exec in " + id));
  asio::steady_timer timer(co_await asio::this_coro::executor);
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  const json none;
  for (;;) {
    auto state = co_await call(verb::get, "/exec/" + exec_id + "/json", none, std::chrono::seconds(30));
    if (!state) co_return std::unexpected(state.error().context("exec in " + id));
    if (!state->value("Running", false)) co_return state->value("ExitCode", -1);
    if (std::chrono::steady_clock::now() >= deadline)
      co_return fail(errc::timeout, "exec in " + id + ": still running after " + std::to_string(timeout.count()) + " ms");
    timer.expires_after(std::chrono::milliseconds(50));
    co_await timer.async_wait(use_awaitable);
  }
}

awaitable<result<void>> docker_runtime::hold_restarts(const container_info& c, bool hold) {
  json policy{{"Name", "no"}};
  if (!hold) {
    try {
      policy = json::parse(c.spec).at("HostConfig").at("RestartPolicy");
    } catch (const json::exception&) {
      co_return result<void>{};  // it had none
    }
  }
  const json body{{"RestartPolicy", policy}};
  auto r = co_await call(verb::post, "/containers/" + query_escape(c.id) + "/update", body, std::chrono::seconds(30));
  co_return with_context(done(r), hold ? "hold the restart policy of " + c.id
                                                          : "give back the restart policy of " + c.id);
}

awaitable<result<bool>> docker_runtime::has_image(const std::string& image_id) {
  const json none;
  auto r = co_await call(verb::get, "/images/" + query_escape(image_id) + "/json", none, std::chrono::seconds(30));
  if (r) co_return true;
  if (r.error().code == errc::not_found) co_return false;
  co_return std::unexpected(r.error());
}

awaitable<result<void>> docker_runtime::pull_image(const std::string& registry, const std::string& ref) {
  const json none;
  const std::string remote = registry + "/" + ref;
  auto r = co_await call(verb::post, "/images/create?fromImage=" + query_escape(remote), none, std::chrono::minutes(10));
  if (!r) co_return std::unexpected(r.error().context("pull " + remote));
  if (r->is_array())
    for (auto& m : *r)
      if (m.contains("error")) co_return fail(errc::runtime, "pull " + remote + ": " + text(m, "error"));
  const auto colon = ref.rfind(':');
  const bool tagged = colon != std::string::npos && ref.find('/', colon) == std::string::npos;
  const std::string repo = tagged ? ref.substr(0, colon) : ref;
  const std::string tag = tagged ? ref.substr(colon + 1) : "latest";
  auto t = co_await call(verb::post, "/images/" + query_escape(remote) + "/tag?repo=" + query_escape(repo) +
                                         "&tag=" + query_escape(tag), none, std::chrono::seconds(30));
  if (!t) co_return std::unexpected(t.error().context("tag " + remote + " as " + ref));
  // The registry's name for it stays out of the way (the image keeps `ref`).
  co_await call(verb::delete_, "/images/" + query_escape(remote) + "?noprune=1", none, std::chrono::seconds(30));
  co_return result<void>{};
}

awaitable<result<std::string>> docker_runtime::commit(const std::string& id, const std::string& ref) {
  const auto colon = ref.rfind(':');
  const std::string repo = ref.substr(0, colon), tag = colon == std::string::npos ? "latest" : ref.substr(colon + 1);
  const json none = json::object();
  auto r = co_await call(verb::post, "/commit?container=" + query_escape(id) + "&repo=" + query_escape(repo) +
                                         "&tag=" + query_escape(tag) + "&pause=0", none, std::chrono::minutes(10));
  if (!r) co_return std::unexpected(r.error().context("commit " + id));
  co_return text(*r, "Id");
}

result<std::uint64_t> docker_runtime::export_image(const std::string& ref, const byte_sink& sink) {
  return with_context(engine_.download("/images/get?names=" + query_escape(ref), sink), "export image " + ref);
}

result<std::unique_ptr<image_import>> docker_runtime::import_image() {
  auto up = engine_.begin_upload(verb::post, "/images/load?quiet=1", "application/x-tar");
  if (!up) return std::unexpected(up.error().context("load image"));
  return std::make_unique<load_stream>(std::move(*up));
}

}  // namespace migrated::runtime
