// A page server for `criu lazy-pages` that answers from CRIU images on
// disk: the destination's side of post-copy for the pages it already holds
// (a hybrid's last pre-copy round, pages pushed ahead). serve() runs
// serve_lazy_pages() on one connection — the daemon's end of the
// socketpair lazy-pages got as `--ps-socket` — with the images as its page
// source, until lazy-pages sends CLOSE: each GET is answered with the pages
// stored contiguously from the address asked for (lazy-pages asks again for
// the rest, so an answer may be shorter than the request), read from the
// pages file of the task's pagemap (images/page_set.hpp).
//
// read_base() serves a hybrid's pull instead: the copy of a range of pages
// that the last pre-copy round left here, with each page's hash, for the
// source to say which pages are still current (transport::page_base).
//
// A request for a task or an address the images do not hold is an error
// (errc::protocol): nothing can answer it, and the restored process would
// wait on that fault for ever; the caller ends the restore.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>

#include <boost/asio/local/stream_protocol.hpp>

#include "asio.hpp"
#include "common/error.hpp"
#include "common/unique_fd.hpp"
#include "images/page_set.hpp"
#include "pages/lazy_pages_server.hpp"
#include "transport/page_link.hpp"

namespace migrated::pages {

class image_page_server {
 public:
  // The pagemaps of every task in `dir` (pagemap-<pid>.img) and their pages files.
  static result<image_page_server> open(const std::filesystem::path& dir);

  // Serves one lazy-pages connection until its CLOSE, reading pages on
  // `pool`; every read waits at most `idle` for lazy-pages' next request.
  awaitable<result<serve_stats>> serve(asio::local::stream_protocol::socket& socket, asio::thread_pool& pool,
                                       std::chrono::milliseconds idle);

  std::size_t tasks() const { return tasks_.size(); }

  // The answer to one GET into `out`: how many pages (blocking: a pread).
  result<std::uint32_t> read_pages(std::uint64_t pid, std::uint64_t vaddr, std::uint32_t asked,
                                   std::vector<std::uint8_t>& out) const;

  // `pages` pages of task `pid` from `vaddr` on into `out`, hashed; a page
  // the images do not hold has hash 0 (blocking: preads).
  result<void> read_base(std::uint64_t pid, std::uint64_t vaddr, std::uint32_t pages, transport::page_base& out) const;

 private:
  struct task {
    images::page_set set;
    std::shared_ptr<unique_fd> pages;  // the pages file, opened once
  };
  static result<void> read_stored(const task& t, std::uint64_t first, std::uint8_t* to, std::uint32_t n);
  std::map<std::uint64_t, task> tasks_;
};

}  // namespace migrated::pages
