// A queue of frames for one connection, written by one coroutine (pump) —
// the single writer of that socket — and filled from callbacks that cannot
// wait (a session's progress). Closing it lets the pump finish after the
// last frame.
#pragma once

#include <deque>
#include <memory>

#include "transport/channel.hpp"

namespace migrated::server {

class outbox {
 public:
  explicit outbox(asio::any_io_executor ex) : wake_(ex, asio::steady_timer::time_point::max()) {}

  void push(pb::Envelope env) {
    queue_.push_back(std::move(env));
    wake_.cancel();
  }
  void close() {
    closed_ = true;
    wake_.cancel();
  }

  // Sends until closed and empty. Send errors (the controller went away)
  // stop the sending but not the draining: the producers never block.
  awaitable<void> pump(transport::channel& ch) {
    bool writable = true;
    for (;;) {
      while (!queue_.empty()) {
        pb::Envelope env = std::move(queue_.front());
        queue_.pop_front();
        if (writable) writable = (co_await ch.send(env)).has_value();
      }
      if (closed_) co_return;
      boost::system::error_code ec;
      wake_.expires_at(asio::steady_timer::time_point::max());
      co_await wake_.async_wait(asio::redirect_error(use_awaitable, ec));
    }
  }

 private:
  std::deque<pb::Envelope> queue_;
  asio::steady_timer wake_;
  bool closed_ = false;
};

}  // namespace migrated::server
