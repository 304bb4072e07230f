// Turns at something only one coroutine may use at a time — a socket whose
// two ends speak in strict order, or one direction of a channel — where
// some users must not wait behind others: when the holder lets go, the
// first urgent waiter goes next, and the others only when none is waiting.
// An urgent user therefore waits at most for the one turn under way.
//
//   co_await t.acquire(urgent);
//   const transport::turns::guard mine{t};  // released however the coroutine leaves
//
// (One thread: no lock. A plain guard rather than one returned by the
// coroutine: g++ 12 mishandles non-trivial temporaries spanning co_await.)
#pragma once

#include <deque>
#include <memory>

#include "asio.hpp"

namespace migrated::transport {

class turns {
 public:
  awaitable<void> acquire(bool urgent);
  void release();
  bool busy() const { return busy_; }

  struct guard {
    explicit guard(turns& held) : t(held) {}
    turns& t;
    guard(const guard&) = delete;
    guard& operator=(const guard&) = delete;
    ~guard() { t.release(); }
  };

 private:
  bool busy_ = false;
  std::deque<std::shared_ptr<asio::steady_timer>> urgent_, others_;
};

}  // namespace migrated::transport
