// The bytes a client sends before it has proved anything, as the daemon's
// TLS server takes them: the wait for a whole ClientHello
// (transport/tls.hpp), then the handshake through transport/tls_stream,
// over a real loopback TCP connection; the input, then the end of the
// connection. Invariant: the handshake fails (no bytes sent blind can
// carry a certificate of the fleet and a signature over this server's
// random values) with a message and one of the documented codes, and
// never hangs: every wait has a deadline of a few milliseconds.
#include <pthread.h>
#include <signal.h>

#include <cstdint>
#include <optional>

#include <boost/asio/detached.hpp>
#include <boost/asio/write.hpp>

#include "fleet.hpp"
#include "fuzz_support.hpp"
#include "transport/channel.hpp"
#include "transport/tls.hpp"

using namespace migrated;
using namespace std::chrono_literals;

namespace {

constexpr auto deadline = 30ms;

struct rig {
  asio::io_context io;
  tcp::acceptor acceptor{io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)};
  std::shared_ptr<transport::ssl::context> tls = [] {
    auto t = transport::make_tls_context(fuzzing::fleet_member("edge-a"));
    if (!t) std::abort();
    return *t;
  }();
};

rig& the_rig() {
  static rig r;
  return r;
}

awaitable<void> serve(tcp::socket& socket, const std::shared_ptr<transport::ssl::context>& tls,
                      std::optional<result<void>>& out) {
  auto hello = co_await transport::await_client_hello(socket, deadline);
  if (!hello) {
    out = hello;
    co_return;
  }
  transport::channel ch(std::move(socket), tls, deadline);
  out = co_await ch.secure(transport::channel::side::server, deadline);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  rig& r = the_rig();
  boost::system::error_code ec;
  // libFuzzer's timeout alarm (SIGALRM) would interrupt these blocking
  // calls (EINTR); it waits until they are done.
  sigset_t alarm, before;
  sigemptyset(&alarm);
  sigaddset(&alarm, SIGALRM);
  pthread_sigmask(SIG_BLOCK, &alarm, &before);
  tcp::socket client(r.io);
  client.connect(r.acceptor.local_endpoint(), ec);
  FUZZ_CHECK(!ec, ec.message());
  tcp::socket server = r.acceptor.accept(ec);
  FUZZ_CHECK(!ec, ec.message());
  asio::write(client, asio::buffer(data, size), ec);
  client.shutdown(tcp::socket::shutdown_send, ec);
  pthread_sigmask(SIG_SETMASK, &before, nullptr);
  std::optional<result<void>> out;
  asio::co_spawn(r.io, serve(server, r.tls, out), asio::detached);
  r.io.restart();
  r.io.run();
  FUZZ_CHECK(out.has_value());
  FUZZ_CHECK(!*out, "a handshake succeeded from bytes sent blind");
  FUZZ_CHECK(!out->error().message.empty());
  const auto c = out->error().code;
  FUZZ_CHECK(c == errc::auth || c == errc::peer || c == errc::protocol || c == errc::timeout || c == errc::io,
             out->error().message);
  return 0;
}
