// The Asio vocabulary shared by the daemon's modules. The daemon runs one
// I/O thread (so a connection's or a session's coroutine needs no strand of
// its own) and a small thread pool for blocking work: child processes
// (runc, criu), hashing and compression. See docs/design.md, "Threads".
#pragma once

#include <utility>  // boost 1.74's awaitable.hpp uses std::exchange without it

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/this_coro.hpp>

namespace migrated {

namespace asio = boost::asio;
using asio::awaitable;
using asio::use_awaitable;
using tcp = asio::ip::tcp;
using udp = asio::ip::udp;

// Runs `fn` (a plain function returning T) on the pool and resumes the
// caller on its own executor with the value. The caller awaits at once, so
// `fn` captures by reference: g++ 12 destroys a temporary with a
// non-trivial destructor twice when it spans a co_await (a lambda holding a
// path by value, say), and a closure of references has none. offload is
// not a coroutine itself, for the same compiler's sake (by-value coroutine
// parameters moved into captures are freed twice).
template <class Fn>
auto offload(asio::thread_pool& pool, Fn fn) -> awaitable<decltype(fn())> {
  return asio::co_spawn(
      pool, [fn = std::move(fn)]() mutable -> awaitable<decltype(fn())> { co_return fn(); },
      use_awaitable);
}

}  // namespace migrated
