// Unit tests for the page link (transport/page_link.hpp) and the
// destination's pull over it (pages/page_pull.hpp), over loopback TLS
// between two nodes of a fleet, with the source's pages coming from a
// dump_page_client talking to the daemon's own page server over CRIU
// 4.1.1 images of a real task (in place of a lazy dump's page server):
// a fault and then the background pull bring every page into the store
// byte for byte, and the end is acknowledged; an urgent request overtakes
// the background ones queued before it; a request the source cannot
// answer is refused alone, the link going on; answers that are not the
// pages asked, and a link that breaks, end every waiting request with an
// error instead of a hang. A hybrid's pull, holding a stale copy of the
// pages, gets only those that differ and ends with the source's pages.
// A client that keeps its requests on loss waits out a cut link beyond its
// deadlines and gets every page, byte for byte, over the next one.
#include <catch2/catch.hpp>

#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/local/connect_pair.hpp>

#include "fleet.hpp"
#include "pages/dump_page_client.hpp"
#include "pages/image_page_server.hpp"
#include "pages/page_pull.hpp"
#include "task_images.hpp"
#include "transport/page_link.hpp"

using namespace migrated;
using namespace std::chrono_literals;
using transport::channel;
using unix_socket = asio::local::stream_protocol::socket;

namespace {

constexpr std::chrono::milliseconds io_timeout = 5000ms;

void rethrow(std::exception_ptr e) {
  if (e) std::rethrow_exception(e);
}

pages::held_runs held_by(const testing::task_images& task) {
  pages::held_runs h;
  for (const auto& r : task.set.runs)
    if (r.has_data) h[1].push_back(r);
  return h;
}

// The background pull ended, and without an error (which it shows if not).
void require_pulled(const std::optional<result<pages::pull_stats>>& pulled) {
  REQUIRE(pulled.has_value());
  INFO((*pulled ? std::string() : pulled->error().message));
  REQUIRE(*pulled);
}

// Two ends of a TLS connection on loopback: the source accepts, the
// destination connects; again() makes a second pair on the same io_context.
struct link_ends {
  asio::io_context io;
  std::optional<channel> source, destination;
  std::optional<channel> source2, destination2;

  link_ends() { connect(source, destination); }
  void again() { connect(source2, destination2); }

 private:
  void connect(std::optional<channel>& src, std::optional<channel>& dst) {
    tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    auto accept = [&]() -> awaitable<void> {
      tcp::socket s = co_await acceptor.async_accept(use_awaitable);
      src.emplace(std::move(s), testing::shared_fleet().tls("edge-a"), io_timeout);
      auto ok = co_await src->secure(channel::side::server, io_timeout);
      REQUIRE(ok);
    };
    auto connect = [&]() -> awaitable<void> {
      tcp::socket s(io);
      co_await s.async_connect(acceptor.local_endpoint(), use_awaitable);
      dst.emplace(std::move(s), testing::shared_fleet().tls("edge-b"), io_timeout);
      auto ok = co_await dst->secure(channel::side::client, io_timeout);
      REQUIRE(ok);
    };
    asio::co_spawn(io, accept(), rethrow);
    asio::co_spawn(io, connect(), rethrow);
    io.run_for(10s);
    REQUIRE(src);
    REQUIRE(dst);
    io.restart();
  }
};

// The source's pages: the daemon's page server over the task's images, and the dump client in front of it.
struct source_pages {
  testing::task_images task;
  asio::thread_pool pool{1};
  pages::image_page_server server;
  unix_socket theirs;
  std::optional<pages::dump_page_client> client;
  std::optional<result<pages::serve_stats>> served;

  explicit source_pages(asio::io_context& io) : server(*pages::image_page_server::open(task.dir.path)), theirs(io) {
    unix_socket ours(io);
    asio::local::connect_pair(ours, theirs);
    client.emplace(std::move(ours), held_by(task));
    asio::co_spawn(io, serve(*this), rethrow);
  }

  // (Not a lambda: its closure would be gone before the coroutine ends.)
  static awaitable<void> serve(source_pages& s) { s.served = co_await s.server.serve(s.theirs, s.pool, 10000ms); }

