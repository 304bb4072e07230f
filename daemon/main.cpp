// migrated: the daemon. Parses arguments (CLI11), loads and checks the
// configuration, sets up logging, and runs the node (server/node.hpp).
#include <cstdio>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "asio.hpp"
#include "common/config.hpp"
#include "common/log.hpp"
#include "server/node.hpp"

namespace {

struct args {
  std::string config_file;
  bool check_only = false;
  std::vector<std::string> overrides;
};

}  // namespace

int main(int argc, char** argv) {
  using namespace migrated;
  args a;
  CLI::App app{"migrated: the daemon that moves containers between edge hosts (see config/migrated.yaml)", "migrated"};
  app.set_version_flag("--version", std::string("migrated ") + MIGRATED_VERSION);
  app.add_option("--config", a.config_file, "YAML configuration")->required();
  app.add_flag("--check-config", a.check_only, "validate the configuration and exit (0 when valid)");
  app.add_option("--set", a.overrides, "override one key, e.g. --set log.level=debug (repeatable)")
      ->type_name("KEY=VALUE")
      ->allow_extra_args(false);
  try {
    app.parse(argc, argv);
  } catch (const CLI::Success& e) {  // --help, --version
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "migrated: %s (see migrated --help)\n", e.what());
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
