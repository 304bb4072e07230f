// The page-delta wire format, and the helpers its encoder (delta_encode.cpp)
// and decoder (delta_decode.cpp) share; delta.hpp says what deltas are for,
// this comment (and docs/images.md) says exactly how they are written.
//
// The op stream covers the current dump's stored pages in pages-file order,
// each page by exactly one op. Every number is ULEB128: 7 bits per byte,
// least significant first, high bit set on all but the last byte, at most
// 10 bytes, no value above 2^64-1 and no overlong form (a last byte of 0
// after the first). Ops:
//
//   0x01 SAME    n          n >= 1 pages, each equal to the previous dump's
//                           page at the same vaddr
//   0x02 ZERO    n          n >= 1 pages of zeros
//   0x03 REF     pfn        the previous dump's page at vaddr pfn * 4096
//   0x04 REF_CUR index      the current dump's page `index`, < this page's
//   0x05 XOR     len body   the previous dump's page at the same vaddr XOR a
//                           change: 1 <= len <= 4093 (an XOR op is always
//                           smaller than a FULL one) and body is pairs
//                           (zero_run, data_run >= 1, data_run bytes) whose
//                           runs stay within the page; data bytes are XORed
//                           into the page, zero runs and the tail after the
//                           last pair are unchanged (QEMU's XBZRLE, on the
//                           XOR of the pages)
//   0x06 FULL    4096 bytes the page
//
// There is no end marker: both sides know the page count from the current
// pagemap, and bytes after the last page are an error like missing ones.
//
// The encoder reads the current pages file once in large blocks and hashes
// each page (XXH3-64). Per page it tries, in order: SAME (hash equals the
// previous round's hash at that vaddr), ZERO, REF (a previous page with
// that hash, bytes compared, since hashes can collide), REF_CUR (an earlier
// current page sent as XOR or FULL with that hash, compared), XOR against
// the previous page at the vaddr, FULL. The decoder keeps at most one op of
// carry between chunks, checks every number against the pagemaps before it
// touches a file, batches the pages it writes in order, and copies SAME runs
// with copy_file_range unless out_fd already holds the previous file.
// Everything below is in images::detail: the format's numbers and page
// walks, and the checks of page sets and pages files both sides make.
#pragma once

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <xxhash.h>

#include "images/delta.hpp"
#include "images/page_set.hpp"

namespace migrated::images::detail {

enum op_code : std::uint8_t {
  op_same = 0x01, op_zero = 0x02, op_ref = 0x03, op_ref_cur = 0x04, op_xor = 0x05, op_full = 0x06,
};
inline constexpr std::size_t max_uleb_bytes = 10;
inline constexpr std::size_t max_xor_body = page_bytes - 3;  // op byte + 2-byte len + body < FULL's 4097
inline constexpr std::size_t max_op_bytes = 1 + page_bytes;  // FULL is the longest op: bounds the carry
inline constexpr std::size_t io_block_bytes = 2 << 20;       // large reads and writes, few syscalls

inline const std::uint8_t zero_page[page_bytes] = {};
inline const std::uint64_t zero_page_hash = XXH3_64bits(zero_page, page_bytes);

inline void put_uleb(std::vector<std::uint8_t>& out, std::uint64_t v) {
  while (v >= 0x80) {
    out.push_back(std::uint8_t(v) | 0x80);
    v >>= 7;
  }
  out.push_back(std::uint8_t(v));
}

enum class parse { ok, more, bad };

inline parse get_uleb(std::span<const std::uint8_t> in, std::size_t& pos, std::uint64_t& value) {
  value = 0;
  for (std::size_t i = 0; i < max_uleb_bytes; ++i) {
    if (pos + i >= in.size()) return parse::more;
    const std::uint8_t b = in[pos + i];
    if (i == max_uleb_bytes - 1 && b > 1) return parse::bad;
    value |= std::uint64_t(b & 0x7f) << (7 * i);
    if ((b & 0x80) == 0) {
      if (i > 0 && b == 0) return parse::bad;  // overlong
      pos += i + 1;
      return parse::ok;
    }
  }
  return parse::bad;
}

inline digest128 tree_digest_of(const page_hashes& hashes) {
  if constexpr (std::endian::native == std::endian::little)
    return xxh128({reinterpret_cast<const std::uint8_t*>(hashes.data()), hashes.size() * 8});
  std::vector<std::uint8_t> le(hashes.size() * 8);
  for (std::size_t i = 0; i < hashes.size(); ++i)
    for (int b = 0; b < 8; ++b) le[i * 8 + b] = std::uint8_t(hashes[i] >> (8 * b));
  return xxh128(le);
}

// Reads up to len bytes at off; fewer only at end of file.
inline result<std::size_t> pread_full(int fd, std::uint8_t* buf, std::size_t len, std::uint64_t off,
                               const std::string& what) {
  std::size_t got = 0;
  while (got < len) {
    const ssize_t n = ::pread(fd, buf + got, len - got, off_t(off + got));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail_errno(errno, "read " + what);
    if (n == 0) break;
    got += std::size_t(n);
  }
  return got;
}

inline result<void> read_page(int fd, std::uint8_t* buf, std::uint64_t index, const std::string& what) {
  auto got = pread_full(fd, buf, page_bytes, index * page_bytes, what);
  if (!got) return std::unexpected(got.error());
  if (*got != page_bytes) return fail(errc::io, what + " ends before page " + std::to_string(index));
  return {};
}

// A page_set built by hand could lie; everything below indexes by it.
inline result<void> check_set(const page_set& set, std::string_view role) {
  std::uint64_t stored = 0, end = 0;
  for (const page_run& run : set.runs) {
    if (run.vaddr % page_bytes != 0 || run.nr_pages == 0 || run.vaddr < end ||
        run.nr_pages > (std::numeric_limits<std::uint64_t>::max() - run.vaddr) / page_bytes ||
        run.first_page != stored)
      return fail(errc::invalid_argument, std::string(role) + " page set is inconsistent");
    end = run.vaddr + std::uint64_t(run.nr_pages) * page_bytes;
    if (run.has_data) stored += run.nr_pages;
  }
  if (stored != set.stored_pages)
    return fail(errc::invalid_argument, std::string(role) + " page set is inconsistent");
  return {};
}

inline result<void> check_previous(const previous_dump& prev) {
  if (prev.set == nullptr) return {};
  if (auto r = check_set(*prev.set, "previous"); !r) return r;
  if (prev.hashes == nullptr || prev.hashes->size() != prev.set->stored_pages)
    return fail(errc::invalid_argument, "previous dump without one hash per stored page");
  return {};
}

// A regular pages file must hold exactly the pages its pagemap lists.
inline result<void> check_size(int fd, const page_set& set) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return fail_errno(errno, "stat " + set.pages_name);
  if (S_ISREG(st.st_mode) && std::uint64_t(st.st_size) != set.stored_pages * page_bytes)
    return fail(errc::protocol, set.pages_name + " holds " + std::to_string(st.st_size) +
                                    " bytes, its pagemap lists " + std::to_string(set.stored_pages) +
                                    " pages");
  return {};
}