  // The task's page at `vaddr`, as the pages file holds it.
  std::span<const std::uint8_t> page_at(std::uint64_t vaddr) const {
    const auto i = task.set.find(vaddr);
    REQUIRE(i);
    return std::span<const std::uint8_t>(task.pages).subspan(*i * pages::page_size, pages::page_size);
  }
};

struct served_link {
  std::optional<result<transport::page_link_stats>> stats;
};

awaitable<void> serve_link(channel& ch, transport::page_provider& provider, served_link& out) {
  transport::page_link_stats st;
  auto ended = co_await transport::serve_page_link(ch, provider, io_timeout, st);
  if (!ended) out.stats = std::unexpected(ended.error());
  else if (ended->lost) out.stats = std::unexpected(*ended->lost);
  else out.stats = st;
}

// Both ends of the page link running: the source serving from `src`, the destination's reader.
struct running_link {
  served_link served;
  transport::page_link_client link;
  std::optional<result<transport::link_end>> ran;

  running_link(link_ends& ends, source_pages& src) : link(*ends.destination) {
    asio::co_spawn(ends.io, serve_link(*ends.source, *src.client, served), rethrow);
    asio::co_spawn(ends.io, read(*this), rethrow);
  }
  static awaitable<void> read(running_link& l) { l.ran = co_await l.link.run(io_timeout); }
};

}  // namespace

TEST_CASE("a fault, then the background pull, bring every page over the page link", "[pages][link]") {
  link_ends ends;
  source_pages src(ends.io);
  const std::uint32_t chunk = GENERATE(1u, 32u);
  const std::size_t window = GENERATE(std::size_t(1), std::size_t(4));
  running_link both(ends, src);
  auto& link = both.link;
  const auto& served = both.served;
  const auto& ran = both.ran;

  const auto held = held_by(src.task);
  pages::push_order order(held);
  pages::link_source remote(link, order, io_timeout);
  pages::page_store store(remote);
  const auto& runs = held.at(1);
  REQUIRE(runs.size() > 1);
  const std::uint64_t fault_at = runs[runs.size() / 2].vaddr;
  std::uint64_t verified = 0, wrong = 0;
  std::optional<result<pages::pull_stats>> pulled;
  std::optional<result<void>> faulted, finished;
  auto destination = [&]() -> awaitable<void> {
    std::vector<std::uint8_t> data;
    auto n = co_await store.pages(pages::page_request{.pid = 1, .vaddr = fault_at, .pages = 1}, data);
    faulted = n ? result<void>{} : result<void>(std::unexpected(n.error()));
    if (!n) co_return;
    if (!std::equal(data.begin(), data.end(), src.page_at(fault_at).begin())) ++wrong;
    const bool stop = false;
    pulled = co_await pages::pull_pages(link, order, store, pages::pull_options{.chunk_pages = chunk, .window = window},
                                        stop);
    // Every page but the fault's is in the store now: read them back as lazy-pages would.
    for (const auto& r : runs) {
      const std::uint64_t end = r.vaddr + std::uint64_t(r.nr_pages) * pages::page_size;
      for (std::uint64_t v = r.vaddr; v < end; v += pages::page_size) {
        if (v == fault_at) continue;
        auto got = co_await store.pages(pages::page_request{.pid = 1, .vaddr = v, .pages = 1}, data);
        if (got && *got == 1 && std::equal(data.begin(), data.end(), src.page_at(v).begin())) ++verified;
        else ++wrong;
      }
    }
    pb::PagesEnd summary;
    summary.set_pages_faulted(1);
    summary.set_pages_pulled((*pulled)->pages);
    finished = co_await link.finish(summary, io_timeout);
    co_await src.client->close(io_timeout);
  };
  asio::co_spawn(ends.io, destination(), rethrow);
  ends.io.run_for(30s);
  REQUIRE(ends.io.stopped());

  INFO("chunk " << chunk << ", window " << window);
  REQUIRE(faulted.has_value());
  INFO((*faulted ? std::string() : faulted->error().message));
  REQUIRE(*faulted);
  require_pulled(pulled);
  CHECK(wrong == 0);
  CHECK(verified == src.task.set.stored_pages - 1);
  CHECK((*pulled)->pages == src.task.set.stored_pages - 1);  // the fault's page is not pulled again
  const auto st = store.stats();
  CHECK(st.fetched_pages == 1);
  CHECK(st.faults == 1);
  CHECK(st.local_pages == src.task.set.stored_pages - 1);
  REQUIRE(finished.has_value());
  CHECK(finished->has_value());
  REQUIRE(ran.has_value());
  REQUIRE(ran->has_value());
  CHECK_FALSE((*ran)->lost);
  REQUIRE(served.stats.has_value());
  REQUIRE(served.stats->has_value());
  CHECK((*served.stats)->pages == src.task.set.stored_pages);
  CHECK((*served.stats)->urgent == 1);
  CHECK((*served.stats)->refused == 0);
  // The destination's account of the transfer reaches the source with PagesEnd.
  CHECK((*served.stats)->end.pages_faulted() == 1);
  CHECK((*served.stats)->end.pages_pulled() == src.task.set.stored_pages - 1);
  REQUIRE(src.served.has_value());
  CHECK(src.served->has_value());
}

