// Reading CRIU pagemaps into page_sets.
//
// pagemap-<id>.img (criu/include/magic.h; its messages in
// proto/criu_images.proto) is a CRIU image with PAGEMAP_MAGIC: its first
// entry is a PagemapHead naming pages-<pages_id>.img; every further entry is
// one run, a PagemapEntry (vaddr, its length in nr_pages — in
// compat_nr_pages before CRIU moved it to a 64-bit field —, in_parent, flags)
// with flags PE_PARENT = 1 (pages are in the parent dump's images),
// PE_LAZY = 2 (may be served lazily) and PE_PRESENT = 4 (pages are in this
// dump's pages file, in pagemap order). A run has data in the pages file
// exactly when PE_PRESENT is set: CRIU 4.1 writes 4 for file-backed and 6
// for anonymous private memory; per CRIU's sources, a --lazy-pages dump
// marks the pages it leaves out 2 and a dump on top of a pre-dump marks
// pages left in the parent 1. Entries from
// before the flags field carry in_parent instead (set: PE_PARENT, else
// PE_PRESENT), which CRIU itself still accepts.
//
// The file is read whole: pagemaps are small, one entry of ~10 bytes per run.
// Runs are not maximal: CRIU also cuts a run where a page pipe buffer (256
// pages) fills, and these cuts move between dumps — see same_layout.
#include "images/page_set.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <limits>
#include <stdexcept>
#include <system_error>

#include "images/criu_image.hpp"

