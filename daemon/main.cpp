// migrated: the daemon. Parses arguments, loads and checks the
// configuration, sets up logging, and runs the node (server/node.hpp).
#include <cstdio>
#include <string>
#include <vector>

#include "asio.hpp"
#include "common/config.hpp"
#include "common/log.hpp"
#include "server/node.hpp"

namespace {

constexpr const char* usage =
    "usage: migrated --config FILE [--check-config] [--set key.path=value]...\n"
    "  --config FILE     YAML configuration (see config/migrated.yaml)\n"
    "  --check-config    validate the configuration and exit (0 when valid)\n"
    "  --set K=V         override one key, e.g. --set log.level=debug\n";

struct args {
  std::string config_file;
  bool check_only = false;
  std::vector<std::string> overrides;
};

bool parse_args(int argc, char** argv, args& out) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--config" && i + 1 < argc) out.config_file = argv[++i];
    else if (a == "--check-config") out.check_only = true;
    else if (a == "--set" && i + 1 < argc) out.overrides.emplace_back(argv[++i]);
    else if (a == "--help" || a == "-h") { std::fputs(usage, stdout); std::exit(0); }
    else return false;
  }
  return !out.config_file.empty();
}

}  // namespace

int main(int argc, char** argv) {
  using namespace migrated;
  args a;
  if (!parse_args(argc, argv, a)) {
    std::fputs(usage, stderr);
    return 2;
  }
  auto cfg = load_config(a.config_file);
  for (auto& o : a.overrides) {
    if (!cfg) break;
    if (auto ok = apply_override(*cfg, o); !ok) cfg = std::unexpected(ok.error());
  }
  if (cfg) {
    if (auto ok = validate(*cfg); !ok) cfg = std::unexpected(ok.error());
  }
  if (!cfg) {
    std::fprintf(stderr, "migrated: %s\n", cfg.error().message.c_str());
    return 1;
  }
  if (a.check_only) {
    std::printf("migrated: configuration %s is valid\n", a.config_file.c_str());
    return 0;
  }
  if (auto ok = log::setup({cfg->log.sink, cfg->log.level, cfg->log.file.string(), "migrated"}); !ok) {
    std::fprintf(stderr, "migrated: %s\n", ok.error().message.c_str());
    return 1;
  }
  asio::io_context io(1);
  asio::thread_pool pool(cfg->pool_threads);
  int exit_code = 1;
  asio::co_spawn(io, server::run_node(*cfg, pool), [&](std::exception_ptr e, int code) {
    exit_code = code;
    if (e) {
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& ex) {
        log::get("main")->critical("fatal: {}", ex.what());
      }
      exit_code = 1;
    }
    io.stop();
  });
  io.run();
  pool.join();
  return exit_code;
}
