// A coroutine started now and awaited later, for the steps of a session
// that run beside each other (post-copy: the dump serving pages while the
// images travel; lazy-pages, the page link and the restore at once).
// Boost 1.74 has no parallel group, so this is the small piece of it the
// daemon needs: start(), then wait() once the caller has nothing else to do.
//
// Whatever the coroutine refers to must outlive it: its owner waits for it
// before those go (wait() returns at once when it already ended). That
// includes its reference parameters: it starts only after start()
// returns, so a temporary bound to one (`f(options{})`) is already gone —
// pass members. A coroutine that throws ends with errc::internal, like a
// session that throws.
#pragma once

#include <exception>
#include <memory>
#include <optional>
#include <string>

#include "asio.hpp"
#include "common/error.hpp"

namespace migrated {

template <class T>
class background {
 public:
  background() = default;

  // Starts `work` on `ex`. One start per object.
  void start(asio::any_io_executor ex, awaitable<result<T>> work, std::string what) {
    auto s = std::make_shared<shared>(ex);
    state_ = s;
    asio::co_spawn(ex, std::move(work), [s, what = std::move(what)](std::exception_ptr e, result<T> r) {
      if (e) {
        try {
          std::rethrow_exception(e);
        } catch (const std::exception& ex) {
          r = fail(errc::internal, what + " crashed: " + ex.what());
        } catch (...) {
          r = fail(errc::internal, what + " crashed");
        }
      }
      s->value = std::move(r);
      s->ended.cancel();
    });
  }

  bool started() const { return state_ != nullptr; }
  bool done() const { return state_ && state_->value.has_value(); }

  // Its result (a copy), once it ended; a background never started ends at
  // once with errc::internal. One thread: nothing ends between the check and the wait.
  awaitable<result<T>> wait() {
    if (!state_) {
      state_ = std::make_shared<shared>(co_await asio::this_coro::executor);
      state_->value = fail(errc::internal, "never started");
    }
    auto s = state_;
    while (!s->value) {
      boost::system::error_code ec;
      co_await s->ended.async_wait(asio::redirect_error(use_awaitable, ec));
    }
    co_return *s->value;
  }

 private:
  struct shared {
    explicit shared(asio::any_io_executor ex) : ended(ex, asio::steady_timer::time_point::max()) {}
    asio::steady_timer ended;
    std::optional<result<T>> value;
  };
  std::shared_ptr<shared> state_;
};

}  // namespace migrated
