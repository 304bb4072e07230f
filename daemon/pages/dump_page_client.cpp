// Deadlines as for the page server: a beast::basic_stream over the unix
// socket, expires_after before each exchange.
#include "pages/dump_page_client.hpp"

#include <algorithm>
#include <array>

#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/error.hpp>

namespace migrated::pages {
namespace {

namespace beast = boost::beast;

constexpr std::uint32_t pe_lazy = 2;

std::unexpected<error> socket_error(const boost::system::error_code& ec, const std::string& what) {
  if (ec == beast::error::timeout) return fail(errc::timeout, what + ": the dump's page server did not answer in time");
  if (ec == asio::error::eof || ec == asio::error::connection_reset || ec == asio::error::broken_pipe)
    return fail(errc::peer, what + ": the dump's page server hung up");
  return fail(errc::io, what + ": " + ec.message());
}

}  // namespace

result<held_runs> lazy_runs(const std::filesystem::path& dir) {
  auto sets = images::read_all_page_sets(dir);
  if (!sets) return std::unexpected(sets.error().context("lazy pages of " + dir.string()));
  held_runs held;
  for (const auto& set : *sets) {
    const auto pid = images::task_of_pagemap(set.pagemap_name);
    if (!pid) continue;
    auto& runs = held[*pid];
    for (const auto& run : set.runs)
      if ((run.flags & pe_lazy) != 0 && (run.flags & pe_present) == 0) runs.push_back(run);
  }
  return held;
}

dump_page_client::dump_page_client(asio::local::stream_protocol::socket socket, held_runs held,
                                   std::chrono::milliseconds answer_deadline)
    : stream_(std::move(socket)), held_(std::move(held)), answer_deadline_(answer_deadline) {}

std::uint32_t dump_page_client::available(std::uint64_t pid, std::uint64_t vaddr) const {
  const auto task = held_.find(pid);
  if (task == held_.end() || vaddr % page_size != 0) return 0;
  const auto& runs = task->second;
  // The last run starting at or below vaddr.
  auto it = std::upper_bound(runs.begin(), runs.end(), vaddr,
                             [](std::uint64_t v, const images::page_run& r) { return v < r.vaddr; });
  if (it == runs.begin()) return 0;
  --it;
  std::uint64_t end = it->vaddr + std::uint64_t(it->nr_pages) * page_size;
  if (vaddr >= end) return 0;
  // CRIU clamps an answer at the end of its own run; adjacent runs are asked on.
  for (auto next = it + 1; next != runs.end() && next->vaddr == end; ++next)
    end += std::uint64_t(next->nr_pages) * page_size;
  return std::uint32_t(std::min<std::uint64_t>((end - vaddr) / page_size, max_request_pages));
}

awaitable<result<std::uint32_t>> dump_page_client::get(std::uint64_t pid, std::uint64_t vaddr, std::uint32_t pages,
                                                       std::vector<std::uint8_t>& out,
                                                       std::chrono::milliseconds deadline, priority p) {
  const std::string what = "pages " + hex(vaddr) + " of task " + std::to_string(pid);
  const std::uint32_t most = available(pid, vaddr);
  if (most == 0) co_return fail(errc::protocol, what + ": not lazy memory of the dump");
  if (pages == 0) co_return fail(errc::internal, what + ": no pages asked");
  const page_request asked{.pid = pid, .vaddr = vaddr, .pages = std::min(pages, most)};
  const auto request = encode_request(asked);

  co_await turns_.acquire(p == priority::fault);
  const transport::turns::guard mine{turns_};
  boost::system::error_code ec;
  std::array<std::uint8_t, iov_bytes> header{};
  stream_.expires_after(deadline);
  co_await asio::async_write(stream_, asio::buffer(request), asio::redirect_error(use_awaitable, ec));
  if (!ec) co_await asio::async_read(stream_, asio::buffer(header), asio::redirect_error(use_awaitable, ec));
  result<std::uint32_t> n = fail(errc::internal, what);
  if (!ec) {
    n = parse_answer(std::span<const std::uint8_t, iov_bytes>(header), asked);
    if (n) {
      out.resize(std::size_t(*n) * page_size);
      co_await asio::async_read(stream_, asio::buffer(out), asio::redirect_error(use_awaitable, ec));
    }
  }
  if (ec) co_return socket_error(ec, what);
  if (!n) co_return std::unexpected(n.error().context(what));
  co_return *n;
}

awaitable<result<std::uint32_t>> dump_page_client::pages(const page_request& r, std::vector<std::uint8_t>& out) {
  co_return co_await get(r.pid, r.vaddr, r.pages, out, answer_deadline_);
}

awaitable<result<std::uint32_t>> dump_page_client::provide(std::uint64_t pid, std::uint64_t vaddr, std::uint32_t pages,
                                                           std::vector<std::uint8_t>& out, bool urgent) {
  co_return co_await get(pid, vaddr, pages, out, answer_deadline_, urgent ? priority::fault : priority::background);
}

void dump_page_client::abandon() {
  boost::system::error_code ignored;
  stream_.socket().shutdown(asio::socket_base::shutdown_both, ignored);
  stream_.close();
}

awaitable<result<void>> dump_page_client::close(std::chrono::milliseconds deadline) {
  const auto request = encode_request(page_request{.close = true});
  co_await turns_.acquire(false);
  const transport::turns::guard mine{turns_};
  boost::system::error_code ec;
  std::int32_t status = -1;
  stream_.expires_after(deadline);
  co_await asio::async_write(stream_, asio::buffer(request), asio::redirect_error(use_awaitable, ec));
  if (!ec) co_await asio::async_read(stream_, asio::buffer(&status, sizeof status), asio::redirect_error(use_awaitable, ec));
  if (ec) co_return socket_error(ec, "close the page transfer");
  if (status != 0)
    co_return fail(errc::criu, "close the page transfer: the dump's page server answered " + std::to_string(status));
  co_return result<void>{};
}

}  // namespace migrated::pages