TEST_CASE("the pull asks for no more while lazy-pages has not taken what it holds", "[pages][link]") {
  link_ends ends;
  source_pages src(ends.io);
  running_link both(ends, src);
  const auto held = held_by(src.task);
  pages::push_order order(held);
  pages::link_source remote(both.link, order, io_timeout);
  pages::page_store store(remote);
  const pages::pull_options opts{.chunk_pages = 1, .window = 2, .max_held_pages = 4};
  const std::uint64_t bound = opts.max_held_pages + opts.window * opts.chunk_pages;
  REQUIRE(src.task.set.stored_pages > 2 * bound);  // else no bound could show

  std::uint64_t most_held = 0, verified = 0, wrong = 0;
  std::optional<result<pages::pull_stats>> pulled;
  bool stop = false;
  // lazy-pages, slowly: 4 pages every 2 ms, in address order.
  auto lazy_pages = [&]() -> awaitable<void> {
    asio::steady_timer pause(co_await asio::this_coro::executor);
    std::vector<std::uint8_t> data;
    for (const auto& r : held.at(1)) {
      const std::uint64_t end = r.vaddr + std::uint64_t(r.nr_pages) * pages::page_size;
      for (std::uint64_t v = r.vaddr; v < end;) {
        pause.expires_after(2ms);
        co_await pause.async_wait(use_awaitable);
        most_held = std::max(most_held, store.held_pages());
        const auto want = std::uint32_t(std::min<std::uint64_t>(4, (end - v) / pages::page_size));
        auto got = co_await store.pages(pages::page_request{.pid = 1, .vaddr = v, .pages = want}, data);
        if (!got || *got == 0) {
          ++wrong;
          co_return;
        }
        for (std::uint32_t i = 0; i < *got; ++i) {
          const auto page = std::span<const std::uint8_t>(data).subspan(i * pages::page_size, pages::page_size);
          if (std::equal(page.begin(), page.end(), src.page_at(v + i * pages::page_size).begin())) ++verified;
          else ++wrong;
        }
        v += std::uint64_t(*got) * pages::page_size;
      }
    }
  };
  auto destination = [&]() -> awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    bool taken_all = false;
    asio::co_spawn(ex, [&]() -> awaitable<void> {
      co_await lazy_pages();
      taken_all = true;
    }, rethrow);
    pulled = co_await pages::pull_pages(both.link, order, store, opts, stop);
    asio::steady_timer t(ex);
    while (!taken_all) {
      t.expires_after(5ms);
      co_await t.async_wait(use_awaitable);
    }
    co_await both.link.finish(pb::PagesEnd{}, io_timeout);
    co_await src.client->close(io_timeout);
  };
  asio::co_spawn(ends.io, destination(), rethrow);
  ends.io.run_for(30s);
  REQUIRE(ends.io.stopped());

  require_pulled(pulled);
  CHECK(wrong == 0);
  CHECK(verified == src.task.set.stored_pages);
  // The pull brought most of them, never more than the bound ahead of lazy-pages.
  CHECK((*pulled)->pages > src.task.set.stored_pages / 2);
  CHECK(most_held <= bound);
  CHECK(most_held > 0);
}

