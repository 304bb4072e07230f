// See chunk_pipe.hpp. The timer is only touched on the I/O thread: the
// producer posts the wake-up there.
#include "transport/chunk_pipe.hpp"

namespace migrated::transport {

chunk_pipe::chunk_pipe(asio::any_io_executor io, std::size_t max_chunks)
    : io_(io), timer_(io, asio::steady_timer::time_point::max()), max_chunks_(max_chunks) {}

void chunk_pipe::wake() {
  asio::post(io_, [self = shared_from_this()] { self->timer_.cancel(); });
}

bool chunk_pipe::push(pipe_chunk chunk) {
  {
    std::unique_lock lock(mutex_);
    space_.wait(lock, [&] { return cancelled_ || queue_.size() < max_chunks_; });
    if (cancelled_) return false;
    queue_.push_back(std::move(chunk));
  }
  wake();
  return true;
}

void chunk_pipe::finish(result<std::string> outcome) {
  {
    std::lock_guard lock(mutex_);
    outcome_ = std::move(outcome);
    finished_ = true;
  }
  wake();
}

void chunk_pipe::cancel() {
  {
    std::lock_guard lock(mutex_);
    cancelled_ = true;
  }
  space_.notify_all();
}

awaitable<std::optional<pipe_chunk>> chunk_pipe::pop() {
  for (;;) {
    {
      std::lock_guard lock(mutex_);
      if (!queue_.empty()) {
        pipe_chunk c = std::move(queue_.front());
        queue_.pop_front();
        space_.notify_one();
        co_return c;
      }
      if (finished_) co_return std::nullopt;
      timer_.expires_at(asio::steady_timer::time_point::max());
    }
    boost::system::error_code ec;
    co_await timer_.async_wait(asio::redirect_error(use_awaitable, ec));
  }
}

}  // namespace migrated::transport
