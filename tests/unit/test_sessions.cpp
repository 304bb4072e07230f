// The migration engine end to end in one process: two nodes (edge-a, edge-b)
// on loopback TCP with the real sessions, tcp_server, commands, file streams
// and delta engine, over a fake runtime (fake_runtime.hpp) so that every
// step can be made to fail. What is checked:
// - the phases each method goes through, in order, on the source;
// - a failure injected at every runtime step of either side — or an
//   exception thrown there — leaves exactly one running copy with the state
//   it had at the last checkpoint, rolls the source back exactly once when
//   it had stopped and never otherwise, and frees the container's name;
// - the destination refuses messages out of order or repeated, and a source
//   that vanishes before Commit is a failed migration there, never a success;
// - more migrations than max_concurrent_migrations wait in phase "queued";
// - an abort while queued, or a stop mid-migration, leaves one copy.
#include <catch2/catch.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>

#include "common/log.hpp"
#include "common/names.hpp"
#include "fake_runtime.hpp"
#include "fleet.hpp"
#include "migration/context.hpp"
#include "migration/journal_recovery.hpp"
#include "migration/recovery.hpp"
#include "server/commands.hpp"
#include "server/tcp_server.hpp"
#include "temp_dir.hpp"
#include "transport/handshake.hpp"

using namespace migrated;
using namespace std::chrono_literals;
using testing::fake_runtime;
using testing::fault_plan;

