// Unit tests for daemon/pages/dump_page_client over a real socketpair,
// against the daemon's own page server (image_page_server) answering from
// CRIU 4.1.1 images of a real container in place of a dump's: every page
// fetched run by run is the pages file's, byte for byte; CLOSE gets status
// 0; a request the dump could not answer is refused before anything is
// sent (CRIU's server would end, or crash, on it); a server that hangs up
// or goes silent is an error with its cause. lazy_runs() keeps only what a
// lazy dump leaves in its page pipes. (tests/integration/
// test_postcopy_here runs the client against CRIU's own server.)
#include <catch2/catch.hpp>

#include <optional>

#include <boost/asio/local/connect_pair.hpp>
#include <boost/asio/read.hpp>

#include "images/page_set.hpp"
#include "pages/dump_page_client.hpp"
#include "pages/image_page_server.hpp"
#include "task_images.hpp"
#include "temp_dir.hpp"

using namespace migrated;
using namespace std::chrono_literals;
namespace fs = std::filesystem;
using unix_socket = asio::local::stream_protocol::socket;

namespace {

void rethrow(std::exception_ptr e) {
  if (e) std::rethrow_exception(e);
}

using images_of_task = migrated::testing::task_images;

// What the image server holds, as the client must know it: the runs with data.
pages::held_runs held_by(const images_of_task& task) {
  pages::held_runs h;
  for (const auto& r : task.set.runs)
    if (r.has_data) h[1].push_back(r);
  return h;
}

awaitable<void> serve(pages::image_page_server& server, unix_socket& s, asio::thread_pool& pool,
                      std::optional<result<pages::serve_stats>>& out) {
  out = co_await server.serve(s, pool, 2000ms);
}

struct fetched {
  std::uint64_t pages = 0;
  std::uint64_t requests = 0;
  bool all_equal = true;
  std::optional<result<void>> closed;
  std::optional<error> failed;
};

// Every held page, run by run, asking for at most `chunk` pages at a time.
awaitable<void> fetch_all(pages::dump_page_client& client, const images_of_task& task, std::uint32_t chunk,
                          fetched& out) {
  std::vector<std::uint8_t> data;
  for (const auto& [pid, runs] : client.held()) {
    std::uint64_t fetched_to = 0;  // an answer may run on into the adjacent run
    for (const auto& run : runs) {
      std::uint64_t v = std::max(run.vaddr, fetched_to);
      const std::uint64_t end = run.vaddr + std::uint64_t(run.nr_pages) * pages::page_size;
      while (v < end) {
        auto n = co_await client.get(pid, v, chunk, data, 2000ms);
        if (!n) {
          out.failed = n.error();
          co_return;
        }
        ++out.requests;
        const auto first = task.set.find(v);
        if (!first || !std::equal(data.begin(), data.end(), task.pages.begin() + std::ptrdiff_t(*first * pages::page_size)))
          out.all_equal = false;
        out.pages += *n;
        v += std::uint64_t(*n) * pages::page_size;
      }
      fetched_to = v;
    }
  }
  out.closed = co_await client.close(2000ms);
}

}  // namespace

TEST_CASE("dump_page_client fetches every held page, byte for byte, and closes", "[pages]") {
  images_of_task task;
  auto server = pages::image_page_server::open(task.dir.path);
  REQUIRE(server);
  const std::uint32_t chunk = GENERATE(1u, 7u, 4096u);
  asio::io_context io;
  asio::thread_pool pool(1);
  unix_socket a(io), b(io);
  asio::local::connect_pair(a, b);
  pages::dump_page_client client(std::move(a), held_by(task));
  fetched got;
  std::optional<result<pages::serve_stats>> stats;
  asio::co_spawn(io, fetch_all(client, task, chunk, got), rethrow);
  asio::co_spawn(io, serve(*server, b, pool, stats), rethrow);
  io.run_for(20s);
  REQUIRE(io.stopped());
  INFO("chunk " << chunk << (got.failed ? ": " + got.failed->message : ""));
  REQUIRE_FALSE(got.failed);
  CHECK(got.all_equal);
  CHECK(got.pages == task.set.stored_pages);
  REQUIRE(got.closed.has_value());
  CHECK(got.closed->has_value());
  REQUIRE(stats.has_value());
  REQUIRE(stats->has_value());
  CHECK((*stats)->requests == got.requests);
  CHECK((*stats)->pages == task.set.stored_pages);
  CHECK((*stats)->short_answers == 0);  // the client never asks past what is held
}

