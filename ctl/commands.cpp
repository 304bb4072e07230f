// migratectl commands over TCP (following a migration to its report) or
// UDP (fire a command, print the answer). Errors are printed once, here.
#include "ctl/commands.hpp"

#include <unistd.h>

#include <cstdio>
#include <optional>

#include "common/auth.hpp"
#include "ctl/interrupt.hpp"
#include "ctl/output.hpp"
#include "common/names.hpp"

namespace migrated::ctl {
namespace {

// A code the daemon or the peer answered with that says it could not be
// reached, or would not have us.
bool unreachable(pb::Code c) { return c == pb::REFUSED || c == pb::AUTH || c == pb::DENIED; }

std::uint64_t next_request_id() {
  static std::uint64_t id = auth::random_u64() >> 16;
  return ++id;
}

int print_report(const pb::Report& r, bool json) {
  std::fputs((json ? report_json(r) + "\n" : report_table(r)).c_str(), stdout);
  return exit_code_of(r);
}

int print_reply(const pb::Reply& r, bool json, const char* what) {
  if (json) {
    std::puts(reply_json(r).c_str());
  } else if (r.ok()) {
    std::printf("%s %s\n", what, r.migration_id().c_str());
  } else {
    std::fprintf(stderr, "migratectl: %s\n", r.message().c_str());
  }
  if (r.ok()) return exit_ok;
  return unreachable(r.code()) ? exit_unreachable : exit_failed;
}

// The connection to the daemon failed or broke: it is unreachable, or it
// would not have us (authentication).
int lost_daemon(const error& e, bool json) { return print_failure(e, json, exit_unreachable); }

pb::Envelope make_request(const command_line& cl) {
  pb::Envelope env;
  env.set_request_id(next_request_id());
  if (cl.command == "migrate") {
    auto* m = env.mutable_migrate();
    m->set_container(cl.target);
    m->set_destination(cl.to);
    m->set_method(parse_method(cl.method));
    m->set_follow(!cl.udp);
    m->set_runtime(cl.runtime);
    if (cl.auto_converge == "off") m->set_auto_converge(pb::AUTO_CONVERGE_OFF);
    if (cl.auto_converge == "force") m->set_auto_converge(pb::AUTO_CONVERGE_FORCE);
  } else if (cl.command == "prepare") {
    env.mutable_prepare()->set_container(cl.target);
    env.mutable_prepare()->set_destination(cl.to);
    env.mutable_prepare()->set_runtime(cl.runtime);
  } else if (cl.command == "measure") {
    env.mutable_measure()->set_container(cl.target);
    env.mutable_measure()->set_destination(cl.to);
    env.mutable_measure()->set_interval_ms(cl.interval_ms);
    env.mutable_measure()->set_runtime(cl.runtime);
  } else if (cl.command == "status") {
    env.mutable_status()->set_migration_id(cl.target);
  } else if (cl.command == "history") {
    env.mutable_history()->set_limit(cl.limit);
  } else if (cl.command == "abort") {
    env.mutable_abort_request()->set_migration_id(cl.target);
  } else if (cl.command == "recover") {
    env.mutable_recover()->set_migration_id(cl.target);
  }
  return env;
}

awaitable<int> follow(client& c, transport::channel& ch, const command_line& cl, const std::string& id) {
  const bool terminal = !cl.json && ::isatty(STDERR_FILENO);
  const bool interruptible = terminal && ::isatty(STDIN_FILENO);
  progress_printer progress(terminal);
  progress.started(id, cl.target, cl.to, cl.method, interruptible);
  std::optional<interrupt_prompt> prompt;
  if (interruptible)
    prompt.emplace(co_await asio::this_coro::executor, c, id, [&ch] { ch.close(); }, [&progress] { progress.finish(); });
  for (;;) {
    // A migration's phases each have their own deadlines at the daemon; this
    // only guards against a daemon that vanished.
    auto f = co_await ch.recv(std::chrono::minutes(30));
    if (!f && prompt && prompt->detached()) co_return exit_ok;
    if (!f) co_return lost_daemon(f.error().context("following the migration"), cl.json);
    if (f->msg.has_progress()) {
      progress.show(f->msg.progress());
    } else if (f->msg.has_report()) {
      progress.finish();
      co_return print_report(f->msg.report(), cl.json);
    }
  }
}

// Prepare is short: poll the daemon until it has finished.
awaitable<int> wait_for(transport::channel& ch, const std::string& id, bool json) {
  asio::steady_timer t(co_await asio::this_coro::executor);
  for (;;) {
    pb::Envelope env;
    env.set_request_id(next_request_id());
    env.mutable_status()->set_migration_id(id);
    if (auto ok = co_await ch.send(env); !ok) co_return lost_daemon(ok.error(), json);
    auto f = co_await ch.recv();
    if (!f) co_return lost_daemon(f.error(), json);
    if (!f->msg.has_status_reply() || f->msg.status_reply().migrations_size() == 0)
      co_return print_failure(error{errc::not_found, "the daemon forgot migration " + id}, json, exit_failed);
    const auto& r = f->msg.status_reply().migrations(0);
    if (r.result() != pb::RESULT_RUNNING) co_return print_report(r, json);
    t.expires_after(std::chrono::milliseconds(100));
    co_await t.async_wait(use_awaitable);
  }
}

awaitable<int> over_tcp(client& c, const command_line& cl) {
  auto ch = co_await c.connect();
  if (!ch) co_return lost_daemon(ch.error(), cl.json);
  auto req = make_request(cl);
  if (auto ok = co_await ch->send(req); !ok) co_return lost_daemon(ok.error(), cl.json);
  // A recovery is a restore of the whole container: give it the daemon's restore deadline.
  const std::chrono::milliseconds wait = cl.command == "recover" ? std::chrono::minutes(3) : ch->io_timeout();
  auto f = co_await ch->recv(wait);
  if (!f) co_return lost_daemon(f.error(), cl.json);
  if (f->msg.has_status_reply()) {
    std::fputs((cl.json ? status_json(f->msg.status_reply()) + "\n" : status_table(f->msg.status_reply())).c_str(), stdout);
    co_return 0;
  }
  if (f->msg.has_history_reply()) {
    const auto& h = f->msg.history_reply();
    std::fputs((cl.json ? history_json(h) + "\n" : history_table(h)).c_str(), stdout);
    co_return 0;
  }
  if (f->msg.has_measure_reply()) {
    const auto& m = f->msg.measure_reply();
    std::fputs((cl.json ? measure_json(m) + "\n" : measure_table(m)).c_str(), stdout);
    co_return 0;
  }
  if (!f->msg.has_reply())
    co_return print_failure(error{errc::protocol, "unexpected answer from the daemon"}, cl.json, exit_failed);
  const auto& r = f->msg.reply();
  if (!r.ok()) co_return print_reply(r, cl.json, "");
  if (cl.command == "migrate") co_return co_await follow(c, *ch, cl, r.migration_id());
  if (cl.command == "prepare") co_return co_await wait_for(*ch, r.migration_id(), cl.json);
  if (cl.command == "recover") co_return print_reply(r, cl.json, "recovered the container of");
  co_return print_reply(r, cl.json, "ok");
}

awaitable<int> over_udp(client& c, const command_line& cl) {
  auto answer = co_await c.udp_request(make_request(cl));
  if (!answer) co_return lost_daemon(answer.error(), cl.json);
  if (answer->has_status_reply()) {
    std::fputs((cl.json ? status_json(answer->status_reply()) + "\n" : status_table(answer->status_reply())).c_str(), stdout);
    co_return 0;
  }
  if (!answer->has_reply())
    co_return print_failure(error{errc::protocol, "unexpected answer from the daemon"}, cl.json, exit_failed);
  co_return print_reply(answer->reply(), cl.json, "accepted");
}

}  // namespace

int print_failure(const error& e, bool json, exit_code code) {
  if (json) std::puts(failure_json(e, code).c_str());
  else std::fprintf(stderr, "migratectl: %s\n", e.message.c_str());
  return code;
}

exit_code exit_code_of(const pb::Report& r) {
  switch (r.result()) {
    case pb::RESULT_OK: return exit_ok;
    case pb::RESULT_ROLLED_BACK: return exit_rolled_back;
    default: break;
  }
  // Not reached, or not let in: at the connection to the destination, or
  // anywhere with a code that says so.
  const bool at_connect = r.phase() == phase::connect && (r.code() == pb::TIMEOUT || r.code() == pb::PEER);
  return unreachable(r.code()) || at_connect ? exit_unreachable : exit_failed;
}

awaitable<int> run_command(client& c, const command_line& cl) {
  if (cl.udp) co_return co_await over_udp(c, cl);
  co_return co_await over_tcp(c, cl);
}

}  // namespace migrated::ctl