namespace {

const std::filesystem::path fixtures = std::filesystem::path(__FILE__).parent_path() / "fixtures" / "criu-4.1.1";
constexpr std::uint64_t initial_state = 41;

config node_config(const std::string& name, const std::filesystem::path& root) {
  config c;
  c.node_name = name;
  c.listen_tcp = {"127.0.0.1", 0};
  c.storage_dir = root / "storage";
  c.timeouts.connect = 2000ms;
  c.timeouts.io = 3000ms;
  c.timeouts.checkpoint = 3000ms;
  c.timeouts.restore = 3000ms;
  c.timeouts.commit = 3000ms;
  c.timeouts.ready = 3000ms;
  c.precopy.max_rounds = 2;
  return c;
}

pb::Capabilities runc_caps() {
  pb::Capabilities caps;
  caps.add_runtimes("runc");
  return caps;
}

struct node {
  node(asio::io_context& io, asio::thread_pool& pool, fault_plan& plan, const std::string& name,
       const std::filesystem::path& root, std::uint32_t slots_n)
      : cfg(node_config(name, root)),
        rt(new fake_runtime(name == "edge-a" ? "a" : "b", plan, root, fixtures)),
        slots(io.get_executor(), slots_n),
        journal(root / "journal"),
        ctx{cfg,
            testing::shared_fleet().node(name),
            testing::shared_fleet().tls(name),
            {name, pb::ROLE_DAEMON, runc_caps()},
            pool,
            runtimes,
            registry,
            slots,
            &journal},
        cmds(ctx, io.get_executor()) {
    cfg.max_concurrent_migrations = slots_n;
    runtimes.add(std::unique_ptr<runtime::runtime>(rt));
    REQUIRE(journal.open());
  }
  config cfg;
  fake_runtime* rt;  // owned by runtimes
  runtime::runtime_set runtimes;
  migration::registry registry;
  migration::admission slots;
  migration::journal::store journal;
  migration::node_context ctx;
  server::commands cmds;
};

// Two nodes in one io_context; edge-b listens, edge-a migrates to it.
struct pair {
  explicit pair(std::uint32_t slots_a = 4)
      : a(io, pool, plan, "edge-a", tmp.path / "a", slots_a), b(io, pool, plan, "edge-b", tmp.path / "b", 4) {
    tcp::acceptor acc(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    port = acc.local_endpoint().port();
    a.cfg.peers.push_back({"edge-b", {"127.0.0.1", port}});
    b.cfg.peers.push_back({"edge-a", {"127.0.0.1", 1}});  // so edge-b takes containers from it
    server.emplace(b.ctx, b.cmds, std::move(acc));
    asio::co_spawn(io, server->run(), asio::detached);
  }

  struct outcome {
    pb::Report report;
    std::vector<std::string> phases;  // as the controller saw them, repeats folded
  };

  // Starts migrations of `ids` (one each) and runs until all of them and
  // every destination session have ended.
  std::vector<outcome> migrate_all(const std::vector<std::string>& ids, pb::Method method,
                                   std::function<void(const std::string& mid)> meanwhile = nullptr) {
    std::vector<outcome> out(ids.size());
    std::size_t done = 0;
    for (std::size_t i = 0; i < ids.size(); ++i) {
      pb::MigrateRequest req;
      req.set_container(ids[i]);
      req.set_destination("edge-b");
      req.set_method(method);
      auto progress = [&out, i](const pb::Progress& p) {
        if (out[i].phases.empty() || out[i].phases.back() != p.phase()) out[i].phases.push_back(p.phase());
      };
      auto finished = [&out, &done, i](const pb::Report& r) {
        out[i].report = r;
        ++done;
      };
      auto id = a.cmds.start_migrate(req, progress, finished);
      REQUIRE(id);
      if (meanwhile) meanwhile(*id);
    }
    asio::co_spawn(io, wait_then_stop(done, ids.size()), asio::detached);
    io.run_for(30s);
    REQUIRE(io.stopped());
    return out;
  }

  outcome migrate(const std::string& id, pb::Method method) { return migrate_all({id}, method).front(); }

  awaitable<void> wait_then_stop(const std::size_t& done, std::size_t want) {
    asio::steady_timer t(io);
    while (done < want || b.registry.running() || a.registry.running() || !a.cmds.idle()) {
      t.expires_after(2ms);
      co_await t.async_wait(use_awaitable);
    }
    server->stop();
  }

  // Exactly one copy of `id` runs, with the state it should have.
  void require_one_copy(const std::string& id, std::uint64_t state) {
    const bool on_a = a.rt->running(id), on_b = b.rt->running(id);
    INFO("running on a: " << on_a << ", on b: " << on_b);
    REQUIRE(on_a != on_b);
    REQUIRE((on_a ? a : b).rt->containers[id].state == state);
  }

  asio::io_context io{1};
  asio::thread_pool pool{2};
  fault_plan plan;
  testing::temp_dir tmp;
  node a, b;
  std::uint16_t port = 0;
  std::optional<server::tcp_server> server;
};

void quiet_logs(const testing::temp_dir& dir) {
  REQUIRE(log::setup({"file", "debug", (dir.path / "sessions.log").string(), "migrated"}));
}

// What the one running copy must hold: the process state methods carry the
// state of the final checkpoint (the start plus one step per warm-up dump);
// the filesystem methods start fresh (0) wherever they started; a migration
// that failed before stopping anything leaves the state as it ran on.
std::uint64_t expected_state(pair& p, pb::Method method, const pb::Report& r) {
  const bool keeps = method == pb::COLD || method == pb::PRECOPY;
  const bool moved_or_restored = r.result() != pb::RESULT_FAILED;
  if (!keeps && moved_or_restored) return 0;
  return initial_state + std::uint64_t(p.a.rt->warm_dumps);
}

const std::vector<std::string> process_phases_cold{"accepted", "connect", "pull", "checkpoint", "transfer",
                                                   "restore", "ready", "commit", "release", "done"};

}  // namespace

TEST_CASE("each method goes through its phases in order and the container moves once", "[sessions]") {
  testing::temp_dir logs;
  quiet_logs(logs);
  struct expectation {
    pb::Method method;
    std::vector<std::string> phases;
    bool keeps_state;
  };
  const std::vector<expectation> all{
      {pb::COLD, process_phases_cold, true},
      {pb::PRECOPY,
       {"accepted", "connect", "pull", "warmup", "checkpoint", "transfer", "restore", "ready", "commit", "release",
        "done"},
       true},
      {pb::DIFF, {"accepted", "connect", "pull", "stop", "transfer", "start", "ready", "commit", "release", "done"}, false},
      {pb::FULL, {"accepted", "connect", "stop", "pull", "start", "ready", "commit", "release", "done"}, false},
      {pb::REPLAY, {"accepted", "connect", "pull", "start", "ready", "commit", "release", "done"}, false},
  };
  for (const auto& e : all) {
    SECTION(std::string(method_name(e.method))) {
      pair p;
      p.a.rt->add_running("c1", initial_state);
      auto o = p.migrate("c1", e.method);
      INFO(o.report.error());
      REQUIRE(o.report.result() == pb::RESULT_OK);
      CHECK(o.phases == e.phases);
      p.require_one_copy("c1", expected_state(p, e.method, o.report));
      if (e.method == pb::PRECOPY) CHECK(p.a.rt->warm_dumps >= 1);
      CHECK(p.b.rt->running("c1"));
      CHECK(p.a.rt->comebacks == 0);  // nothing rolled back
      // The report is built once, consistently.
      std::uint64_t wire = 0;
      for (const auto& r : o.report.rounds()) wire += r.bytes_wire();
      CHECK(o.report.bytes_wire() == wire);
      CHECK(o.report.destination() == "edge-b");
      if (e.method == pb::REPLAY) CHECK(o.report.downtime_ms() == 0);
      else CHECK(o.report.downtime_ms() > 0);
      // The destination's own record agrees.
      const auto* there = p.b.registry.find(o.report.id());
      REQUIRE(there);
      CHECK(there->result() == pb::RESULT_OK);
      CHECK(there->phase() == "done");
      // The journal: nothing left at the source; the destination keeps its
      // committed record to answer an OutcomeQuery.
      CHECK(p.a.journal.load().entries.empty());
      auto kept = p.b.journal.load().entries;
      REQUIRE(kept.size() == 1);
      CHECK(kept[0].state == migration::journal::step::committed);
      CHECK(kept[0].peer == "edge-a");
    }
  }
}

TEST_CASE("a failure at any step of either side leaves exactly one copy, rolled back at most once", "[sessions]") {
  testing::temp_dir logs;
  quiet_logs(logs);
  for (pb::Method method : {pb::COLD, pb::PRECOPY, pb::DIFF, pb::FULL, pb::REPLAY}) {
    for (bool throws : {false, true}) {
      // How many runtime steps a successful migration takes.
      int steps = 0;
      {
        pair p;
        p.a.rt->add_running("c1", initial_state);
        REQUIRE(p.migrate("c1", method).report.result() == pb::RESULT_OK);
        steps = p.plan.ops;
      }
      for (int k = 1; k <= steps; ++k) {
        pair p;
        p.plan.fail_at = k;
        p.plan.throw_instead = throws;
        p.a.rt->add_running("c1", initial_state);
        auto o = p.migrate("c1", method);
        const std::string failed_step = p.plan.log.size() >= std::size_t(k) ? p.plan.log[k - 1] : "?";
        INFO(method_name(method) << (throws ? ", throwing" : ", failing") << " at step " << k << " of " << steps
                                 << " (" << failed_step << "): " << result_name(o.report.result()) << ": "
                                 << o.report.error());
        const bool stopped_at_source = p.a.rt->stops > 0;
        const int rollbacks = p.a.rt->comebacks;
        if (o.report.result() == pb::RESULT_OK) {
          // A failure after Commit (releasing the copy here) loses nothing.
          CHECK(p.b.rt->running("c1"));
          CHECK_FALSE(p.a.rt->running("c1"));
          CHECK(rollbacks == 0);
        } else {
          CHECK(p.a.rt->running("c1"));
          CHECK_FALSE(p.b.rt->running("c1"));
          CHECK(rollbacks == (o.report.result() == pb::RESULT_ROLLED_BACK ? 1 : 0));
          CHECK(o.report.result() == (stopped_at_source ? pb::RESULT_ROLLED_BACK : pb::RESULT_FAILED));
        }
        // A checkpointed container was only frozen: rolling back is a thaw,
        // and its images are restored only when the thaw itself failed.
        if (o.report.result() == pb::RESULT_ROLLED_BACK && (method == pb::COLD || method == pb::PRECOPY)) {
          CHECK(p.plan.count("a:thaw") == 1);
          CHECK(p.plan.count("a:restore") == (failed_step == "a:thaw" ? 1 : 0));
        }
        // The state is the one of the final checkpoint, or the one it ran on with.
        p.require_one_copy("c1", expected_state(p, method, o.report));
        // Nothing is left busy: the name is free on both nodes.
        CHECK_FALSE(p.a.registry.busy("c1"));
        CHECK_FALSE(p.b.registry.busy("c1"));
        // Nothing is left for a restart to do at the source; at the
        // destination only a committed record, or one whose removal failed.
        CHECK(p.a.journal.load().entries.empty());
        for (const auto& e : p.b.journal.load().entries)
          if (e.state != migration::journal::step::committed) CHECK(failed_step == "b:remove");
      }
    }
  }
}

TEST_CASE("migrations beyond max_concurrent_migrations wait, queued, and all complete", "[sessions]") {
  testing::temp_dir logs;
  quiet_logs(logs);
  pair p(2);
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i) {
    ids.push_back("q" + std::to_string(i));
    p.a.rt->add_running(ids.back(), initial_state + i);
  }
  auto all = p.migrate_all(ids, pb::COLD);
  int queued = 0;
  for (std::size_t i = 0; i < ids.size(); ++i) {
    INFO(ids[i] << ": " << all[i].report.error());
    CHECK(all[i].report.result() == pb::RESULT_OK);
    CHECK(all[i].report.container() == ids[i]);
    p.require_one_copy(ids[i], initial_state + i);
    if (!all[i].phases.empty() && all[i].phases.front() == "queued") ++queued;
  }
  CHECK(queued == 3);
}

