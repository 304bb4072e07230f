// Deadlines come from a beast::basic_stream over the unix socket, as for the
// peer link: expires_after before each read and write.
#include "pages/lazy_pages_server.hpp"

#include <array>

#include <boost/asio/write.hpp>
#include <boost/beast/core/basic_stream.hpp>
#include <boost/beast/core/error.hpp>

namespace migrated::pages {
namespace {

namespace beast = boost::beast;
using unix_stream = beast::basic_stream<asio::local::stream_protocol, asio::any_io_executor, beast::unlimited_rate_policy>;

std::unexpected<error> socket_error(const boost::system::error_code& ec, const char* what) {
  if (ec == beast::error::timeout) return fail(errc::timeout, std::string(what) + ": lazy-pages went silent");
  if (ec == asio::error::eof) return fail(errc::peer, std::string(what) + ": lazy-pages closed the connection");
  return fail(errc::io, std::string(what) + ": " + ec.message());
}

}  // namespace

awaitable<result<serve_stats>> serve_lazy_pages(asio::local::stream_protocol::socket& socket, page_source& source,
                                                std::chrono::milliseconds idle) {
  unix_stream stream(std::move(socket));
  request_reader reader;
  serve_stats stats;
  std::array<std::uint8_t, 4096> in{};
  std::vector<std::uint8_t> data;
  boost::system::error_code ec;
  for (;;) {
    while (auto next = reader.next()) {
      if (!*next) co_return std::unexpected(next->error().context("lazy-pages"));
      const page_request r = **next;
      if (r.close) {
        const std::int32_t status = 0;  // "all received"; lazy-pages then hangs up
        stream.expires_after(idle);
        co_await asio::async_write(stream, asio::buffer(&status, sizeof status), asio::redirect_error(use_awaitable, ec));
        if (ec) co_return socket_error(ec, "answer lazy-pages' close");
        co_return stats;
      }
      auto n = co_await source.pages(r, data);
      if (!n) co_return std::unexpected(n.error());
      if (*n == 0 || *n > r.pages || data.size() != std::size_t(*n) * page_size)
        co_return fail(errc::internal, "pages " + hex(r.vaddr) + " of task " + std::to_string(r.pid) +
                                           ": the source gave " + std::to_string(*n) + " of " +
                                           std::to_string(r.pages));
      const auto header = encode_answer(r, *n);
      const std::array<asio::const_buffer, 2> answer{asio::buffer(header), asio::buffer(data)};
      stream.expires_after(idle);
      co_await asio::async_write(stream, answer, asio::redirect_error(use_awaitable, ec));
      if (ec) co_return socket_error(ec, "send pages to lazy-pages");
      ++stats.requests;
      stats.pages += *n;
      if (*n < r.pages) ++stats.short_answers;
    }
    stream.expires_after(idle);
    const std::size_t got = co_await stream.async_read_some(asio::buffer(in), asio::redirect_error(use_awaitable, ec));
    if (ec) co_return socket_error(ec, "read from lazy-pages");
    reader.feed(std::span<const std::uint8_t>(in.data(), got));
  }
}

}  // namespace migrated::pages
