#include "pages/push_order.hpp"

#include <algorithm>

namespace migrated::pages {

push_order::push_order(const held_runs& runs) {
  for (const auto& [pid, list] : runs)
    for (const auto& r : list) {
      if (r.nr_pages == 0) continue;
      ranges_.push_back({pid, r.vaddr, r.nr_pages});
      total_ += r.nr_pages;
    }
}

void push_order::fault_at(std::uint64_t pid, std::uint64_t vaddr) {
  const auto it = std::upper_bound(ranges_.begin(), ranges_.end(), std::pair{pid, vaddr},
                                   [](const auto& key, const range& r) {
                                     return key.first < r.pid || (key.first == r.pid && key.second < r.vaddr);
                                   });
  if (it == ranges_.begin()) return;
  const auto& r = *(it - 1);
  if (r.pid != pid || vaddr >= r.vaddr + std::uint64_t(r.pages) * page_size) return;  // not memory we push
  at_ = std::size_t(it - 1 - ranges_.begin());
  offset_ = std::uint32_t((vaddr - r.vaddr) / page_size) + 1;
}

std::optional<page_request> push_order::next(std::uint32_t max_pages, const done_fn& done) {
  if (ranges_.empty() || max_pages == 0) return std::nullopt;
  // At most one full round from the cursor: every page is looked at once.
  for (std::uint64_t looked = 0; looked <= total_;) {
    if (at_ >= ranges_.size()) {
      at_ = 0;
      offset_ = 0;
    }
    const range& r = ranges_[at_];
    if (offset_ >= r.pages) {
      ++at_;
      offset_ = 0;
      continue;
    }
    const std::uint64_t v = r.vaddr + std::uint64_t(offset_) * page_size;
    if (done(r.pid, v)) {
      ++offset_;
      ++looked;
      continue;
    }
    std::uint32_t n = 1;
    while (n < max_pages && offset_ + n < r.pages && !done(r.pid, v + std::uint64_t(n) * page_size)) ++n;
    offset_ += n;
    return page_request{.pid = r.pid, .vaddr = v, .pages = n};
  }
  return std::nullopt;
}

}  // namespace migrated::pages