TEST_CASE("an abort while queued ends the migration before anything happens", "[sessions]") {
  testing::temp_dir logs;
  quiet_logs(logs);
  pair p(1);
  p.a.rt->add_running("first", 1);
  p.a.rt->add_running("second", 2);
  std::vector<std::string> mids;
  // Aborts the second migration once the registry shows it queued.
  auto abort_when_queued = [&p, &mids]() -> awaitable<void> {
    asio::steady_timer t(p.io);
    for (int i = 0; i < 5000; ++i) {
      const auto* r = mids.size() == 2 ? p.a.registry.find(mids[1]) : nullptr;
      if (r && r->phase() == "queued") {
        REQUIRE(p.a.registry.abort(mids[1]));
        co_return;
      }
      t.expires_after(1ms);
      co_await t.async_wait(use_awaitable);
    }
    FAIL("the second migration was never queued");
  };
  asio::co_spawn(p.io, abort_when_queued(), [](std::exception_ptr e) {
    if (e) std::rethrow_exception(e);
  });
  auto all = p.migrate_all({"first", "second"}, pb::COLD, [&](const std::string& mid) { mids.push_back(mid); });
  CHECK(all[0].report.result() == pb::RESULT_OK);
  INFO(all[1].report.error());
  CHECK(all[1].report.result() == pb::RESULT_FAILED);
  CHECK_THAT(all[1].report.error(), Catch::Matchers::Contains("aborted by the controller"));
  CHECK(all[1].phases == std::vector<std::string>{"queued", "failed"});
  p.require_one_copy("first", 1);
  p.require_one_copy("second", 2);
  CHECK(p.a.rt->running("second"));
  CHECK_FALSE(p.a.registry.busy("second"));
}