TEST_CASE("a hybrid's pull takes the pages that did not change from its own copy", "[pages][link]") {
  link_ends ends;
  source_pages src(ends.io);
  running_link both(ends, src);
  // The destination's copy: the same images, every third page changed since.
  testing::task_images stale;
  std::uint64_t changed = 0;
  {
    std::fstream f(stale.dir.path / "pages-1.img", std::ios::in | std::ios::out | std::ios::binary);
    for (std::uint64_t i = 0; i < stale.set.stored_pages; i += 3, ++changed) {
      f.seekp(std::streamoff(i * pages::page_size + 17));
      f.put(char(~stale.pages[i * pages::page_size + 17]));
    }
  }
  REQUIRE(changed > 0);
  auto base = pages::image_page_server::open(stale.dir.path);
  REQUIRE(base);
  asio::thread_pool pool(1);
  const pages::base_round round{&*base, &pool};

  const auto held = held_by(src.task);
  pages::push_order order(held);
  pages::link_source remote(both.link, order, io_timeout, round);
  pages::page_store store(remote);
  const std::uint64_t unchanged_fault = src.task.set.vaddr_of(1);  // (only every third page changed)
  std::uint64_t verified = 0, wrong = 0;
  std::optional<result<pages::pull_stats>> pulled;
  std::optional<std::uint64_t> fault_bytes;
  const pages::pull_options opts{.chunk_pages = 32, .window = 4, .base = round};
  auto destination = [&]() -> awaitable<void> {
    std::vector<std::uint8_t> data;
    auto n = co_await store.pages(pages::page_request{.pid = 1, .vaddr = unchanged_fault, .pages = 1}, data);
    if (!n || !std::equal(data.begin(), data.end(), src.page_at(unchanged_fault).begin())) ++wrong;
    fault_bytes = both.link.page_bytes();
    const bool stop = false;
    pulled = co_await pages::pull_pages(both.link, order, store, opts, stop);
    for (const auto& r : held.at(1)) {
      const std::uint64_t end = r.vaddr + std::uint64_t(r.nr_pages) * pages::page_size;
      for (std::uint64_t v = r.vaddr; v < end; v += pages::page_size) {
        if (v == unchanged_fault) continue;
        auto got = co_await store.pages(pages::page_request{.pid = 1, .vaddr = v, .pages = 1}, data);
        if (got && *got == 1 && std::equal(data.begin(), data.end(), src.page_at(v).begin())) ++verified;
        else ++wrong;
      }
    }
    co_await both.link.finish(pb::PagesEnd{}, io_timeout);
    co_await src.client->close(io_timeout);
  };
  asio::co_spawn(ends.io, destination(), rethrow);
  ends.io.run_for(30s);
  REQUIRE(ends.io.stopped());

  require_pulled(pulled);
  // Every page is the source's, the changed ones too: none of the stale copies stayed.
  CHECK(wrong == 0);
  CHECK(verified == src.task.set.stored_pages - 1);
  // The fault on an unchanged page cost no page on the wire.
  CHECK(fault_bytes == 0u);
  // Only the changed pages crossed the link; the rest came from the copy.
  CHECK(both.link.page_bytes() == changed * pages::page_size);
  CHECK(both.link.unchanged_pages() == src.task.set.stored_pages - changed);
  REQUIRE(both.served.stats.has_value());
  REQUIRE(both.served.stats->has_value());
  CHECK((*both.served.stats)->pages == src.task.set.stored_pages);
  CHECK((*both.served.stats)->unchanged == src.task.set.stored_pages - changed);
}

TEST_CASE("a hybrid's requests grow as few of its pages change, within a bound", "[pages][link]") {
  using pages::request_pages;
  // Plain post-copy: every page asked crosses, so the chunk stays.
  CHECK(request_pages(32, false, 100000, 0) == 32);
  // Too few answers yet to say.
  CHECK(request_pages(32, true, 31, 0) == 32);
  // Every page changed: as plain post-copy.
  CHECK(request_pages(32, true, 6400, 6400) == 32);
  // One in three changed: three times the pages, the same bytes expected back.
  CHECK(request_pages(32, true, 9000, 3000) == 96);
  // Nothing changed: at most max_growth times the chunk, within the link's largest answer.
  CHECK(request_pages(32, true, 100000, 0) == 32 * pages::max_growth);
  CHECK(request_pages(512, true, 100000, 0) == transport::max_link_pages);
  CHECK(request_pages(0, true, 100000, 0) == pages::max_growth);  // (a chunk is at least a page)
}

