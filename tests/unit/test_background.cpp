// Unit tests for daemon/background.hpp: a coroutine started now and
// awaited later gives its result to a wait() that comes before or after
// it ended; one that throws ends with errc::internal naming it; waiting
// for one never started does not hang.
#include <catch2/catch.hpp>

#include <optional>
#include <stdexcept>

#include "background.hpp"

using namespace migrated;
using namespace std::chrono_literals;

namespace {

void rethrow(std::exception_ptr e) {
  if (e) std::rethrow_exception(e);
}

awaitable<result<int>> answer_after(std::chrono::milliseconds delay, int value) {
  asio::steady_timer t(co_await asio::this_coro::executor, delay);
  co_await t.async_wait(use_awaitable);
  co_return value;
}

awaitable<result<int>> throws_after_a_while() {
  asio::steady_timer t(co_await asio::this_coro::executor, 10ms);
  co_await t.async_wait(use_awaitable);
  throw std::runtime_error("bad things");
}

awaitable<void> wait_into(background<int>& b, std::optional<result<int>>& out) { out = co_await b.wait(); }

}  // namespace

TEST_CASE("a background coroutine's result reaches a wait before or after its end", "[background]") {
  asio::io_context io;
  background<int> slow, quick;
  slow.start(io.get_executor(), answer_after(100ms, 7), "slow");
  quick.start(io.get_executor(), answer_after(0ms, 8), "quick");
  CHECK(slow.started());
  CHECK_FALSE(slow.done());
  io.run_for(50ms);
  CHECK(quick.done());
  CHECK_FALSE(slow.done());
  std::optional<result<int>> a, b;
  asio::co_spawn(io, wait_into(slow, a), rethrow);   // waits for the end
  asio::co_spawn(io, wait_into(quick, b), rethrow);  // ended already
  io.restart();
  io.run_for(2s);
  REQUIRE(a.has_value());
  REQUIRE(b.has_value());
  REQUIRE(a->has_value());
  REQUIRE(b->has_value());
  CHECK(**a == 7);
  CHECK(**b == 8);
}

TEST_CASE("a background coroutine that throws ends with an internal error", "[background]") {
  asio::io_context io;
  background<int> b;
  b.start(io.get_executor(), throws_after_a_while(), "the thrower");
  std::optional<result<int>> out;
  asio::co_spawn(io, wait_into(b, out), rethrow);
  io.run_for(2s);
  REQUIRE(out.has_value());
  REQUIRE_FALSE(out->has_value());
  CHECK(out->error().code == errc::internal);
  CHECK_THAT(out->error().message, Catch::Contains("the thrower crashed: bad things"));
}

TEST_CASE("waiting for a background never started ends at once", "[background]") {
  asio::io_context io;
  background<int> b;
  std::optional<result<int>> out;
  asio::co_spawn(io, wait_into(b, out), rethrow);
  io.run_for(1s);
  REQUIRE(out.has_value());
  REQUIRE_FALSE(out->has_value());
  CHECK(out->error().code == errc::internal);
}