TEST_CASE("a node stopping at any step of either side leaves exactly one copy", "[sessions]") {
  testing::temp_dir logs;
  quiet_logs(logs);
  for (pb::Method method : {pb::COLD, pb::PRECOPY, pb::DIFF, pb::REPLAY}) {
    std::vector<std::string> steps;
    {
      pair p;
      p.a.rt->add_running("c1", initial_state);
      REQUIRE(p.migrate("c1", method).report.result() == pb::RESULT_OK);
      steps = p.plan.log;
    }
    for (const char* side : {"a", "b"}) {
      for (int k = 1; k <= int(steps.size()); ++k) {
        pair p;
        p.a.rt->add_running("c1", initial_state);
        node& stopping = std::string(side) == "a" ? p.a : p.b;
        p.plan.on_step = [&stopping, k](int op, const std::string&) {
          if (op == k) stopping.registry.stop_all(stopping.cfg.node_name + " is stopping");
        };
        auto o = p.migrate("c1", method);
        INFO(method_name(method) << ": edge-" << side << " stops at step " << k << " (" << steps[k - 1]
                                 << "): " << result_name(o.report.result()) << ": " << o.report.error());
        if (o.report.result() == pb::RESULT_OK) {
          CHECK(p.b.rt->running("c1"));
        } else {
          CHECK(p.a.rt->running("c1"));
          CHECK_THAT(o.report.error(), Catch::Matchers::Contains("is stopping"));
        }
        p.require_one_copy("c1", expected_state(p, method, o.report));
        CHECK(p.a.rt->comebacks <= 1);
        CHECK_FALSE(p.a.registry.busy("c1"));
        CHECK_FALSE(p.b.registry.busy("c1"));
      }
    }
  }
}