TEST_CASE("dump_page_client asks only for memory the dump holds", "[pages]") {
  images_of_task task;
  asio::io_context io;
  pages::dump_page_client client(unix_socket(io), held_by(task));
  const auto& runs = client.held().at(1);
  REQUIRE_FALSE(runs.empty());
  const auto& first = runs.front();
  CHECK(client.available(1, first.vaddr) >= first.nr_pages);  // to the end of it and any run adjacent
  CHECK(client.available(1, first.vaddr + pages::page_size) == client.available(1, first.vaddr) - 1);
  CHECK(client.available(1, first.vaddr + 1) == 0);        // unaligned
  CHECK(client.available(2, first.vaddr) == 0);            // no such task
  CHECK(client.available(1, first.vaddr - pages::page_size) == 0);  // below the first run
  const auto& last = runs.back();
  CHECK(client.available(1, last.vaddr + std::uint64_t(last.nr_pages) * pages::page_size) == 0);
}

TEST_CASE("dump_page_client refuses an unheld page before sending, and reports a server gone", "[pages]") {
  images_of_task task;
  asio::io_context io;
  unix_socket a(io), b(io);  // b plays the server: it hangs up, or stays silent
  asio::local::connect_pair(a, b);
  pages::dump_page_client client(std::move(a), held_by(task));
  std::optional<result<std::uint32_t>> refused, after;
  std::vector<std::uint8_t> data;
  const std::string how = GENERATE("hung up", "silent");
  auto run = [&]() -> awaitable<void> {
    refused = co_await client.get(1, 0x1000, 1, data, 2000ms);
    if (how == "hung up") b.close();
    after = co_await client.get(1, task.set.runs.front().vaddr, 1, data, 300ms);
  };
  asio::co_spawn(io, run(), rethrow);
  io.run_for(10s);
  REQUIRE(io.stopped());
  REQUIRE(refused.has_value());
  REQUIRE_FALSE(refused->has_value());
  CHECK(refused->error().code == errc::protocol);
  REQUIRE(after.has_value());
  REQUIRE_FALSE(after->has_value());
  INFO(after->error().message);
  CHECK(after->error().code == (how == "hung up" ? errc::peer : errc::timeout));
  // Nothing crossed for the refused request: the first bytes the server
  // could read are the second request's.
  if (how == "silent") {
    std::array<std::uint8_t, pages::iov_bytes> first{};
    boost::system::error_code ec;
    asio::read(b, asio::buffer(first), ec);
    REQUIRE_FALSE(ec);
    const auto r = pages::parse_request(std::span<const std::uint8_t, pages::iov_bytes>(first));
    REQUIRE(r);
    CHECK(r->vaddr == task.set.runs.front().vaddr);
  }
}

TEST_CASE("dump_page_client sends a fault's request ahead of waiting background ones", "[pages]") {
  images_of_task task;
  auto server = pages::image_page_server::open(task.dir.path);
  REQUIRE(server);
  asio::io_context io;
  asio::thread_pool pool(1);
  unix_socket a(io), b(io);
  asio::local::connect_pair(a, b);
  pages::dump_page_client client(std::move(a), held_by(task));
  const auto& run = client.held().at(1).front();
  std::vector<std::string> finished;
  std::optional<result<pages::serve_stats>> stats;
  std::vector<std::uint8_t> d1, d2, d3, d4;
  // (const char*: g++ 12 mishandles non-trivial by-value coroutine parameters.)
  auto request = [&](const char* name, std::uint64_t v, pages::priority p,
                     std::vector<std::uint8_t>& out) -> awaitable<void> {
    auto n = co_await client.get(1, v, 1, out, 2000ms, p);
    finished.push_back(n ? std::string(name) : std::string(name) + " failed");
  };
  auto all = [&]() -> awaitable<void> {
    // The first takes the socket; the others queue in this order while it waits.
    auto ex = co_await asio::this_coro::executor;
    asio::co_spawn(ex, request("background 1", run.vaddr, pages::priority::background, d1), rethrow);
    asio::co_spawn(ex, request("background 2", run.vaddr, pages::priority::background, d2), rethrow);
    asio::co_spawn(ex, request("background 3", run.vaddr, pages::priority::background, d3), rethrow);
    asio::co_spawn(ex, request("fault", run.vaddr, pages::priority::fault, d4), rethrow);
    co_return;
  };
  asio::co_spawn(io, all(), rethrow);
  asio::co_spawn(io, serve(*server, b, pool, stats), rethrow);
  // Run until the four are done, then let the serve end at the socket's close.
  for (int i = 0; i < 200 && finished.size() < 4; ++i) io.run_for(10ms);
  client.abandon();
  io.run_for(2s);
  REQUIRE(finished.size() == 4);
  CHECK(finished == std::vector<std::string>{"background 1", "fault", "background 2", "background 3"});
}

TEST_CASE("lazy_runs keeps the runs a lazy dump leaves in its page pipes", "[pages]") {
  // The fixture is an ordinary dump: every run has its pages in the file
  // (PE_PRESENT), so a lazy dump's page server would hold none of them.
  images_of_task task;
  auto held = pages::lazy_runs(task.dir.path);
  REQUIRE(held);
  CHECK(held->at(1).empty());
  migrated::testing::temp_dir empty;
  auto none = pages::lazy_runs(empty.path);
  REQUIRE(none);
  CHECK(none->empty());
}