TEST_CASE("an urgent request overtakes the background ones asked before it", "[pages][link]") {
  link_ends ends;
  source_pages src(ends.io);
  running_link both(ends, src);
  auto& link = both.link;
  const auto& served = both.served;

  const auto held = held_by(src.task);
  const auto first = held.at(1).front();
  constexpr int background = 24;
  std::vector<std::vector<std::uint8_t>> data(background + 1);
  std::vector<std::string> finished;
  // (const char*: g++ 12 mishandles non-trivial by-value coroutine parameters.)
  auto get = [&](const char* name, std::size_t slot, bool urgent) -> awaitable<void> {
    auto n = co_await link.get(1, first.vaddr, 16, data[slot], urgent, io_timeout);
    finished.push_back(n ? std::string(name) : std::string(name) + " failed: " + n.error().message);
  };
  auto all = [&]() -> awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    for (int i = 0; i < background; ++i) asio::co_spawn(ex, get("background", std::size_t(i), false), rethrow);
    asio::co_spawn(ex, get("urgent", background, true), rethrow);
    co_return;
  };
  asio::co_spawn(ends.io, all(), rethrow);
  for (int i = 0; i < 500 && finished.size() < background + 1; ++i) ends.io.run_for(10ms);
  REQUIRE(finished.size() == background + 1);
  const auto at = std::find(finished.begin(), finished.end(), "urgent") - finished.begin();
  INFO("answered " << at + 1 << "th of " << finished.size());
  // Ahead of it at most the background answer under way at the page
  // server and the one being written; without priorities it comes last.
  CHECK(at <= 2);
  CHECK(std::count(finished.begin(), finished.end(), "background") == background);
  bool ended = false;
  auto end = [&]() -> awaitable<void> {
    const pb::PagesEnd summary;
    ended = (co_await link.finish(summary, io_timeout)).has_value();
    co_await src.client->close(io_timeout);
  };
  asio::co_spawn(ends.io, end(), rethrow);
  ends.io.run_for(10s);
  REQUIRE(ends.io.stopped());
  CHECK(ended);
  REQUIRE(served.stats.has_value());
  REQUIRE(served.stats->has_value());
  CHECK((*served.stats)->requests == background + 1);
}

TEST_CASE("a request the source cannot answer is refused alone, and the link goes on", "[pages][link]") {
  link_ends ends;
  source_pages src(ends.io);
  served_link served;
  asio::co_spawn(ends.io, serve_link(*ends.source, *src.client, served), rethrow);
  // The destination speaks raw frames here, to send what page_link_client never would.
  std::vector<std::string> answers;
  auto destination = [&]() -> awaitable<void> {
    auto& ch = *ends.destination;
    const auto held = held_by(src.task);
    const auto first = held.at(1).front();
    auto ask = [&](std::uint64_t id, std::uint64_t vaddr, std::uint32_t n) -> awaitable<void> {
      pb::Envelope env;
      env.set_request_id(id);
      env.mutable_page_get()->set_pid(1);
      env.mutable_page_get()->set_vaddr(vaddr);
      env.mutable_page_get()->set_pages(n);
      auto sent = co_await ch.send(env);
      REQUIRE(sent);
      auto f = co_await ch.recv();
      REQUIRE(f);
      CHECK(f->msg.request_id() == id);
      if (f->msg.has_page_data()) answers.push_back("pages " + std::to_string(f->msg.page_data().pages()));
      else answers.push_back(transport::to_result(f->msg.reply()).error().message);
    };
    co_await ask(1, 0x1000, 1);                  // not the dump's memory
    co_await ask(2, first.vaddr, 2000);          // more than an answer may hold
    co_await ask(3, first.vaddr + 1, 1);         // not page-aligned
    co_await ask(4, first.vaddr, 1);             // and still served
    pb::Envelope end;
    end.set_request_id(5);
    end.mutable_pages_end();
    auto sent = co_await ch.send(end);
    REQUIRE(sent);
    auto f = co_await ch.recv();
    REQUIRE(f);
    CHECK(f->msg.has_reply());
    CHECK(f->msg.reply().ok());
    co_await src.client->close(io_timeout);
  };
  asio::co_spawn(ends.io, destination(), rethrow);
  ends.io.run_for(20s);
  REQUIRE(ends.io.stopped());
  REQUIRE(answers.size() == 4);
  CHECK_THAT(answers[0], Catch::Contains("not lazy memory of the dump"));
  CHECK_THAT(answers[1], Catch::Contains("2000 pages asked"));
  CHECK_THAT(answers[2], Catch::Contains("not page-aligned"));
  CHECK(answers[3] == "pages 1");
  REQUIRE(served.stats.has_value());
  REQUIRE(served.stats->has_value());
  CHECK((*served.stats)->refused == 3);
  CHECK((*served.stats)->requests == 1);
}