namespace {

// A raw peer for the destination's protocol checks: handshakes as edge-a,
// then plays the script; the destination's last answer is returned.
struct script_result {
  std::vector<pb::Reply> replies;
  bool aborted = false;  // the destination said it gave up (Abort) before hanging up
  bool closed = false;
};

awaitable<void> play(pair& p, const std::vector<pb::Envelope>& script, script_result& out) {
  transport::identity me{"edge-a", pb::ROLE_DAEMON, runc_caps()};
  const endpoint to{"127.0.0.1", p.port};
  const std::string expect = "edge-b";
  auto ch = co_await transport::connect(to, p.a.ctx.tls, me, expect, 2000ms, 2000ms);
  REQUIRE(ch);
  for (auto& env : script) {
    if (!(co_await ch->send(env))) break;
    if (env.has_file_begin() || env.has_tree_manifest()) continue;
    auto f = co_await ch->recv(3000ms);
    if (!f) {
      out.closed = true;
      break;
    }
    if (f->msg.has_reply()) out.replies.push_back(f->msg.reply());
    if (f->msg.has_reply() && !f->msg.reply().ok()) break;
  }
  auto last = co_await ch->recv(3000ms);  // the destination gives up, then hangs up
  if (last && last->msg.has_abort()) {
    out.aborted = true;
    last = co_await ch->recv(3000ms);
  }
  out.closed = out.closed || !last;
  ch->close();
  asio::steady_timer t(p.io);
  while (p.b.registry.running()) {
    t.expires_after(2ms);
    co_await t.async_wait(use_awaitable);
  }
  p.server->stop();
}

// Plays `script` against edge-b (a named vector: no braced list is passed
// to the coroutine, see docs/design.md) and returns what edge-b recorded of
// migration `mid`.
pb::Report play_script(pair& p, const std::vector<pb::Envelope>& script, script_result& out, const std::string& mid) {
  asio::co_spawn(p.io, play(p, script, out), [](std::exception_ptr e) {
    if (e) std::rethrow_exception(e);
  });
  p.io.run_for(20s);
  REQUIRE(p.io.stopped());
  const auto* r = p.b.registry.find(mid);
  REQUIRE(r);
  return *r;
}

pb::Envelope pull_of(const std::string& mid, bool prepare = false) {
  pb::Envelope env;
  env.set_request_id(1);
  auto* m = env.mutable_pull();
  m->set_migration_id(mid);
  m->set_container("c9");
  m->set_runtime("runc");
  m->set_method(pb::COLD);
  m->set_prepare(prepare);
  return env;
}

pb::Envelope begin_of(const std::string& mid) {
  pb::Envelope env;
  env.set_request_id(2);
  auto* m = env.mutable_migrate_begin();
  m->set_migration_id(mid);
  m->set_container("c9");
  m->set_method(pb::COLD);
  m->set_runtime("runc");
  return env;
}

pb::Envelope round_of(std::uint32_t index, bool final) {
  pb::Envelope env;
  env.set_request_id(3);
  env.mutable_round_begin()->set_index(index);
  env.mutable_round_begin()->set_final(final);
  return env;
}

pb::Envelope commit_of(const std::string& mid) {
  pb::Envelope env;
  env.set_request_id(4);
  env.mutable_commit()->set_migration_id(mid);
  return env;
}

pb::Envelope prepare_end_of(const std::string& mid) {
  pb::Envelope env;
  env.set_request_id(5);
  env.mutable_prepare_end()->set_migration_id(mid);
  return env;
}

}  // namespace

TEST_CASE("the destination refuses messages out of order or repeated", "[sessions]") {
  testing::temp_dir logs;
  quiet_logs(logs);
  const std::string mid = "m-0123456789ab";
  struct bad_case {
    const char* what;
    std::vector<pb::Envelope> script;
    std::size_t replies_ok;  // replies before the refusal
  };
  const std::vector<bad_case> cases{
      {"MigrateBegin twice", {pull_of(mid), begin_of(mid), begin_of(mid)}, 2},
      {"a round before MigrateBegin", {pull_of(mid), round_of(1, true)}, 1},
      {"Commit before any round", {pull_of(mid), begin_of(mid), commit_of(mid)}, 2},
      {"a second Pull", {pull_of(mid), pull_of(mid)}, 1},
      {"round 2 first", {pull_of(mid), begin_of(mid), round_of(2, false)}, 2},
      {"PrepareEnd ending a migration", {pull_of(mid), prepare_end_of(mid)}, 1},
      {"MigrateBegin in a prepare", {pull_of(mid, true), begin_of(mid)}, 1},
  };
  for (const auto& c : cases) {
    SECTION(c.what) {
      pair p;
      script_result out;
      const auto r = play_script(p, c.script, out, mid);
      REQUIRE(out.replies.size() == c.replies_ok + 1);
      for (std::size_t i = 0; i < c.replies_ok; ++i) CHECK(out.replies[i].ok());
      const auto& refusal = out.replies.back();
      INFO(refusal.message());
      CHECK_FALSE(refusal.ok());
      CHECK(refusal.code() == pb::PROTOCOL);
      CHECK(out.aborted);
      CHECK(out.closed);
      CHECK(r.result() == pb::RESULT_FAILED);
      CHECK_FALSE(p.b.rt->running("c9"));
      CHECK_FALSE(p.b.registry.busy("c9"));
    }
  }
}