namespace migrated::images {
namespace {

constexpr std::uint32_t pe_parent = 1 << 0;
constexpr std::uint32_t pe_present = 1 << 2;
constexpr std::uint64_t max_pagemap_bytes = std::uint64_t(256) << 20;  // ~16 M runs; larger is not a pagemap

result<page_run> parse_run(const criu::PagemapEntry& e, std::uint64_t min_vaddr) {
  // Newer CRIU writes the length in nr_pages and 0 in compat_nr_pages.
  const bool has_length = e.has_nr_pages() || e.has_compat_nr_pages();
  if (!e.has_vaddr() || !has_length) return fail(errc::protocol, "pagemap entry without vaddr or nr_pages");
  const std::uint64_t vaddr = e.vaddr();
  const std::uint64_t nr_pages = e.has_nr_pages() ? e.nr_pages() : e.compat_nr_pages();
  char where_buf[48];
  std::snprintf(where_buf, sizeof where_buf, "run at 0x%llx", static_cast<unsigned long long>(vaddr));
  const std::string where = where_buf;
  if (vaddr % page_bytes != 0) return fail(errc::protocol, where + " is not page aligned");
  if (nr_pages == 0 || nr_pages > std::numeric_limits<std::uint32_t>::max())
    return fail(errc::protocol, where + " has " + std::to_string(nr_pages) + " pages");
  if (nr_pages > (std::numeric_limits<std::uint64_t>::max() - vaddr) / page_bytes)
    return fail(errc::protocol, where + " runs past the end of the address space");
  if (vaddr < min_vaddr)
    return fail(errc::protocol, where + " overlaps or precedes the run before it");

  page_run run;
  run.vaddr = vaddr;
  run.nr_pages = std::uint32_t(nr_pages);
  const bool in_parent = e.in_parent();
  if (e.has_flags()) {
    run.flags = e.flags() | (in_parent ? pe_parent : 0);
  } else {
    run.flags = in_parent ? pe_parent : pe_present;
  }
  run.has_data = (run.flags & pe_present) != 0;
  return run;
}

result<page_set> parse_pagemap(std::span<const std::uint8_t> file, const std::string& name) {
  page_set set;
  set.pagemap_name = name;
  bool have_head = false;
  std::uint64_t next_vaddr = 0;  // end of the previous run
  auto on_entry = [&](std::span<const std::uint8_t> message) -> result<void> {
    if (!have_head) {
      auto head = criu_image::parse<criu::PagemapHead>(message, "pagemap head");
      if (!head) return std::unexpected(head.error());
      if (!head->has_pages_id()) return fail(errc::protocol, "pagemap head without a pages_id");
      set.pages_name = "pages-" + std::to_string(head->pages_id()) + ".img";
      have_head = true;
      return {};
    }
    auto entry = criu_image::parse<criu::PagemapEntry>(message, "pagemap entry");
    if (!entry) return std::unexpected(entry.error());
    auto run = parse_run(*entry, next_vaddr);
    if (!run) return std::unexpected(run.error());
    next_vaddr = run->vaddr + std::uint64_t(run->nr_pages) * page_bytes;
    run->first_page = set.stored_pages;
    if (run->has_data) set.stored_pages += run->nr_pages;
    set.runs.push_back(*run);
    return {};
  };
  if (auto r = criu_image::for_each_entry(file, criu_image::pagemap_magic, on_entry); !r)
    return std::unexpected(r.error());
  if (!have_head) return fail(errc::protocol, "pagemap without a head");
  return set;
}

}  // namespace

std::optional<std::uint64_t> page_set::find(std::uint64_t vaddr) const {
  if (vaddr % page_bytes != 0) return std::nullopt;
  auto after = std::upper_bound(runs.begin(), runs.end(), vaddr,
                                [](std::uint64_t v, const page_run& r) { return v < r.vaddr; });
  if (after == runs.begin()) return std::nullopt;
  const page_run& run = *std::prev(after);
  const std::uint64_t page = (vaddr - run.vaddr) / page_bytes;
  if (!run.has_data || page >= run.nr_pages) return std::nullopt;
  return run.first_page + page;
}

std::uint64_t page_set::vaddr_of(std::uint64_t index) const {
  // Runs without data share first_page with the next run, so the last run
  // whose first_page is <= index is the data run holding it.
  auto after = std::upper_bound(runs.begin(), runs.end(), index,
                                [](std::uint64_t i, const page_run& r) { return i < r.first_page; });
  while (after != runs.begin()) {
    const page_run& run = *--after;
    if (!run.has_data) continue;
    if (index - run.first_page < run.nr_pages) return run.vaddr + (index - run.first_page) * page_bytes;
    break;
  }
  throw std::out_of_range("page_set::vaddr_of: no stored page " + std::to_string(index));
}

bool page_set::same_layout(const page_set& other) const {
  // Compares the stored pages as extents (adjacent runs with data merged):
  // CRIU cuts runs where its page pipe buffers fill, and those cuts move
  // between dumps whenever any earlier run changes size.
  struct extent_reader {
    const std::vector<page_run>& runs;
    std::size_t i = 0;
    bool next(std::uint64_t& start, std::uint64_t& pages) {
      while (i < runs.size() && !runs[i].has_data) ++i;
      if (i == runs.size()) return false;
      start = runs[i].vaddr;
      pages = 0;
      while (i < runs.size() && runs[i].has_data && runs[i].vaddr == start + pages * page_bytes)
        pages += runs[i++].nr_pages;
      return true;
    }
  };
  if (stored_pages != other.stored_pages) return false;
  extent_reader a{runs}, b{other.runs};
  for (;;) {
    std::uint64_t sa = 0, na = 0, sb = 0, nb = 0;
    const bool more_a = a.next(sa, na), more_b = b.next(sb, nb);
    if (more_a != more_b) return false;
    if (!more_a) return true;
    if (sa != sb || na != nb) return false;
  }
}

result<page_set> read_page_set(const std::filesystem::path& dir, const std::string& pagemap_name) {
  const auto file = dir / pagemap_name;
  auto data = criu_image::read_file(file, max_pagemap_bytes);
  if (!data) return std::unexpected(data.error());
  return with_context(parse_pagemap(*data, pagemap_name), file.string());
}

result<std::vector<page_set>> read_all_page_sets(const std::filesystem::path& dir) {
  std::vector<std::string> names;
  std::error_code ec;
  for (std::filesystem::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.starts_with("pagemap-") && name.ends_with(".img")) names.push_back(name);
  }
  if (ec) return fail_errno(ec.value(), "list " + dir.string());
  std::sort(names.begin(), names.end());
  std::vector<page_set> sets;
  sets.reserve(names.size());
  for (const auto& name : names) {
    auto set = read_page_set(dir, name);
    if (!set) return std::unexpected(set.error());
    sets.push_back(std::move(*set));
  }
  return sets;
}

std::optional<std::uint64_t> task_of_pagemap(const std::string& name) {
  constexpr std::string_view prefix = "pagemap-", suffix = ".img";
  if (!name.starts_with(prefix) || !name.ends_with(suffix)) return std::nullopt;
  const char* first = name.data() + prefix.size();
  const char* last = name.data() + name.size() - suffix.size();
  std::uint64_t pid = 0;
  const auto [end, ec] = std::from_chars(first, last, pid);
  if (ec != std::errc{} || end != last || pid == 0) return std::nullopt;
  return pid;
}

bool is_pages_file(const std::string& name) {
  return name.size() > 10 && name.starts_with("pages-") && name.ends_with(".img");
}

}  // namespace migrated::images
