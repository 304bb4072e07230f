// How many migrations this node runs as their source at once
// (max_concurrent_migrations). A migration beyond the limit waits, in phase
// "queued", first come first served, until one ends; an abort or a daemon
// stopping takes it out of the queue. Only the I/O thread touches it.
#pragma once

#include <deque>
#include <memory>
#include <string>

#include "asio.hpp"

namespace migrated::migration {

class admission {
 public:
  admission(asio::any_io_executor ex, std::size_t slots) : ex_(std::move(ex)), free_(slots) {}

  // A slot held until it is destroyed.
  class ticket {
   public:
    ticket() = default;
    explicit ticket(admission* a) : a_(a) {}
    ticket(ticket&& o) noexcept : a_(std::exchange(o.a_, nullptr)) {}
    ticket& operator=(ticket&& o) noexcept {
      if (this != &o) {
        reset();
        a_ = std::exchange(o.a_, nullptr);
      }
      return *this;
    }
    ~ticket() { reset(); }
    explicit operator bool() const { return a_ != nullptr; }
    void reset() {
      if (a_) std::exchange(a_, nullptr)->release();
    }

   private:
    admission* a_ = nullptr;
  };

  // True when a slot is free now (no need to say "queued").
  bool available() const { return free_ > 0 && queue_.empty(); }
  std::size_t waiting() const { return queue_.size(); }

  // Waits for a slot; an empty ticket when withdraw(id) took `id` out of the queue.
  awaitable<ticket> acquire(const std::string& id) {
    if (available()) {
      --free_;
      co_return ticket(this);
    }
    auto w = std::make_shared<waiter>(id, ex_);
    queue_.push_back(w);
    boost::system::error_code ec;
    co_await w->wake.async_wait(asio::redirect_error(use_awaitable, ec));
    co_return w->granted ? ticket(this) : ticket();
  }

  // Takes a queued migration out of the queue; false when it is not queued.
  bool withdraw(const std::string& id) {
    for (auto it = queue_.begin(); it != queue_.end(); ++it) {
      if ((*it)->id != id) continue;
      auto w = *it;
      queue_.erase(it);
      w->wake.cancel();
      return true;
    }
    return false;
  }

 private:
  struct waiter {
    waiter(std::string i, const asio::any_io_executor& ex)
        : id(std::move(i)), wake(ex, asio::steady_timer::time_point::max()) {}
    std::string id;
    asio::steady_timer wake;
    bool granted = false;
  };

  void release() {
    if (queue_.empty()) {
      ++free_;
      return;
    }
    auto w = queue_.front();
    queue_.pop_front();
    w->granted = true;  // the slot passes straight to it
    w->wake.cancel();
  }

  asio::any_io_executor ex_;
  std::size_t free_;
  std::deque<std::shared_ptr<waiter>> queue_;
};

}  // namespace migrated::migration
