// CRIU's memory images as migrated sees them. For each process CRIU writes
// pagemap-<pid>.img (a protobuf image: a PagemapHead naming the pages file,
// then PagemapEntry runs {vaddr, nr_pages, flags}) and pages-<id>.img (the
// raw 4 KiB pages of the present runs, in pagemap order). A page_set is the
// pagemap read into memory with each page's offset in the pages file, so a
// page can be found by virtual address — deltas are keyed by vaddr, not by
// file offset, so a mapping added or grown between dumps does not shift
// everything after it.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "common/error.hpp"

namespace migrated::images {

constexpr std::uint32_t page_bytes = 4096;

struct page_run {
  std::uint64_t vaddr = 0;     // page aligned
  std::uint32_t nr_pages = 0;
  std::uint32_t flags = 0;     // CRIU PE_* flags as read
  bool has_data = true;        // pages of this run are stored in the pages file
  std::uint64_t first_page = 0;  // index of its first stored page in the pages file (when has_data)
};

struct page_set {
  std::string pagemap_name;    // "pagemap-1.img"
  std::string pages_name;      // "pages-<pages_id>.img"
  std::vector<page_run> runs;  // in pagemap order (ascending vaddr)
  std::uint64_t stored_pages = 0;  // pages in the pages file

  // Index in the pages file of the page at vaddr, if it is stored.
  std::optional<std::uint64_t> find(std::uint64_t vaddr) const;
  // vaddr of the stored page with the given index (0 <= index < stored_pages).
  std::uint64_t vaddr_of(std::uint64_t index) const;
  // Same stored pages at the same vaddrs in the same order, i.e. the same
  // runs with data once adjacent ones are merged (CRIU cuts long runs at
  // points that move between dumps), so page i of both files is one vaddr.
  bool same_layout(const page_set& other) const;
};

// Reads dir/pagemap_name. errc::protocol for a file that is not a CRIU
// pagemap image (bad magic, truncated entry, run not page aligned, runs
// overlapping or out of order).
result<page_set> read_page_set(const std::filesystem::path& dir, const std::string& pagemap_name);

// Every pagemap-*.img in dir, sorted by name.
result<std::vector<page_set>> read_all_page_sets(const std::filesystem::path& dir);

// The task whose pagemap this is: "pagemap-<pid>.img" → pid; nothing for
// other names (shared memory's pagemap-shmem-*).
std::optional<std::uint64_t> task_of_pagemap(const std::string& name);

// true for the file names of page data ("pages-*.img"), which travel as deltas.
bool is_pages_file(const std::string& name);

}  // namespace migrated::images
