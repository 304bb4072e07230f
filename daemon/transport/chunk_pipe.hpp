// A bounded pipe of chunks from a producer on the thread pool (an encoder
// that cannot wait on sockets) to a consumer coroutine on the I/O thread
// (the sender), so producing and sending overlap. The producer blocks when
// max_chunks are queued (back-pressure: memory stays bounded whatever the
// image size); the consumer waits on a timer the producer cancels. Either
// side can end it: the producer with its outcome, the consumer by cancel()
// (the producer's next push returns false and it stops).
#pragma once

#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "asio.hpp"
#include "common/error.hpp"

namespace migrated::transport {

struct pipe_chunk {
  std::vector<std::uint8_t> wire;
  std::uint32_t raw_bytes = 0;
  bool compressed = false;
};

class chunk_pipe : public std::enable_shared_from_this<chunk_pipe> {
 public:
  chunk_pipe(asio::any_io_executor io, std::size_t max_chunks);

  // Producer (pool thread). push blocks while full; false once cancelled.
  bool push(pipe_chunk chunk);
  // The producer's result: its end tag (e.g. a digest) or its error.
  void finish(result<std::string> outcome);

  // Consumer (I/O thread): the next chunk, or nullopt once finished.
  awaitable<std::optional<pipe_chunk>> pop();
  void cancel();
  // Valid after pop() returned nullopt.
  const result<std::string>& outcome() const { return outcome_; }

 private:
  void wake();

  asio::any_io_executor io_;
  asio::steady_timer timer_;
  std::size_t max_chunks_;
  std::mutex mutex_;
  std::condition_variable space_;
  std::deque<pipe_chunk> queue_;
  bool finished_ = false;
  bool cancelled_ = false;
  result<std::string> outcome_ = std::string();
};

}  // namespace migrated::transport
