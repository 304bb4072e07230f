// migratectl: the controller. Parses the command line (CLI11) and runs one
// command (ctl/commands.hpp) against a daemon.
#include <cstdio>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "common/names.hpp"
#include "ctl/commands.hpp"
#include "ctl/output.hpp"

namespace {

using namespace migrated;

const std::vector<std::string> runtimes{"runc", "docker"};

// The command line, each command with the options it takes and nothing else.
struct parsed {
  ctl::client_options opts;
  ctl::command_line cl;
  std::string daemon = "127.0.0.1:7450";
  int udp_port = 0;  // 0: the daemon's TCP port + 1
  std::uint32_t timeout_ms = 15000;
};

void add_common(CLI::App& app, parsed& p) {
  app.add_option("--daemon", p.daemon, "the daemon to ask (HOST:PORT)")->capture_default_str();
  app.add_option("--node", p.opts.node, "the daemon's node name, which its certificate must state (default: any node "
                                        "of the fleet)");
  app.add_option("--ca", p.opts.tls.ca, "the fleet's CA certificate")->capture_default_str();
  app.add_option("--cert", p.opts.tls.cert, "this controller's certificate")->capture_default_str();
  app.add_option("--key", p.opts.tls.key, "this controller's key")->capture_default_str();
  app.add_option("--timeout-ms", p.timeout_ms, "connecting and each answer, in ms")
      ->check(CLI::Range(1u, 3'600'000u))
      ->capture_default_str();
  app.add_flag("--udp", p.cl.udp, "send the command as one signed datagram and print the answer (no report)");
  app.add_option("--udp-port", p.udp_port, "the daemon's UDP port (default: its TCP port + 1)")
      ->check(CLI::Range(1, 65535));
  app.add_flag("--json", p.cl.json, "print JSON, errors too");
}

void add_commands(CLI::App& app, parsed& p) {
  auto& cl = p.cl;
  auto* migrate = app.add_subcommand("migrate", "move a container to PEER; follows it to its report");
  migrate->add_option("CONTAINER", cl.target, "the container")->required();
  migrate->add_option("--to", cl.to, "the destination: a node name or HOST:PORT")->required();
  migrate->add_option("--method", cl.method,
                      "cold | precopy | postcopy | hybrid (memory state), diff | full | replay (filesystem, fresh "
                      "start), auto (chosen by measuring)")
      ->check(CLI::IsMember(method_names()))
      ->capture_default_str();
  migrate->add_option("--runtime", cl.runtime, "runc or docker (default: whichever knows the container)")
      ->check(CLI::IsMember(runtimes));
  migrate->add_option("--auto-converge", cl.auto_converge,
                      "off: plain pre-copy rounds; force: throttle instead of switching to post-copy "
                      "(default: the daemon's precopy.auto_converge)")
      ->check(CLI::IsMember({"off", "force"}));

  auto* prepare = app.add_subcommand("prepare", "give PEER the container's bundle or image ahead of a move");
  prepare->add_option("CONTAINER", cl.target, "the container")->required();
  prepare->add_option("--to", cl.to, "the destination: a node name or HOST:PORT")->required();
  prepare->add_option("--runtime", cl.runtime, "runc or docker")->check(CLI::IsMember(runtimes));

  auto* measure = app.add_subcommand("measure", "dirty rate, link bandwidth and the downtime each method would cost");
  measure->add_option("CONTAINER", cl.target, "the container")->required();
  measure->add_option("--to", cl.to, "the destination whose link to measure (default: none)");
  measure->add_option("--interval-ms", cl.interval_ms, "time between the two measuring dumps (0: the daemon's)")
      ->check(CLI::Range(0u, 600'000u))
      ->capture_default_str();
  measure->add_option("--runtime", cl.runtime, "runc or docker")->check(CLI::IsMember(runtimes));

  auto* status = app.add_subcommand("status", "the daemon, its capabilities and its migrations");
  status->add_option("ID", cl.target, "only this migration");

  auto* history = app.add_subcommand("history", "past migrations, newest first (kept across restarts)");
  history->add_option("--limit", cl.limit, "the newest N only (0: all the daemon keeps)")
      ->check(CLI::Range(0u, 1'000'000u))
      ->capture_default_str();

  auto* abort = app.add_subcommand("abort", "stop a migration; the container stays at the source");
  abort->add_option("ID", cl.target, "the migration")->required();

  auto* recover = app.add_subcommand("recover", "restore here a container whose rollback failed, from the images its "
                                                "migration kept");
  recover->add_option("ID", cl.target, "the migration")->required();

  for (auto* sub : app.get_subcommands([](const CLI::App*) { return true; })) {
    sub->fallthrough();  // the options above go after the command too
    sub->footer("Options of every command (--daemon, --json, --timeout-ms, ...): migratectl --help");
    sub->callback([&cl, sub] { cl.command = sub->get_name(); });
  }
}

// A usage error: one line (with where to find the help), exit status 2.
int usage_error(const std::string& why, bool json) {
  return ctl::print_failure(error{errc::invalid_argument, why + " (see migratectl [COMMAND] --help)"}, json,
                            ctl::exit_usage);
}

// CLI11 answers an unknown command with "A subcommand is required": the
// first word that is neither an option nor an option's value names it.
std::string unknown_command(int argc, char** argv, CLI::App& app) {
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a.starts_with("-")) {
      const CLI::Option* opt = app.get_option_no_throw(a);
      if (opt && opt->get_items_expected_min() > 0) ++i;  // its value is no command
      continue;
    }
    for (const auto* sub : app.get_subcommands([](const CLI::App*) { return true; }))
      if (sub->get_name() == a) return {};
    return a;
  }
  return {};
}

// An option of old, refused with what replaces it (before CLI11, which
// would only call it unknown).
bool names_psk_file(int argc, char** argv) {
  for (int i = 1; i < argc; ++i)
    if (std::string_view a = argv[i]; a == "--psk-file" || a.starts_with("--psk-file=")) return true;
  return false;
}

bool asks_json(int argc, char** argv) {
  for (int i = 1; i < argc; ++i)
    if (std::string(argv[i]) == "--json") return true;
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  parsed p;
  CLI::App app{"migratectl: moves containers between edge hosts through their migrated daemons.\n"
               "Exit status: 0 ok; 1 failed before anything changed; 2 usage; 3 rolled back (the container "
               "runs on at the source); 4 the daemon or the peer unreachable, or authentication refused.",
               "migratectl"};
  app.set_version_flag("--version", std::string("migratectl ") + MIGRATED_VERSION);
  app.require_subcommand(1, 1);
  app.get_formatter()->column_width(32);
  add_common(app, p);
  add_commands(app, p);
  if (names_psk_file(argc, argv))
    return usage_error("--psk-file: links use certificates now; give --ca, --cert and --key", asks_json(argc, argv));
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    const std::string unknown = unknown_command(argc, argv, app);
    return usage_error(unknown.empty() ? std::string(e.what()) : "unknown command " + unknown, asks_json(argc, argv));
  }
  auto& cl = p.cl;
  auto& opts = p.opts;
  if ((cl.command == "recover" || cl.command == "history") && cl.udp)
    return usage_error(cl.command + " runs over TCP only", cl.json);
  auto ep = parse_endpoint(p.daemon);
  if (!ep) return usage_error("--daemon: " + ep.error().message, cl.json);
  opts.daemon = *ep;
  opts.timeout = std::chrono::milliseconds(p.timeout_ms);
  opts.daemon_udp = {opts.daemon.host, std::uint16_t(p.udp_port ? p.udp_port : opts.daemon.port + 1)};

  auto made = ctl::client::make(opts);
  if (!made) return ctl::print_failure(made.error(), cl.json, ctl::exit_failed);
  asio::io_context io(1);
  ctl::client& c = *made;
  int code = ctl::exit_failed;
  asio::co_spawn(io, ctl::run_command(c, cl), [&](std::exception_ptr e, int rc) { code = e ? ctl::exit_failed : rc; });
  io.run();
  return code;
}