TEST_CASE("a broken link or a wrong answer ends every waiting request with an error", "[pages][link]") {
  link_ends ends;
  const std::string how = GENERATE("cut", "wrong address", "short payload", "never asked", "unchanged, with no copy");
  // The source speaks raw frames: it reads the first request, then breaks the protocol its way.
  auto source = [&]() -> awaitable<void> {
    auto& ch = *ends.source;
    auto f = co_await ch.recv();
    REQUIRE(f);
    REQUIRE(f->msg.has_page_get());
    const auto& g = f->msg.page_get();
    if (how == "cut") {
      ch.close();
      co_return;
    }
    pb::Envelope env;
    env.set_request_id(how == "never asked" ? 99 : f->msg.request_id());
    auto* d = env.mutable_page_data();
    d->set_pid(g.pid());
    d->set_vaddr(how == "wrong address" ? g.vaddr() + 4096 : g.vaddr());
    d->set_pages(1);
    // (A page marked unchanged for a request that sent no hash: there is no copy to take it from.)
    if (how == "unchanged, with no copy") d->set_unchanged(std::string(1, '\x01'));
    const std::vector<std::uint8_t> page(how == "short payload" ? 100 : how == "unchanged, with no copy" ? 0 : 4096, 0xab);
    co_await ch.send(env, page);
    co_await ch.recv(2000ms);  // until the destination hangs up
  };
  asio::co_spawn(ends.io, source(), rethrow);
  transport::page_link_client link(*ends.destination);
  std::optional<result<transport::link_end>> ran;
  std::vector<std::optional<result<std::uint32_t>>> got(3);
  std::vector<std::vector<std::uint8_t>> data(3);
  auto run = [&]() -> awaitable<void> {
    ran = co_await link.run(io_timeout);
    ends.destination->close();
  };
  auto get = [&](std::size_t i) -> awaitable<void> {
    got[i] = co_await link.get(1, 0x7f0000000000 + i * 4096, 1, data[i], i == 0, io_timeout);
  };
  asio::co_spawn(ends.io, run(), rethrow);
  for (std::size_t i = 0; i < 3; ++i) asio::co_spawn(ends.io, get(i), rethrow);
  ends.io.run_for(20s);
  REQUIRE(ends.io.stopped());
  INFO(how);
  REQUIRE(ran.has_value());
  REQUIRE_FALSE(ran->has_value());
  INFO(ran->error().message);
  CHECK(ran->error().code == (how == "cut" ? errc::peer : errc::protocol));
  for (const auto& g : got) {
    REQUIRE(g.has_value());
    REQUIRE_FALSE(g->has_value());
    CHECK(g->error().code == ran->error().code);
  }
  CHECK(link.failed().has_value());
  std::vector<std::uint8_t> after;
  std::optional<result<std::uint32_t>> later;
  auto again = [&]() -> awaitable<void> { later = co_await link.get(1, 0x7f0000000000, 1, after, true, io_timeout); };
  ends.io.restart();
  asio::co_spawn(ends.io, again(), rethrow);
  ends.io.run_for(2s);
  REQUIRE(later.has_value());
  CHECK_FALSE(later->has_value());  // at once: the link is gone
}