TEST_CASE("a source that goes away before Commit is a failure at the destination", "[sessions]") {
  testing::temp_dir logs;
  quiet_logs(logs);
  const std::string mid = "m-00000000cafe";
  SECTION("after MigrateBegin") {
    pair p;
    script_result out;
    const std::vector<pb::Envelope> script{pull_of(mid), begin_of(mid)};
    CHECK(play_script(p, script, out, mid).result() == pb::RESULT_FAILED);
  }
  SECTION("a prepare that ends with PrepareEnd is a success") {
    pair p;
    script_result out;
    const std::vector<pb::Envelope> script{pull_of(mid, true), prepare_end_of(mid)};
    CHECK(play_script(p, script, out, mid).result() == pb::RESULT_OK);
    REQUIRE(out.replies.size() == 2);
    CHECK(out.replies[1].ok());
  }
  SECTION("a prepare whose source vanishes is not") {
    pair p;
    script_result out;
    const std::vector<pb::Envelope> script{pull_of(mid, true)};
    CHECK(play_script(p, script, out, mid).result() == pb::RESULT_FAILED);
  }
}

TEST_CASE("a rollback that fails keeps the images, says how to recover, and recover brings it back",
          "[sessions]") {
  testing::temp_dir logs;
  quiet_logs(logs);
  pair p;
  p.a.rt->add_running("c1", initial_state);
  // The restore fails at the destination, and neither a thaw nor the images bring it back here.
  p.plan.always_fail = {"b:restore", "a:thaw", "a:restore"};
  auto o = p.migrate("c1", pb::COLD);
  INFO(o.report.error());
  CHECK(o.report.result() == pb::RESULT_FAILED);
  CHECK_THAT(o.report.error(), Catch::Matchers::Contains("c1 runs nowhere: its rollback failed") &&
                                   Catch::Matchers::Contains("migratectl recover " + o.report.id()));
  CHECK_FALSE(p.a.rt->running("c1"));
  CHECK_FALSE(p.b.rt->running("c1"));
  const auto kept = p.a.cfg.storage_dir / "outgoing" / o.report.id();
  REQUIRE(std::filesystem::exists(kept / "lost.json"));

  p.plan.always_fail.clear();
  std::optional<result<int>> recovered;
  asio::io_context io2;  // the pair's io has stopped; recovery runs on its own
  migration::node_context ctx{p.a.cfg,     p.a.ctx.creds,    p.a.ctx.tls,  p.a.ctx.me,
                              p.pool,      p.a.runtimes,     p.a.registry, p.a.slots};
  asio::co_spawn(io2, migration::recover(ctx, o.report.id()), [&](std::exception_ptr e, result<int> r) {
    if (e) std::rethrow_exception(e);
    recovered = std::move(r);
  });
  io2.run_for(10s);
  REQUIRE(recovered.has_value());
  INFO((recovered->has_value() ? std::string() : recovered->error().message));
  REQUIRE(recovered->has_value());
  p.require_one_copy("c1", initial_state);
  CHECK(p.a.rt->running("c1"));
  CHECK_FALSE(std::filesystem::exists(kept));
  // There is nothing left to recover.
  std::optional<result<int>> again;
  asio::co_spawn(io2, migration::recover(ctx, o.report.id()), [&](std::exception_ptr, result<int> r) { again = std::move(r); });
  io2.restart();
  io2.run_for(10s);
  REQUIRE(again.has_value());
  CHECK_FALSE(again->has_value());
}

TEST_CASE("a destination without room for the images refuses before anything stops", "[sessions]") {
  testing::temp_dir logs;
  quiet_logs(logs);
  for (const auto method : {pb::COLD, pb::PRECOPY}) {
    pair p;
    p.a.rt->add_running("c1", initial_state);
    p.a.rt->memory = std::uint64_t(1) << 50;  // 1 PiB: no test machine has that free
    auto o = p.migrate("c1", method);
    INFO(o.report.error());
    CHECK(o.report.result() == pb::RESULT_FAILED);
    CHECK_THAT(o.report.error(), Catch::Matchers::Contains("edge-b's storage") &&
                                     Catch::Matchers::Contains("MiB free; the images of c1 need about"));
    CHECK(o.report.downtime_ms() == 0);
    CHECK(p.a.rt->stops == 0);
    CHECK(p.a.rt->running("c1"));
    CHECK_FALSE(p.b.rt->running("c1"));
  }
}
TEST_CASE("a destination whose CRIU cannot restore this node's images refuses the process before it stops",
          "[sessions]") {
  testing::temp_dir logs;
  quiet_logs(logs);
  for (const auto method : {pb::COLD, pb::PRECOPY}) {  // (post-copy checks the same, not offered here)
    pair p;
    p.a.ctx.me.caps.set_tmpfs_plain_tar(true);  // edge-b's CRIU lacks scripts/criu/0008
    p.a.rt->add_running("c1", initial_state);
    auto o = p.migrate("c1", method);
    INFO(o.report.error());
    CHECK(o.report.result() == pb::RESULT_FAILED);
    CHECK_THAT(o.report.error(), Catch::Matchers::Contains("the CRIU of edge-b cannot restore this node's images"));
    CHECK(o.report.downtime_ms() == 0);
    CHECK(p.a.rt->stops == 0);
    CHECK(p.a.rt->running("c1"));
    CHECK_FALSE(p.b.rt->running("c1"));
  }
  pair both;  // with it on both ends the move goes on
  both.a.ctx.me.caps.set_tmpfs_plain_tar(true);
  both.b.ctx.me.caps.set_tmpfs_plain_tar(true);
  both.a.rt->add_running("c1", initial_state);
  auto o = both.migrate("c1", pb::COLD);
  INFO(o.report.error());
  CHECK(o.report.result() == pb::RESULT_OK);
  CHECK(both.b.rt->running("c1"));
}

