// Which pages the source pushes next during post-copy, in the background
// of the faults: the process is likely to touch next what lies just after
// what it touched last, so pushing goes on from the page after the latest
// fault, run by run, and wraps around until every page is pushed or
// delivered. A page is skipped when `done` says the destination already
// has it (it was pushed, or fetched for a fault).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

#include "pages/dump_page_client.hpp"

namespace migrated::pages {

class push_order {
 public:
  explicit push_order(const held_runs& runs);

  // The process faulted at this page: pushing continues after it.
  void fault_at(std::uint64_t pid, std::uint64_t vaddr);

  // The next pages to push: at most `max_pages` contiguous ones of one run
  // that `done` does not claim, from the cursor on; nothing when every
  // page is done. Moves the cursor past them.
  using done_fn = std::function<bool(std::uint64_t pid, std::uint64_t vaddr)>;
  std::optional<page_request> next(std::uint32_t max_pages, const done_fn& done);

  std::uint64_t total_pages() const { return total_; }

 private:
  struct range {
    std::uint64_t pid, vaddr;
    std::uint32_t pages;
  };
  std::vector<range> ranges_;  // by pid, then address
  std::size_t at_ = 0;         // the cursor: ranges_[at_], page offset_
  std::uint32_t offset_ = 0;
  std::uint64_t total_ = 0;
};

}  // namespace migrated::pages
