// serve_images DIR FD: answers `criu lazy-pages --page-server --ps-socket`
// on the connected unix socket FD from the CRIU images in DIR, with the
// daemon's own page server (daemon/pages/image_page_server), until
// lazy-pages sends CLOSE; then prints "requests N pages N short N" and
// exits 0. Any error is printed and exits 1. For the integration tests.
#include <charconv>
#include <cstdio>
#include <cstring>
#include <optional>

#include "pages/image_page_server.hpp"

using namespace migrated;

namespace {

awaitable<void> run(pages::image_page_server& server, asio::local::stream_protocol::socket& socket,
                    asio::thread_pool& pool, std::optional<result<pages::serve_stats>>& out) {
  out = co_await server.serve(socket, pool, std::chrono::seconds(60));
}

}  // namespace

int main(int argc, char** argv) {
  int fd = -1;
  if (argc != 3 || std::from_chars(argv[2], argv[2] + std::strlen(argv[2]), fd).ec != std::errc{} || fd < 0) {
    std::fprintf(stderr, "usage: serve_images DIR FD\n");
    return 2;
  }
  auto server = pages::image_page_server::open(argv[1]);
  if (!server) {
    std::fprintf(stderr, "serve_images: %s\n", server.error().message.c_str());
    return 1;
  }
  asio::io_context io;
  asio::thread_pool pool(1);
  asio::local::stream_protocol::socket socket(io, asio::local::stream_protocol(), fd);
  std::optional<result<pages::serve_stats>> out;
  asio::co_spawn(io, run(*server, socket, pool, out), asio::detached);
  io.run();
  pool.join();
  if (!out || !*out) {
    std::fprintf(stderr, "serve_images: %s\n", out ? (*out).error().message.c_str() : "ended without a result");
    return 1;
  }
  std::printf("requests %llu pages %llu short %llu\n", static_cast<unsigned long long>((*out)->requests),
              static_cast<unsigned long long>((*out)->pages), static_cast<unsigned long long>((*out)->short_answers));
  return 0;
}