namespace {

// Runs the start-up recovery of `n` (as after a restart) and waits until
// the records that ask the destination are answered too.
void recover_on(pair& p, node& n) {
  bool done = false;
  asio::co_spawn(
      p.io,
      [&]() -> awaitable<void> {
        co_await migration::recover_journal(n.ctx);
        asio::steady_timer t(p.io);
        while (n.registry.running()) {
          t.expires_after(2ms);
          co_await t.async_wait(use_awaitable);
        }
        done = true;
        p.server->stop();
      },
      [](std::exception_ptr e) {
        if (e) std::rethrow_exception(e);
      });
  p.io.run_for(30s);
  REQUIRE(done);
}

migration::journal::entry record(const std::string& id, migration::journal::role side, migration::journal::step s,
                                 const std::filesystem::path& images = {}) {
  migration::journal::entry e;
  e.migration_id = id;
  e.side = side;
  e.state = s;
  e.container = "c1";
  e.runtime = "runc";
  e.method = "cold";
  e.peer = side == migration::journal::role::source ? "edge-b" : "edge-a";
  e.images = images;
  e.frozen = true;
  return e;
}

// c1 frozen at edge-a by a final checkpoint into `images`, as a source
// killed after it left it.
void frozen_at_a(pair& p, const std::filesystem::path& images) {
  p.a.rt->add_running("c1", initial_state);
  bool ok = false, done = false;
  asio::co_spawn(
      p.io,
      [&]() -> awaitable<void> {
        runtime::checkpoint_request req{.image_dir = images, .work_dir = images, .keep_frozen = true};
        ok = (co_await p.a.rt->checkpoint("c1", req)).has_value();
        done = true;
      },
      asio::detached);
  while (!done) p.io.run_one();
  REQUIRE(ok);
  p.a.rt->stops = 0;
  REQUIRE(p.a.rt->containers["c1"].status == "paused");
}

}  // namespace

