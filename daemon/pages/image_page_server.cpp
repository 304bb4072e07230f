// Deadlines come from a beast::basic_stream over the unix socket, as for the
// peer link: expires_after before each read and write.
#include "pages/image_page_server.hpp"

#include <unistd.h>

#include <array>
#include <cerrno>
#include <charconv>
#include <cstring>

#include <boost/asio/write.hpp>
#include <boost/beast/core/basic_stream.hpp>
#include <boost/beast/core/error.hpp>

#include "pages/page_server_protocol.hpp"

namespace migrated::pages {
namespace {

namespace beast = boost::beast;
using unix_stream = beast::basic_stream<asio::local::stream_protocol, asio::any_io_executor, beast::unlimited_rate_policy>;

// "pagemap-<pid>.img" → pid; shared memory's pagemaps (pagemap-shmem-*) are not a task's.
std::optional<std::uint64_t> pid_of(const std::string& pagemap_name) {
  constexpr std::string_view prefix = "pagemap-", suffix = ".img";
  if (!pagemap_name.starts_with(prefix) || !pagemap_name.ends_with(suffix)) return std::nullopt;
  const std::string_view digits(pagemap_name.data() + prefix.size(),
                                pagemap_name.size() - prefix.size() - suffix.size());
  std::uint64_t pid = 0;
  const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), pid);
  if (ec != std::errc{} || end != digits.data() + digits.size() || pid == 0) return std::nullopt;
  return pid;
}

std::unexpected<error> socket_error(const boost::system::error_code& ec, const char* what) {
  if (ec == beast::error::timeout) return fail(errc::timeout, std::string(what) + ": lazy-pages went silent");
  if (ec == asio::error::eof) return fail(errc::peer, std::string(what) + ": lazy-pages closed the connection");
  return fail(errc::io, std::string(what) + ": " + ec.message());
}

}  // namespace

result<image_page_server> image_page_server::open(const std::filesystem::path& dir) {
  auto sets = images::read_all_page_sets(dir);
  if (!sets) return std::unexpected(sets.error().context("page server for " + dir.string()));
  image_page_server server;
  for (auto& set : *sets) {
    const auto pid = pid_of(set.pagemap_name);
    if (!pid) continue;
    auto fd = open_readonly(dir / set.pages_name);
    if (!fd) return std::unexpected(fd.error().context("page server for " + dir.string()));
    server.tasks_.emplace(*pid, task{std::move(set), std::make_shared<unique_fd>(std::move(*fd))});
  }
  if (server.tasks_.empty()) return fail(errc::protocol, "page server for " + dir.string() + ": no task's pagemap");
  return server;
}

result<std::uint32_t> image_page_server::read_pages(std::uint64_t pid, std::uint64_t vaddr, std::uint32_t asked,
                                                    std::vector<std::uint8_t>& out) const {
  const auto t = tasks_.find(pid);
  if (t == tasks_.end()) return fail(errc::protocol, "pages of task " + std::to_string(pid) + ": not in the images");
  const images::page_set& set = t->second.set;
  const auto first = set.find(vaddr);
  if (!first)
    return fail(errc::protocol, "page " + hex(vaddr) + " of task " + std::to_string(pid) + ": not in the images");
  std::uint32_t n = 1;
  while (n < asked) {
    const auto next = set.find(vaddr + std::uint64_t(n) * page_size);
    if (!next || *next != *first + n) break;
    ++n;
  }
  out.resize(std::size_t(n) * page_size);
  const off_t at = static_cast<off_t>(*first * page_size);
  std::size_t done = 0;
  while (done < out.size()) {
    const ssize_t r = ::pread(t->second.pages->get(), out.data() + done, out.size() - done, at + off_t(done));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0)
      return fail(errc::io, "read " + set.pages_name + ": " + (r < 0 ? std::strerror(errno) : "shorter than its pagemap"));
    done += std::size_t(r);
  }
  return n;
}

awaitable<result<serve_stats>> image_page_server::serve(asio::local::stream_protocol::socket& socket,
                                                        asio::thread_pool& pool, std::chrono::milliseconds idle) {
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
      // The pages file is read on the pool: a disk read never stalls the I/O thread.
      auto n = co_await offload(pool, [&] { return read_pages(r.pid, r.vaddr, r.pages, data); });
      if (!n) co_return std::unexpected(n.error());
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
