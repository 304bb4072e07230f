// Unit tests for daemon/pages/image_page_server over a real socketpair, as
// lazy-pages talks to it, with CRIU 4.1.1 images of a real container
// (tests/unit/fixtures/criu-4.1.1): a GET is answered with the stored pages
// from the address asked, byte for byte the pages file's, and never more
// than are stored contiguously; CLOSE is answered with status 0 and ends
// the serve; a request for memory the images do not hold, or a malformed
// one, ends it with errc::protocol. (tests/integration/test_criu_lazy_pages
// runs it against CRIU's own lazy-pages.)
#include <catch2/catch.hpp>

#include <optional>

#include <boost/asio/local/connect_pair.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>

#include "images/page_set.hpp"
#include "pages/image_page_server.hpp"
#include "pages/page_server_protocol.hpp"
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

struct what_the_client_saw {
  std::vector<std::pair<pages::page_request, std::vector<std::uint8_t>>> answers;
  std::optional<std::int32_t> close_status;
  bool hung_up = false;
};

// Sends each request; reads each answer (header and pages) or the close's status.
awaitable<void> client(unix_socket& s, const std::vector<std::array<std::uint8_t, pages::iov_bytes>>& requests,
                       what_the_client_saw& out) {
  boost::system::error_code ec;
  for (const auto& raw : requests) {
    co_await asio::async_write(s, asio::buffer(raw), asio::redirect_error(use_awaitable, ec));
    if (ec) break;
    const auto asked = pages::parse_request(std::span<const std::uint8_t, pages::iov_bytes>(raw));
    if (asked && asked->close) {
      std::int32_t status = -1;
      co_await asio::async_read(s, asio::buffer(&status, sizeof status), asio::redirect_error(use_awaitable, ec));
      if (!ec) out.close_status = status;
      break;
    }
    std::array<std::uint8_t, pages::iov_bytes> header{};
    co_await asio::async_read(s, asio::buffer(header), asio::redirect_error(use_awaitable, ec));
    if (ec) {
      out.hung_up = true;
      break;
    }
    const auto n = pages::parse_answer(std::span<const std::uint8_t, pages::iov_bytes>(header), *asked);
    REQUIRE(n);
    std::vector<std::uint8_t> data(std::size_t(*n) * pages::page_size);
    co_await asio::async_read(s, asio::buffer(data), asio::redirect_error(use_awaitable, ec));
    REQUIRE_FALSE(ec);
    out.answers.emplace_back(*asked, std::move(data));
  }
}

awaitable<void> serve(pages::image_page_server& server, unix_socket& s, asio::thread_pool& pool,
                      std::optional<result<pages::serve_stats>>& out) {
  out = co_await server.serve(s, pool, 2000ms);
}

auto get(std::uint64_t vaddr, std::uint32_t n) { return pages::encode_request({.pid = 1, .vaddr = vaddr, .pages = n}); }

}  // namespace

TEST_CASE("image_page_server answers lazy-pages from the images, byte for byte", "[pages]") {
  images_of_task task;
  auto server = pages::image_page_server::open(task.dir.path);
  REQUIRE(server);
  CHECK(server->tasks() == 1);
  // The first run with data, asked for more pages than it holds.
  const auto run = std::find_if(task.set.runs.begin(), task.set.runs.end(), [](const auto& r) { return r.has_data; });
  REQUIRE(run != task.set.runs.end());
  const auto last = std::find_if(task.set.runs.rbegin(), task.set.runs.rend(), [](const auto& r) { return r.has_data; });

  asio::io_context io;
  asio::thread_pool pool(1);
  unix_socket a(io), b(io);
  asio::local::connect_pair(a, b);
  what_the_client_saw saw;
  std::optional<result<pages::serve_stats>> stats;
  std::vector<std::array<std::uint8_t, pages::iov_bytes>> requests{
      get(run->vaddr, run->nr_pages + 64), get(last->vaddr, 1), pages::encode_request({.close = true})};
  asio::co_spawn(io, client(a, requests, saw), rethrow);
  asio::co_spawn(io, serve(*server, b, pool, stats), rethrow);
  io.run_for(10s);
  REQUIRE(io.stopped());

  REQUIRE(stats.has_value());
  INFO((*stats ? std::string("ok") : stats->error().message));
  REQUIRE(*stats);
  REQUIRE(saw.answers.size() == 2);
  REQUIRE(saw.close_status == 0);
  for (const auto& [asked, data] : saw.answers) {
    const auto first = task.set.find(asked.vaddr);
    REQUIRE(first);
    REQUIRE((*first + data.size() / pages::page_size) * pages::page_size <= task.pages.size());
    CHECK(std::equal(data.begin(), data.end(), task.pages.begin() + std::ptrdiff_t(*first * pages::page_size)));
    // never a page past what is stored contiguously from there
    const std::uint64_t n = data.size() / pages::page_size;
    const auto after = task.set.find(asked.vaddr + n * pages::page_size);
    CHECK((n == asked.pages || !after || *after != *first + n));
  }
  CHECK(saw.answers[0].second.size() / pages::page_size <= run->nr_pages + 64u);
  CHECK((*stats)->requests == 2);
  CHECK((*stats)->pages == (saw.answers[0].second.size() + saw.answers[1].second.size()) / pages::page_size);
  CHECK((*stats)->short_answers == 1);
}

TEST_CASE("image_page_server refuses what the images cannot answer, and malformed requests", "[pages]") {
  images_of_task task;
  auto server = pages::image_page_server::open(task.dir.path);
  REQUIRE(server);
  std::array<std::uint8_t, pages::iov_bytes> bad{};
  SECTION("an address the images do not hold") { bad = get(0x1000, 1); }
  SECTION("another task") { bad = pages::encode_request({.pid = 2, .vaddr = task.set.runs[0].vaddr, .pages = 1}); }
  SECTION("an unaligned address") { bad = get(task.set.runs[0].vaddr + 1, 1); }
  asio::io_context io;
  asio::thread_pool pool(1);
  unix_socket a(io), b(io);
  asio::local::connect_pair(a, b);
  what_the_client_saw saw;
  std::optional<result<pages::serve_stats>> stats;
  const std::vector<std::array<std::uint8_t, pages::iov_bytes>> requests{bad};
  asio::co_spawn(io, client(a, requests, saw), rethrow);
  asio::co_spawn(io, serve(*server, b, pool, stats), rethrow);
  io.run_for(10s);
  REQUIRE(io.stopped());
  REQUIRE(stats.has_value());
  REQUIRE_FALSE(*stats);
  INFO(stats->error().message);
  CHECK(stats->error().code == errc::protocol);
  CHECK(saw.answers.empty());
  CHECK(saw.hung_up);
}

TEST_CASE("image_page_server refuses a directory without a task's pagemap", "[pages]") {
  migrated::testing::temp_dir empty;
  auto server = pages::image_page_server::open(empty.path);
  REQUIRE_FALSE(server);
  CHECK_FALSE(server.error().message.empty());
}
