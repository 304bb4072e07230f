#include "transport/turns.hpp"

namespace migrated::transport {

awaitable<void> turns::acquire(bool urgent) {
  if (!busy_) {
    busy_ = true;
    co_return;
  }
  auto wake = std::make_shared<asio::steady_timer>(co_await asio::this_coro::executor,
                                                   asio::steady_timer::time_point::max());
  (urgent ? urgent_ : others_).push_back(wake);
  boost::system::error_code ec;  // operation_aborted: release() handed us the turn
  co_await wake->async_wait(asio::redirect_error(use_awaitable, ec));
}

void turns::release() {
  for (auto* queue : {&urgent_, &others_}) {
    if (queue->empty()) continue;
    auto next = queue->front();
    queue->pop_front();
    next->cancel();  // busy_ stays set: the turn passes to it
    return;
  }
  busy_ = false;
}

}  // namespace migrated::transport