// Walks the stored pages of a set in pages-file order.
class stored_walker {
 public:
  explicit stored_walker(const page_set& set) : runs_(set.runs) { skip_empty(); }
  std::uint64_t vaddr() const { return runs_[run_].vaddr + off_ * page_bytes; }
  std::uint64_t left_in_run() const { return runs_[run_].nr_pages - off_; }
  void advance(std::uint64_t n) {
    while (n > 0 && run_ < runs_.size()) {
      const std::uint64_t k = std::min(n, left_in_run());
      off_ += k;
      n -= k;
      if (off_ == runs_[run_].nr_pages) {
        ++run_;
        off_ = 0;
        skip_empty();
      }
    }
  }

 private:
  void skip_empty() {
    while (run_ < runs_.size() && !runs_[run_].has_data) ++run_;
  }
  const std::vector<page_run>& runs_;
  std::size_t run_ = 0;
  std::uint64_t off_ = 0;
};

// Finds stored pages by vaddr, trying the run found last and the one after
// it first: lookups follow the current dump's order, which is vaddr order.
class vaddr_finder {
 public:
  struct hit {
    std::uint64_t index;
    std::uint64_t left_in_run;
  };
  explicit vaddr_finder(const page_set& set) : runs_(set.runs) {}
  std::optional<hit> find(std::uint64_t vaddr) {
    if (!holds(last_, vaddr)) {
      if (holds(last_ + 1, vaddr)) {
        ++last_;
      } else {
        auto after = std::upper_bound(runs_.begin(), runs_.end(), vaddr,
                                      [](std::uint64_t v, const page_run& r) { return v < r.vaddr; });
        if (after == runs_.begin()) return std::nullopt;
        const std::size_t i = std::size_t(after - runs_.begin()) - 1;
        if (!holds(i, vaddr)) return std::nullopt;
        last_ = i;
      }
    }
    const page_run& run = runs_[last_];
    const std::uint64_t page = (vaddr - run.vaddr) / page_bytes;
    return hit{run.first_page + page, run.nr_pages - page};
  }

 private:
  bool holds(std::size_t i, std::uint64_t vaddr) const {
    return i < runs_.size() && runs_[i].has_data && vaddr >= runs_[i].vaddr &&
           (vaddr - runs_[i].vaddr) / page_bytes < runs_[i].nr_pages && vaddr % page_bytes == 0;
  }
  const std::vector<page_run>& runs_;
  std::size_t last_ = 0;
};

}  // namespace migrated::images::detail