TEST_CASE("after a crash the journal brings back, releases or removes exactly one copy", "[sessions][journal]") {
  testing::temp_dir logs;
  quiet_logs(logs);
  using migration::journal::role;
  using migration::journal::step;
  pair p;
  const std::string mid = "m-00c0ffee";
  const auto images = p.a.cfg.storage_dir / "outgoing" / mid / "round-1";
  auto report = [&](node& n) -> pb::Report {
    const auto* r = n.registry.find(mid);
    REQUIRE(r);
    CHECK(r->phase() == "recovery");
    return *r;
  };

  SECTION("source killed after the final checkpoint: thawed here") {
    frozen_at_a(p, images);
    REQUIRE(p.a.journal.write(record(mid, role::source, step::stopped, images)));
    recover_on(p, p.a);
    p.require_one_copy("c1", initial_state);
    CHECK(p.a.rt->running("c1"));
    CHECK(p.a.journal.load().entries.empty());
    CHECK(report(p.a).result() == pb::RESULT_ROLLED_BACK);
    CHECK_FALSE(std::filesystem::exists(images));  // the images are not needed any more
  }
  SECTION("source killed after sending Commit, which the destination recorded: released here") {
    frozen_at_a(p, images);
    p.b.rt->add_running("c1", initial_state);
    REQUIRE(p.a.journal.write(record(mid, role::source, step::committing, images)));
    REQUIRE(p.b.journal.write(record(mid, role::destination, step::committed)));
    recover_on(p, p.a);
    p.require_one_copy("c1", initial_state);
    CHECK(p.b.rt->running("c1"));
    CHECK_FALSE(p.a.rt->containers.contains("c1"));
    CHECK(p.a.journal.load().entries.empty());
    CHECK(report(p.a).result() == pb::RESULT_OK);
  }
  SECTION("source killed after sending Commit, which never arrived: thawed here") {
    frozen_at_a(p, images);
    REQUIRE(p.a.journal.write(record(mid, role::source, step::committing, images)));
    recover_on(p, p.a);
    p.require_one_copy("c1", initial_state);
    CHECK(p.a.rt->running("c1"));
    CHECK(p.a.journal.load().entries.empty());
  }
  SECTION("a destination that cannot answer: the copy stays frozen, reported lost, never thawed on a guess") {
    frozen_at_a(p, images);
    p.a.cfg.peers.front().address.port = 1;  // nobody listens there
    p.a.cfg.timeouts.outcome = 1500ms;
    REQUIRE(p.a.journal.write(record(mid, role::source, step::committing, images)));
    recover_on(p, p.a);
    CHECK(p.a.rt->containers["c1"].status == "paused");
    CHECK_FALSE(p.a.rt->running("c1"));
    const auto r = report(p.a);
    CHECK(r.result() == pb::RESULT_FAILED);
    CHECK_THAT(r.error(), Catch::Matchers::Contains("kept frozen"));
    CHECK_THAT(r.error(), Catch::Matchers::Contains("migratectl recover " + mid));
    CHECK(std::filesystem::exists(p.a.cfg.storage_dir / "outgoing" / mid / "lost.json"));
    // The question stays for the next start.
    auto left = p.a.journal.load().entries;
    REQUIRE(left.size() == 1);
    CHECK(left[0].state == step::committing);
  }
  SECTION("destination killed after its restore, before Commit: its copy goes") {
    p.a.rt->add_running("c1", initial_state);  // the source rolled back
    p.b.rt->add_running("c1", initial_state);
    REQUIRE(p.b.journal.write(record(mid, role::destination, step::restored)));
    recover_on(p, p.b);
    p.require_one_copy("c1", initial_state);
    CHECK(p.a.rt->running("c1"));
    CHECK(p.b.journal.load().entries.empty());
  }
  SECTION("destination killed after recording Commit: it keeps the container and the record") {
    p.b.rt->add_running("c1", initial_state);
    REQUIRE(p.b.journal.write(record(mid, role::destination, step::committed)));
    recover_on(p, p.b);
    CHECK(p.b.rt->running("c1"));
    CHECK(p.b.journal.load().entries.size() == 1);
  }
  SECTION("a corrupt record: refused, shown, left in place, its container untouched") {
    frozen_at_a(p, images);
    REQUIRE(p.a.journal.write(record(mid, role::source, step::committing, images)));
    const auto file = p.a.journal.dir() / (mid + ".json");
    std::filesystem::resize_file(file, std::filesystem::file_size(file) / 2);
    recover_on(p, p.a);
    CHECK(p.a.rt->containers["c1"].status == "paused");
    const auto r = report(p.a);
    CHECK(r.result() == pb::RESULT_FAILED);
    CHECK_THAT(r.error(), Catch::Matchers::Contains(file.string()));
    CHECK(std::filesystem::exists(file));
  }
}

TEST_CASE("a destination that cannot record Commit refuses it: the source rolls back, one copy", "[sessions][journal]") {
  testing::temp_dir logs;
  quiet_logs(logs);
  // The destination's last runtime step before Commit, in a migration that works.
  int last_b = 0;
  {
    pair p;
    p.a.rt->add_running("c1", initial_state);
    REQUIRE(p.migrate("c1", pb::COLD).report.result() == pb::RESULT_OK);
    for (std::size_t i = 0; i < p.plan.log.size(); ++i)
      if (p.plan.log[i].rfind("b:", 0) == 0) last_b = int(i) + 1;
  }
  REQUIRE(last_b > 0);
  pair p;
  p.a.rt->add_running("c1", initial_state);
  p.plan.on_step = [&p, last_b](int op, const std::string&) {
    if (op == last_b) std::filesystem::remove_all(p.b.journal.dir());  // its disk fails it
  };
  auto o = p.migrate("c1", pb::COLD);
  INFO(o.report.error());
  CHECK(o.report.result() == pb::RESULT_ROLLED_BACK);
  CHECK_THAT(o.report.error(), Catch::Matchers::Contains("journal"));
  p.require_one_copy("c1", initial_state);
  CHECK(p.a.rt->running("c1"));
  CHECK(p.a.journal.load().entries.empty());
}