TEST_CASE("a lost link keeps its requests, beyond their deadlines, until the next link answers them", "[pages][link]") {
  link_ends ends;
  ends.again();
  source_pages src(ends.io);
  const auto held = held_by(src.task);
  const auto& runs = held.at(1);
  REQUIRE(runs.size() >= 3);
  transport::page_link_client link(*ends.destination);
  link.keep_on_loss(true);
  constexpr std::chrono::milliseconds deadline = 500ms;  // the link stays down longer than that
  const std::size_t asked = 3;
  std::vector<std::optional<result<std::uint32_t>>> got(asked);
  std::vector<std::vector<std::uint8_t>> data(asked);
  std::optional<result<transport::link_end>> first, second;
  std::optional<result<void>> finished;
  served_link served;
  bool down_while_cut = false;
  std::size_t read_before_cut = 0;

  // The first link: the source reads the requests and goes silent, then away.
  auto cut = [&]() -> awaitable<void> {
    for (; read_before_cut < asked; ++read_before_cut) {
      auto f = co_await ends.source->recv(io_timeout);
      REQUIRE(f);
      REQUIRE(f->msg.has_page_get());
    }
    ends.source->close();
  };
  auto get = [&](std::size_t i) -> awaitable<void> {
    got[i] = co_await link.get(1, runs[i].vaddr, 1, data[i], i == 0, deadline);
  };
  auto reading = [&]() -> awaitable<void> { second = co_await link.run(io_timeout); };
  const pb::PagesEnd summary;
  auto destination = [&]() -> awaitable<void> {
    first = co_await link.run(io_timeout);
    co_await link.suspend();
    down_while_cut = link.down();
    asio::steady_timer outage(co_await asio::this_coro::executor, 3 * deadline);
    co_await outage.async_wait(use_awaitable);
    asio::co_spawn(co_await asio::this_coro::executor, serve_link(*ends.source2, *src.client, served), rethrow);
    co_await link.resume(*ends.destination2);
    asio::co_spawn(co_await asio::this_coro::executor, reading(), rethrow);
    for (;;) {  // every page in, then the end
      bool all = true;
      for (const auto& g : got) all = all && g.has_value();
      if (all) break;
      asio::steady_timer tick(co_await asio::this_coro::executor, 10ms);
      co_await tick.async_wait(use_awaitable);
    }
    finished = co_await link.finish(summary, io_timeout);
    co_await src.client->close(io_timeout);
  };
  asio::co_spawn(ends.io, cut(), rethrow);
  for (std::size_t i = 0; i < asked; ++i) asio::co_spawn(ends.io, get(i), rethrow);
  asio::co_spawn(ends.io, destination(), rethrow);
  ends.io.run_for(30s);
  REQUIRE(ends.io.stopped());

  CHECK(read_before_cut == asked);
  REQUIRE(first.has_value());
  REQUIRE(first->has_value());
  REQUIRE((*first)->lost);  // lost, not failed: the requests stay
  CHECK((*first)->lost->code == errc::peer);
  CHECK(down_while_cut);
  for (std::size_t i = 0; i < asked; ++i) {
    INFO("request " << i);
    REQUIRE(got[i].has_value());
    INFO((*got[i] ? std::string() : got[i]->error().message));
    REQUIRE(got[i]->has_value());
    CHECK(**got[i] == 1);
    const auto want = src.page_at(runs[i].vaddr);
    CHECK(std::equal(data[i].begin(), data[i].end(), want.begin(), want.end()));
  }
  REQUIRE(finished.has_value());
  CHECK(finished->has_value());
  REQUIRE(second.has_value());
  REQUIRE(second->has_value());
  CHECK_FALSE((*second)->lost);
  REQUIRE(served.stats.has_value());
  REQUIRE(served.stats->has_value());
  CHECK((*served.stats)->requests == asked);  // each asked once more, on the second link only
}

TEST_CASE("a lost link given up fails every request it kept", "[pages][link]") {
  link_ends ends;
  transport::page_link_client link(*ends.destination);
  link.keep_on_loss(true);
  std::optional<result<std::uint32_t>> got, later;
  std::vector<std::uint8_t> data;
  std::optional<result<transport::link_end>> ran;
  auto source = [&]() -> awaitable<void> {
    auto f = co_await ends.source->recv(io_timeout);
    REQUIRE(f);
    ends.source->close();
  };
  auto get = [&]() -> awaitable<void> { got = co_await link.get(1, 0x7f0000000000, 1, data, true, 200ms); };
  auto destination = [&]() -> awaitable<void> {
    ran = co_await link.run(io_timeout);
    co_await link.suspend();
    asio::steady_timer outage(co_await asio::this_coro::executor, 600ms);
    co_await outage.async_wait(use_awaitable);
    CHECK_FALSE(got.has_value());  // still waiting, past its deadline
    link.give_up(error{errc::peer, "the page link did not come back"});
    later = co_await link.get(1, 0x7f0000001000, 1, data, true, 200ms);
  };
  asio::co_spawn(ends.io, source(), rethrow);
  asio::co_spawn(ends.io, get(), rethrow);
  asio::co_spawn(ends.io, destination(), rethrow);
  ends.io.run_for(10s);
  REQUIRE(ends.io.stopped());
  REQUIRE(ran.has_value());
  REQUIRE(ran->has_value());
  CHECK((*ran)->lost);
  REQUIRE(got.has_value());
  REQUIRE_FALSE(got->has_value());
  CHECK_THAT(got->error().message, Catch::Contains("did not come back"));
  REQUIRE(later.has_value());
  CHECK_FALSE(later->has_value());
}
