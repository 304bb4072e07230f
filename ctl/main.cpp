// migratectl: the controller. Parses the command line and runs one command
// (ctl/commands.hpp) against a daemon.
#include <cstdio>
#include <cstring>
#include <string>

#include "ctl/commands.hpp"
#include "common/names.hpp"

namespace {

constexpr const char* usage =
    "usage: migratectl [--daemon HOST:PORT] [--node NAME] [--udp-port PORT] [--udp] [--timeout-ms N]\n"
    "                  [--ca F] [--cert F] [--key F] COMMAND\n"
    "  --ca, --cert, --key: the fleet CA and this controller's certificate and key\n"
    "        (default /etc/migrated/tls/ca.crt, controller.crt, controller.key)\n"
    "  --node: the daemon's name, which its certificate must state\n"
    "commands:\n"
    "  migrate CONTAINER --to PEER [--method M] [--runtime runc|docker] [--auto-converge off|force] [--json]\n"
    "                                                         move a container (PEER: name or host:port)\n"
    "        M: cold | precopy (memory state), diff | full | replay (filesystem, fresh start), auto\n"
    "  prepare CONTAINER --to PEER [--runtime R] [--json]     give PEER the bundle / image ahead of time\n"
    "  measure CONTAINER [--to PEER] [--interval-ms N] [--runtime R] [--json]\n"
    "                                                         dirty rate, link bandwidth, predicted downtime\n"
    "  status [ID] [--json]                                   the daemon, its capabilities and migrations\n"
    "  history [--limit N] [--json]                           past migrations, newest first (kept across restarts)\n"
    "  abort ID                                               stop a migration; the container stays at the source\n"
    "  recover ID                                             restore here a container whose rollback failed,\n"
    "                                                         from the images migration ID kept\n"
    "exit status: 0 success, 1 failed or refused, 2 usage\n";

int usage_error(const char* why) {
  std::fprintf(stderr, "migratectl: %s\n%s", why, usage);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace migrated;
  ctl::client_options opts;
  ctl::command_line cl;
  int udp_port = 0;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> const char* { return i + 1 < argc ? argv[++i] : nullptr; };
    if (a == "--help" || a == "-h") { std::fputs(usage, stdout); return 0; }
    else if (a == "--json") cl.json = true;
    else if (a == "--udp") cl.udp = true;
    else if (a == "--psk-file")
      return usage_error("--psk-file: links use certificates now; give --ca, --cert and --key");
    else if (a == "--daemon" || a == "--ca" || a == "--cert" || a == "--key" || a == "--node" || a == "--to" || a == "--method" || a == "--udp-port" ||
             a == "--timeout-ms" || a == "--auto-converge" || a == "--interval-ms" || a == "--runtime" || a == "--limit") {
      const char* v = value();
      if (!v) return usage_error(("missing value for " + a).c_str());
      if (a == "--daemon") {
        auto ep = parse_endpoint(v);
        if (!ep) return usage_error(ep.error().message.c_str());
        opts.daemon = *ep;
      } else if (a == "--ca") opts.tls.ca = v;
      else if (a == "--cert") opts.tls.cert = v;
      else if (a == "--key") opts.tls.key = v;
      else if (a == "--node") opts.node = v;
      else if (a == "--to") cl.to = v;
      else if (a == "--method") cl.method = v;
      else if (a == "--runtime") cl.runtime = v;
      else if (a == "--interval-ms") cl.interval_ms = std::uint32_t(std::atol(v));
      else if (a == "--limit") {
        const std::string n = v;
        if (n.empty() || n.size() > 6 || n.find_first_not_of("0123456789") != std::string::npos)
          return usage_error("--limit takes a number of migrations (0: all)");
        cl.limit = std::uint32_t(std::stoul(n));
      }
      else if (a == "--auto-converge") {
        cl.auto_converge = v;
        if (cl.auto_converge != "off" && cl.auto_converge != "force")
          return usage_error("--auto-converge takes off or force");
      }
      else if (a == "--udp-port") udp_port = std::atoi(v);
      else opts.timeout = std::chrono::milliseconds(std::atol(v));
    } else if (!a.empty() && a[0] == '-') {
      return usage_error(("unknown option " + a).c_str());
    } else if (cl.command.empty()) {
      cl.command = a;
    } else if (cl.target.empty()) {
      cl.target = a;
    } else {
      return usage_error(("unexpected argument " + a).c_str());
    }
  }
  if (cl.command != "migrate" && cl.command != "prepare" && cl.command != "status" && cl.command != "abort" &&
      cl.command != "measure" && cl.command != "recover" && cl.command != "history")
    return usage_error(cl.command.empty() ? "no command given" : ("unknown command " + cl.command).c_str());
  if ((cl.command == "migrate" || cl.command == "prepare") && (cl.target.empty() || cl.to.empty()))
    return usage_error((cl.command + " needs CONTAINER and --to PEER").c_str());
  if (cl.command == "abort" && cl.target.empty()) return usage_error("abort needs a migration id");
  if (cl.command == "recover" && cl.target.empty()) return usage_error("recover needs a migration id");
  if (cl.command == "recover" && cl.udp) return usage_error("recover runs over TCP only");
  if (cl.command == "history" && cl.udp) return usage_error("history runs over TCP only");
  if (cl.command == "history" && !cl.target.empty()) return usage_error("history takes no argument (--limit N)");
  if (cl.command == "measure" && cl.target.empty()) return usage_error("measure needs a container");
  if (parse_method(cl.method) == pb::METHOD_UNSPECIFIED)
    return usage_error(("unknown method " + cl.method).c_str());
  opts.daemon_udp = {opts.daemon.host, std::uint16_t(udp_port ? udp_port : opts.daemon.port + 1)};

  auto made = ctl::client::make(opts);
  if (!made) {
    std::fprintf(stderr, "migratectl: %s\n", made.error().message.c_str());
    return 1;
  }
  asio::io_context io(1);
  ctl::client& c = *made;
  int code = 1;
  asio::co_spawn(io, ctl::run_command(c, cl), [&](std::exception_ptr e, int rc) {
    code = e ? 1 : rc;
  });
  io.run();
  return code;
}
