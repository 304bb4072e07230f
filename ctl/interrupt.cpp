// Ctrl-C while following a migration (see interrupt.hpp).
#include "ctl/interrupt.hpp"

#include <csignal>
#include <cstdio>

#include <boost/asio/signal_set.hpp>

#include "common/auth.hpp"

namespace migrated::ctl {

struct interrupt_prompt::state : std::enable_shared_from_this<state> {
  state(asio::any_io_executor ex, client& c, std::string id, std::function<void()> on_detach,
        std::function<void()> before_question, std::shared_ptr<bool> detached)
      : signals(ex, SIGINT),
        c(c),
        id(std::move(id)),
        on_detach(std::move(on_detach)),
        before_question(std::move(before_question)),
        detached(std::move(detached)) {}

  asio::signal_set signals;
  client& c;
  std::string id;
  std::function<void()> on_detach, before_question;
  std::shared_ptr<bool> detached;

  void arm() {
    signals.async_wait([w = weak_from_this()](const boost::system::error_code& ec, int) {
      if (auto s = w.lock(); s && !ec) s->ask();
    });
  }

  // The question, answered on the terminal; the daemon's frames wait in
  // the socket meanwhile.
  void ask() {
    before_question();
    std::fprintf(stderr,
                 "\nmigration %s: [a]bort it (the container stays at the source), [d]etach (it goes on), "
                 "or Enter to follow on? ",
                 id.c_str());
    std::fflush(stderr);
    char line[64];
    const char answer = std::fgets(line, sizeof line, stdin) ? line[0] : '\n';
    if (answer == 'a' || answer == 'A') {
      std::fprintf(stderr, "asking the daemon to abort %s\n", id.c_str());
      asio::co_spawn(signals.get_executor(), [s = shared_from_this()]() -> awaitable<void> { co_await s->abort(); },
                     asio::detached);
    } else if (answer == 'd' || answer == 'D') {
      *detached = true;
      std::fprintf(stderr, "detached: %s goes on (migratectl status %s)\n", id.c_str(), id.c_str());
      on_detach();
      return;
    } else {
      std::fprintf(stderr, "following on\n");
    }
    arm();
  }

  // An Abort on a connection of its own: the followed one carries only the
  // daemon's frames. The report that ends the following tells the outcome.
  awaitable<void> abort() {
    auto ch = co_await c.connect();
    if (!ch) {
      std::fprintf(stderr, "migratectl: cannot ask for the abort: %s\n", ch.error().message.c_str());
      co_return;
    }
    pb::Envelope env;
    env.set_request_id(auth::random_u64() >> 16);
    env.mutable_abort_request()->set_migration_id(id);
    if (auto ok = co_await ch->send(env); !ok) {
      std::fprintf(stderr, "migratectl: cannot ask for the abort: %s\n", ok.error().message.c_str());
      co_return;
    }
    auto f = co_await ch->recv();
    if (!f) std::fprintf(stderr, "migratectl: no answer to the abort: %s\n", f.error().message.c_str());
    else if (f->msg.has_reply() && !f->msg.reply().ok())
      std::fprintf(stderr, "migratectl: %s\n", f->msg.reply().message().c_str());  // e.g. too late: committing
  }
};

interrupt_prompt::interrupt_prompt(asio::any_io_executor ex, client& c, std::string migration_id,
                                   std::function<void()> on_detach, std::function<void()> before_question)
    : detached_(std::make_shared<bool>(false)) {
  state_ = std::make_shared<state>(ex, c, std::move(migration_id), std::move(on_detach), std::move(before_question),
                                   detached_);
  state_->arm();
}

interrupt_prompt::~interrupt_prompt() {
  boost::system::error_code ignored;
  state_->signals.cancel(ignored);
}

}  // namespace migrated::ctl
