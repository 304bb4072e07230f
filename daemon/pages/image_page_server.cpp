// The lazy-pages loop is serve_lazy_pages(); this file reads the pages.
#include "pages/image_page_server.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/hash.hpp"
#include "pages/page_server_protocol.hpp"

namespace migrated::pages {

result<image_page_server> image_page_server::open(const std::filesystem::path& dir) {
  auto sets = images::read_all_page_sets(dir);
  if (!sets) return std::unexpected(sets.error().context("page server for " + dir.string()));
  image_page_server server;
  for (auto& set : *sets) {
    const auto pid = images::task_of_pagemap(set.pagemap_name);
    if (!pid) continue;
    auto fd = open_readonly(dir / set.pages_name);
    if (!fd) return std::unexpected(fd.error().context("page server for " + dir.string()));
    server.tasks_.emplace(*pid, task{std::move(set), std::make_shared<unique_fd>(std::move(*fd))});
  }
  if (server.tasks_.empty()) return fail(errc::protocol, "page server for " + dir.string() + ": no task's pagemap");
  return server;
}

// `n` stored pages from index `first` of the task's pages file.
result<void> image_page_server::read_stored(const task& t, std::uint64_t first, std::uint8_t* to, std::uint32_t n) {
  const std::size_t len = std::size_t(n) * page_size;
  const off_t at = static_cast<off_t>(first * page_size);
  std::size_t done = 0;
  while (done < len) {
    const ssize_t r = ::pread(t.pages->get(), to + done, len - done, at + off_t(done));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0)
      return fail(errc::io, "read " + t.set.pages_name + ": " + (r < 0 ? std::strerror(errno) : "shorter than its pagemap"));
    done += std::size_t(r);
  }
  return {};
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
  if (auto ok = read_stored(t->second, *first, out.data(), n); !ok) return std::unexpected(ok.error());
  return n;
}

result<void> image_page_server::read_base(std::uint64_t pid, std::uint64_t vaddr, std::uint32_t pages,
                                          transport::page_base& out) const {
  out.bytes.assign(std::size_t(pages) * page_size, 0);
  out.hashes.assign(pages, 0);
  const auto t = tasks_.find(pid);
  if (t == tasks_.end()) return {};  // a task the round did not have
  const images::page_set& set = t->second.set;
  std::uint32_t i = 0;
  while (i < pages) {
    const auto first = set.find(vaddr + std::uint64_t(i) * page_size);
    if (!first) {
      ++i;
      continue;
    }
    std::uint32_t n = 1;  // the run stored contiguously from page i
    while (i + n < pages) {
      const auto next = set.find(vaddr + std::uint64_t(i + n) * page_size);
      if (!next || *next != *first + n) break;
      ++n;
    }
    std::uint8_t* to = out.bytes.data() + std::size_t(i) * page_size;
    if (auto ok = read_stored(t->second, *first, to, n); !ok) return ok;
    for (std::uint32_t k = 0; k < n; ++k)
      out.hashes[i + k] = xxh3_64({to + std::size_t(k) * page_size, page_size});
    i += n;
  }
  return {};
}

namespace {

// The images as a page source: each read on the pool, so a disk read never
// stalls the I/O thread.
class from_images final : public page_source {
 public:
  from_images(const image_page_server& server, asio::thread_pool& pool) : server_(server), pool_(pool) {}
  awaitable<result<std::uint32_t>> pages(const page_request& r, std::vector<std::uint8_t>& out) override {
    co_return co_await offload(pool_, [&] { return server_.read_pages(r.pid, r.vaddr, r.pages, out); });
  }

 private:
  const image_page_server& server_;
  asio::thread_pool& pool_;
};

}  // namespace

awaitable<result<serve_stats>> image_page_server::serve(asio::local::stream_protocol::socket& socket,
                                                        asio::thread_pool& pool, std::chrono::milliseconds idle) {
  from_images source(*this, pool);
  co_return co_await serve_lazy_pages(socket, source, idle);
}

}  // namespace migrated::pages
