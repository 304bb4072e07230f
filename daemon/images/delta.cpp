// Page deltas between two dumps; delta.hpp says what they are for, this
// comment (and docs/images.md) says exactly how they are written.
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
// Encoder and decoder share this file because they share the format's
// helpers (numbers, XOR bodies, page walks), which nothing else needs.
#include "images/delta.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cstdio>
#include <cstring>
#include <limits>
#include <memory>
#include <optional>
#include <unordered_map>

#include <xxhash.h>

namespace migrated::images {
namespace {

enum op_code : std::uint8_t {
  op_same = 0x01, op_zero = 0x02, op_ref = 0x03, op_ref_cur = 0x04, op_xor = 0x05, op_full = 0x06,
};
constexpr std::size_t max_uleb_bytes = 10;
constexpr std::size_t max_xor_body = page_bytes - 3;  // op byte + 2-byte len + body < FULL's 4097
constexpr std::size_t max_op_bytes = 1 + page_bytes;  // FULL is the longest op: bounds the carry
constexpr std::size_t io_block_bytes = 2 << 20;       // large reads and writes, few syscalls
constexpr std::size_t xor_gap_inline = 2;  // unchanged bytes between changes costing less than a new pair

const std::uint8_t zero_page[page_bytes] = {};
const std::uint64_t zero_page_hash = XXH3_64bits(zero_page, page_bytes);

std::string hex(std::uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
  return buf;
}

void put_uleb(std::vector<std::uint8_t>& out, std::uint64_t v) {
  while (v >= 0x80) {
    out.push_back(std::uint8_t(v) | 0x80);
    v >>= 7;
  }
  out.push_back(std::uint8_t(v));
}

enum class parse { ok, more, bad };

parse get_uleb(std::span<const std::uint8_t> in, std::size_t& pos, std::uint64_t& value) {
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

digest128 tree_digest_of(const page_hashes& hashes) {
  if constexpr (std::endian::native == std::endian::little)
    return xxh128({reinterpret_cast<const std::uint8_t*>(hashes.data()), hashes.size() * 8});
  std::vector<std::uint8_t> le(hashes.size() * 8);
  for (std::size_t i = 0; i < hashes.size(); ++i)
    for (int b = 0; b < 8; ++b) le[i * 8 + b] = std::uint8_t(hashes[i] >> (8 * b));
  return xxh128(le);
}

// Reads up to len bytes at off; fewer only at end of file.
result<std::size_t> pread_full(int fd, std::uint8_t* buf, std::size_t len, std::uint64_t off,
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

result<void> read_page(int fd, std::uint8_t* buf, std::uint64_t index, const std::string& what) {
  auto got = pread_full(fd, buf, page_bytes, index * page_bytes, what);
  if (!got) return std::unexpected(got.error());
  if (*got != page_bytes) return fail(errc::io, what + " ends before page " + std::to_string(index));
  return {};
}

result<void> pwrite_full(int fd, const std::uint8_t* buf, std::size_t len, std::uint64_t off,
                         const std::string& what) {
  while (len > 0) {
    const ssize_t n = ::pwrite(fd, buf, len, off_t(off));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail_errno(errno, "write " + what);
    buf += n;
    off += std::uint64_t(n);
    len -= std::size_t(n);
  }
  return {};
}

// A page_set built by hand could lie; everything below indexes by it.
result<void> check_set(const page_set& set, std::string_view role) {
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

result<void> check_previous(const previous_dump& prev) {
  if (prev.set == nullptr) return {};
  if (auto r = check_set(*prev.set, "previous"); !r) return r;
  if (prev.hashes == nullptr || prev.hashes->size() != prev.set->stored_pages)
    return fail(errc::invalid_argument, "previous dump without one hash per stored page");
  return {};
}

// A regular pages file must hold exactly the pages its pagemap lists.
result<void> check_size(int fd, const page_set& set) {
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

// The XBZRLE body of cur XOR old into body; false when it would not be
// smaller than sending the page.
bool build_xor(const std::uint8_t* cur, const std::uint8_t* old, std::vector<std::uint8_t>& body) {
  body.clear();
  std::size_t pos = 0, done = 0;  // done: end of the last data run
  while (pos < page_bytes) {
    // Skip unchanged bytes a word at a time.
    while (pos + 8 <= page_bytes) {
      std::uint64_t a, b;
      std::memcpy(&a, cur + pos, 8);
      std::memcpy(&b, old + pos, 8);
      if (a != b) break;
      pos += 8;
    }
    while (pos < page_bytes && cur[pos] == old[pos]) ++pos;
    if (pos == page_bytes) break;
    std::size_t end = pos + 1;
    for (;;) {
      while (end < page_bytes && cur[end] != old[end]) ++end;
      std::size_t gap = end;
      while (gap < page_bytes && gap - end <= xor_gap_inline && cur[gap] == old[gap]) ++gap;
      if (gap == page_bytes || gap - end > xor_gap_inline) break;
      end = gap;  // a short unchanged stretch followed by more changes: keep it inline
    }
    put_uleb(body, pos - done);
    put_uleb(body, end - pos);
    for (std::size_t i = pos; i < end; ++i) body.push_back(cur[i] ^ old[i]);
    if (body.size() > max_xor_body) return false;
    done = pos = end;
  }
  return !body.empty();
}

// Applies an XBZRLE body to page; false for a malformed one.
bool apply_xor(std::span<const std::uint8_t> body, std::uint8_t* page) {
  std::size_t in = 0, at = 0;
  if (body.empty()) return false;
  while (in < body.size()) {
    std::uint64_t zero_run = 0, data_run = 0;
    if (get_uleb(body, in, zero_run) != parse::ok || get_uleb(body, in, data_run) != parse::ok)
      return false;
    if (data_run == 0 || zero_run > page_bytes - at || data_run > page_bytes - at - zero_run ||
        data_run > body.size() - in)
      return false;
    at += std::size_t(zero_run);
    for (std::size_t i = 0; i < data_run; ++i) page[at + i] ^= body[in + i];
    at += std::size_t(data_run);
    in += std::size_t(data_run);
  }
  return true;
}

class encoder {
 public:
  encoder(const previous_dump& prev, const page_set& cur, int fd, std::size_t chunk_bytes,
          const delta_sink& sink)
      : prev_(prev), cur_(cur), fd_(fd), chunk_bytes_(std::max<std::size_t>(chunk_bytes, 1)), sink_(sink) {}

  result<encode_result> run() {
    if (auto r = check_previous(prev_); !r) return std::unexpected(r.error());
    if (auto r = check_set(cur_, "current"); !r) return std::unexpected(r.error());
    if (auto r = check_size(fd_, cur_); !r) return std::unexpected(r.error());
    if (prev_.set) {
      prev_finder_.emplace(*prev_.set);
      prev_what_ = "previous " + prev_.set->pages_name;
    }
    const std::uint64_t total = cur_.stored_pages;
    res_.hashes.resize(total);
    out_.reserve(std::min<std::size_t>(chunk_bytes_, 16 << 20) + max_op_bytes + 2 * max_uleb_bytes);
    block_.resize(std::min<std::uint64_t>(total * page_bytes, io_block_bytes));
    stored_walker walk(cur_);
    for (std::uint64_t first = 0; first < total;) {
      const std::uint64_t n = std::min<std::uint64_t>(total - first, io_block_bytes / page_bytes);
      auto got = pread_full(fd_, block_.data(), n * page_bytes, first * page_bytes, cur_.pages_name);
      if (!got) return std::unexpected(got.error());
      if (*got != n * page_bytes)
        return fail(errc::protocol, cur_.pages_name + " is shorter than its pagemap");
      block_first_ = first;
      for (std::uint64_t k = 0; k < n; ++k, walk.advance(1))
        if (auto r = encode_page(first + k, walk.vaddr(), block_.data() + k * page_bytes); !r)
          return std::unexpected(r.error());
      first += n;
    }
    if (auto r = end_run(); !r) return std::unexpected(r.error());
    if (auto r = emit(true); !r) return std::unexpected(r.error());
    res_.stats.pages = total;
    res_.stats.bytes_raw = total * page_bytes;
    res_.tree_digest = tree_digest_of(res_.hashes);
    return std::move(res_);
  }

 private:
  result<void> encode_page(std::uint64_t index, std::uint64_t vaddr, const std::uint8_t* page) {
    const std::uint64_t hash = XXH3_64bits(page, page_bytes);
    res_.hashes[index] = hash;
    std::optional<std::uint64_t> prev_index;
    if (prev_finder_) {
      if (auto hit = prev_finder_->find(vaddr)) {
        prev_index = hit->index;
        if ((*prev_.hashes)[hit->index] == hash) return extend_run(op_same);
      }
    }
    if (hash == zero_page_hash && std::memcmp(page, zero_page, page_bytes) == 0)
      return extend_run(op_zero);
    if (auto r = end_run(); !r) return r;

    for (auto attempt : {&encoder::try_ref, &encoder::try_ref_cur}) {
      auto done = (this->*attempt)(hash, page);
      if (!done) return std::unexpected(done.error());
      if (*done) return {};
    }
    if (prev_index && prev_.pages_fd >= 0) {
      if (auto r = read_page(prev_.pages_fd, scratch_, *prev_index, prev_what_); !r)
        return r;
      if (build_xor(page, scratch_, xor_body_)) {
        out_.push_back(op_xor);
        put_uleb(out_, xor_body_.size());
        out_.insert(out_.end(), xor_body_.begin(), xor_body_.end());
        ++res_.stats.xor_pages;
        cur_by_hash_.emplace(hash, index);
        return emit(false);
      }
    }
    out_.push_back(op_full);
    out_.insert(out_.end(), page, page + page_bytes);
    ++res_.stats.full;
    cur_by_hash_.emplace(hash, index);
    return emit(false);
  }

  result<bool> try_ref(std::uint64_t hash, const std::uint8_t* page) {
    if (!prev_.set || prev_.pages_fd < 0) return false;
    if (!prev_by_hash_) {
      prev_by_hash_.emplace();
      prev_by_hash_->reserve(prev_.hashes->size());
      for (std::uint64_t i = 0; i < prev_.hashes->size(); ++i) prev_by_hash_->emplace((*prev_.hashes)[i], i);
    }
    const auto it = prev_by_hash_->find(hash);
    if (it == prev_by_hash_->end()) return false;
    if (auto r = read_page(prev_.pages_fd, scratch_, it->second, prev_what_); !r)
      return std::unexpected(r.error());
    if (std::memcmp(scratch_, page, page_bytes) != 0) return false;
    out_.push_back(op_ref);
    put_uleb(out_, prev_.set->vaddr_of(it->second) / page_bytes);
    ++res_.stats.ref;
    if (auto r = emit(false); !r) return std::unexpected(r.error());
    return true;
  }

  result<bool> try_ref_cur(std::uint64_t hash, const std::uint8_t* page) {
    const auto it = cur_by_hash_.find(hash);
    if (it == cur_by_hash_.end()) return false;
    const std::uint8_t* earlier = scratch_;
    if (it->second >= block_first_) {
      earlier = block_.data() + (it->second - block_first_) * page_bytes;
    } else if (auto r = read_page(fd_, scratch_, it->second, cur_.pages_name); !r) {
      return std::unexpected(r.error());
    }
    if (std::memcmp(earlier, page, page_bytes) != 0) return false;
    out_.push_back(op_ref_cur);
    put_uleb(out_, it->second);
    ++res_.stats.ref;
    if (auto r = emit(false); !r) return std::unexpected(r.error());
    return true;
  }

  result<void> extend_run(op_code code) {
    if (run_code_ != code) {
      if (auto r = end_run(); !r) return r;
      run_code_ = code;
    }
    ++run_len_;
    ++(code == op_same ? res_.stats.same : res_.stats.zero);
    return {};
  }

  result<void> end_run() {
    if (run_len_ == 0) return {};
    out_.push_back(run_code_);
    put_uleb(out_, run_len_);
    run_len_ = 0;
    return emit(false);
  }

  result<void> emit(bool last) {
    if (out_.empty() || (!last && out_.size() < chunk_bytes_)) return {};
    res_.stats.bytes_delta += out_.size();
    auto r = sink_(out_);
    out_.clear();
    return r;
  }

  const previous_dump& prev_;
  const page_set& cur_;
  const int fd_;
  const std::size_t chunk_bytes_;
  const delta_sink& sink_;
  encode_result res_;
  std::optional<vaddr_finder> prev_finder_;
  std::string prev_what_;  // names the previous pages file in errors
  std::optional<std::unordered_map<std::uint64_t, std::uint64_t>> prev_by_hash_;  // built on first need
  std::unordered_map<std::uint64_t, std::uint64_t> cur_by_hash_;  // pages sent as XOR or FULL
  std::vector<std::uint8_t> block_, out_, xor_body_;
  std::uint64_t block_first_ = 0;
  std::uint8_t run_code_ = 0;
  std::uint64_t run_len_ = 0;
  alignas(64) std::uint8_t scratch_[page_bytes];
};

}  // namespace

result<encode_result> encode_delta(const previous_dump& prev, const page_set& cur, int cur_pages_fd,
                                   std::size_t chunk_bytes, const delta_sink& sink) {
  auto e = std::make_unique<encoder>(prev, cur, cur_pages_fd, chunk_bytes, sink);
  return with_context(e->run(), "delta of " + cur.pages_name);
}

// ---------------------------------------------------------------------------
// Decoder

struct delta_decoder::state {
  state(const previous_dump& p, const page_set& c, int fd, bool copy)
      : prev(p), cur(c), out_fd(fd), copy_mode(copy), walk(c) {
    if (auto r = setup(); !r) failed = r.error().context("delta for " + cur.pages_name);
  }

  result<void> setup() {
    if (auto r = check_previous(prev); !r) return r;
    if (auto r = check_set(cur, "current"); !r) return r;
    if (copy_mode && (prev.set == nullptr || !cur.same_layout(*prev.set)))
      return fail(errc::invalid_argument, "output is a copy of a previous dump with another layout");
    if (prev.set) {
      prev_finder.emplace(*prev.set);
      prev_what = "previous " + prev.set->pages_name;
    }
    hashes.resize(cur.stored_pages);
    carry.reserve(max_op_bytes);
    return {};
  }

  // Parses and applies one op at the start of `in`: its length, or 0 when
  // `in` holds only part of it (nothing has been applied then).
  result<std::size_t> step(std::span<const std::uint8_t> in) {
    if (next == cur.stored_pages) return fail(errc::protocol, "data after the last page");
    std::size_t pos = 1;
    std::uint64_t v = 0;
    const std::uint8_t code = in[0];
    switch (code) {
      case op_same: case op_zero: case op_ref: case op_ref_cur: {
        const parse p = get_uleb(in, pos, v);
        if (p == parse::more) return 0;
        if (p == parse::bad) return fail(errc::protocol, "malformed number");
        result<void> r = code == op_same ? same(v) : code == op_zero ? zero(v)
                       : code == op_ref  ? ref(v)  : ref_cur(v);
        if (!r) return std::unexpected(r.error());
        return pos;
      }
      case op_xor: {
        const parse p = get_uleb(in, pos, v);
        if (p == parse::more) return 0;
        if (p == parse::bad || v == 0 || v > max_xor_body)
          return fail(errc::protocol, "XOR body of bad length");
        if (in.size() - pos < v) return 0;
        if (auto r = xor_page(in.subspan(pos, std::size_t(v))); !r) return std::unexpected(r.error());
        return pos + std::size_t(v);
      }
      case op_full:
        if (in.size() < 1 + page_bytes) return 0;
        if (auto r = put_page(in.data() + 1, XXH3_64bits(in.data() + 1, page_bytes)); !r)
          return std::unexpected(r.error());
        ++stats.full;
        return 1 + page_bytes;
      default:
        return fail(errc::protocol, "unknown op " + hex(code));
    }
  }

  result<void> check_count(std::uint64_t n, std::string_view what) const {
    if (n == 0 || n > cur.stored_pages - next)
      return fail(errc::protocol, std::string(what) + " of " + std::to_string(n) + " pages, " +
                                      std::to_string(cur.stored_pages - next) + " left");
    return {};
  }

  result<void> need_previous(std::string_view what, bool file) const {
    if (!prev.set || (file && prev.pages_fd < 0))
      return fail(errc::protocol, std::string(what) + " without a previous dump");
    return {};
  }

  result<void> same(std::uint64_t n) {
    if (auto r = need_previous("SAME", false); !r) return r;
    if (auto r = check_count(n, "SAME"); !r) return r;
    while (n > 0) {
      const auto hit = prev_finder->find(walk.vaddr());
      if (!hit) return fail(errc::protocol, "SAME for " + hex(walk.vaddr()) + ", not in the previous dump");
      const std::uint64_t k = std::min({n, walk.left_in_run(), hit->left_in_run});
      std::copy_n(prev.hashes->begin() + std::ptrdiff_t(hit->index), k, hashes.begin() + std::ptrdiff_t(next));
      if (copy_mode && hit->index != next)
        return fail(errc::internal, "layouts differ although same_layout said equal");
      if (!copy_mode)
        if (auto r = queue_copy(hit->index, next, k); !r) return r;
      next += k;
      walk.advance(k);
      stats.same += k;
      n -= k;
    }
    return {};
  }

  result<void> zero(std::uint64_t n) {
    if (auto r = check_count(n, "ZERO"); !r) return r;
    stats.zero += n;
    for (; n > 0; --n)
      if (auto r = put_page(zero_page, zero_page_hash); !r) return r;
    return {};
  }

  result<void> ref(std::uint64_t pfn) {
    if (auto r = need_previous("REF", true); !r) return r;
    const auto hit = pfn <= std::numeric_limits<std::uint64_t>::max() / page_bytes
                         ? prev_finder->find(pfn * page_bytes) : std::nullopt;
    if (!hit) return fail(errc::protocol, "REF to page " + hex(pfn) + ", not in the previous dump");
    if (auto r = read_page(prev.pages_fd, scratch, hit->index, prev_what); !r)
      return r;
    ++stats.ref;
    return put_page(scratch, XXH3_64bits(scratch, page_bytes));
  }

  result<void> ref_cur(std::uint64_t index) {
    if (index >= next)
      return fail(errc::protocol, "REF_CUR to page " + std::to_string(index) + ", not yet written");
    if (index >= wbuf_first && index - wbuf_first < wbuf.size() / page_bytes) {
      std::memcpy(scratch, wbuf.data() + (index - wbuf_first) * page_bytes, page_bytes);
    } else {
      if (auto r = flush(); !r) return r;
      if (auto r = read_page(out_fd, scratch, index, cur.pages_name); !r) return r;
    }
    ++stats.ref;
    return put_page(scratch, hashes[index]);
  }

  result<void> xor_page(std::span<const std::uint8_t> body) {
    if (auto r = need_previous("XOR", true); !r) return r;
    const auto hit = prev_finder->find(walk.vaddr());
    if (!hit) return fail(errc::protocol, "XOR for " + hex(walk.vaddr()) + ", not in the previous dump");
    if (auto r = read_page(prev.pages_fd, scratch, hit->index, prev_what); !r)
      return r;
    if (!apply_xor(body, scratch)) return fail(errc::protocol, "malformed XOR body");
    ++stats.xor_pages;
    return put_page(scratch, XXH3_64bits(scratch, page_bytes));
  }

  // Page `next` is `data`: buffered while pages arrive in order.
  result<void> put_page(const std::uint8_t* data, std::uint64_t hash) {
    if (!wbuf.empty() && next - wbuf.size() / page_bytes != wbuf_first) {
      if (auto r = flush_writes(); !r) return r;
    }
    if (wbuf.empty()) wbuf_first = next;
    wbuf.insert(wbuf.end(), data, data + page_bytes);
    hashes[next++] = hash;
    walk.advance(1);
    if (wbuf.size() >= io_block_bytes) return flush_writes();
    return {};
  }

  result<void> flush_writes() {
    if (wbuf.empty()) return {};
    auto r = pwrite_full(out_fd, wbuf.data(), wbuf.size(), wbuf_first * page_bytes, cur.pages_name);
    wbuf.clear();
    return r;
  }

  result<void> queue_copy(std::uint64_t src, std::uint64_t dst, std::uint64_t n) {
    if (copy_pages > 0 && copy_src + copy_pages == src && copy_dst + copy_pages == dst) {
      copy_pages += n;
      return {};
    }
    if (auto r = flush_copy(); !r) return r;
    copy_src = src, copy_dst = dst, copy_pages = n;
    return {};
  }

  result<void> flush_copy() {
    if (copy_pages == 0) return {};
    const std::string& what = prev_what;
    loff_t in = loff_t(copy_src * page_bytes), out = loff_t(copy_dst * page_bytes);
    std::uint64_t left = copy_pages * page_bytes;
    copy_pages = 0;
    while (left > 0 && use_copy_file_range) {
      const ssize_t n = ::copy_file_range(prev.pages_fd, &in, out_fd, &out, left, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EXDEV || errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP)) {
        use_copy_file_range = false;
        break;
      }
      if (n < 0) return fail_errno(errno, "copy " + what + " to " + cur.pages_name);
      if (n == 0) return fail(errc::io, what + " is shorter than its pagemap");
      left -= std::uint64_t(n);
    }
    if (left > 0 && copy_buf.empty()) copy_buf.resize(io_block_bytes);
    while (left > 0) {
      const std::size_t len = std::size_t(std::min<std::uint64_t>(left, copy_buf.size()));
      auto got = pread_full(prev.pages_fd, copy_buf.data(), len, std::uint64_t(in), what);
      if (!got) return std::unexpected(got.error());
      if (*got != len) return fail(errc::io, what + " is shorter than its pagemap");
      if (auto r = pwrite_full(out_fd, copy_buf.data(), len, std::uint64_t(out), cur.pages_name); !r)
        return r;
      in += loff_t(len), out += loff_t(len), left -= len;
    }
    return {};
  }

  result<void> flush() {
    if (auto r = flush_writes(); !r) return r;
    return flush_copy();
  }

  result<void> feed(std::span<const std::uint8_t> chunk) {
    std::size_t pos = 0;
    if (!carry.empty()) {
      // Complete the op begun in an earlier chunk; the carry never holds
      // more than one op, so it stays within max_op_bytes.
      const std::size_t before = carry.size();
      const std::size_t take = std::min(chunk.size(), max_op_bytes - before);
      carry.insert(carry.end(), chunk.begin(), chunk.begin() + std::ptrdiff_t(take));
      auto n = step(carry);
      if (!n) return std::unexpected(n.error());
      if (*n == 0) {
        if (take < chunk.size()) return fail(errc::internal, "op longer than the longest op");
        return {};
      }
      if (*n < before) return fail(errc::internal, "op ended inside the part already seen");
      pos = *n - before;
      carry.clear();
    }
    while (pos < chunk.size()) {
      auto n = step(chunk.subspan(pos));
      if (!n) return std::unexpected(n.error());
      if (*n == 0) {
        carry.assign(chunk.begin() + std::ptrdiff_t(pos), chunk.end());
        break;
      }
      pos += *n;
    }
    return {};
  }

  result<encode_result> finish() {
    if (!carry.empty()) return fail(errc::protocol, "stream ends inside an op");
    if (next != cur.stored_pages)
      return fail(errc::protocol, "stream ends after " + std::to_string(next) + " of " +
                                      std::to_string(cur.stored_pages) + " pages");
    if (auto r = flush(); !r) return std::unexpected(r.error());
    if (::ftruncate(out_fd, off_t(cur.stored_pages * page_bytes)) != 0)
      return fail_errno(errno, "truncate " + cur.pages_name);
    encode_result res;
    res.stats = stats;
    res.stats.pages = cur.stored_pages;
    res.stats.bytes_raw = cur.stored_pages * page_bytes;
    res.tree_digest = tree_digest_of(hashes);
    res.hashes = std::move(hashes);
    return res;
  }

  const previous_dump prev;
  const page_set& cur;
  const int out_fd;
  const bool copy_mode;
  std::optional<error> failed;  // sticky: a broken stream stays broken
  bool finished = false;
  std::vector<std::uint8_t> carry;
  std::uint64_t next = 0;  // index of the next page an op produces
  page_hashes hashes;
  delta_stats stats;
  stored_walker walk;
  std::optional<vaddr_finder> prev_finder;
  std::string prev_what;  // names the previous pages file in errors
  std::vector<std::uint8_t> wbuf;  // pages wbuf_first.. not yet written
  std::uint64_t wbuf_first = 0;
  std::uint64_t copy_src = 0, copy_dst = 0, copy_pages = 0;  // SAME pages not yet copied
  bool use_copy_file_range = true;
  std::vector<std::uint8_t> copy_buf;
  alignas(64) std::uint8_t scratch[page_bytes];
};

delta_decoder::delta_decoder(const previous_dump& prev, const page_set& cur, int out_fd,
                             bool out_is_copy_of_prev)
    : s_(new state(prev, cur, out_fd, out_is_copy_of_prev)) {}

delta_decoder::~delta_decoder() { delete s_; }

result<void> delta_decoder::feed(std::span<const std::uint8_t> chunk) {
  if (s_->failed) return std::unexpected(*s_->failed);
  if (s_->finished) return fail(errc::protocol, "delta for " + s_->cur.pages_name + ": data after finish");
  s_->stats.bytes_delta += chunk.size();
  auto r = s_->feed(chunk);
  if (!r) {
    s_->failed = r.error().context("delta for " + s_->cur.pages_name + " at page " + std::to_string(s_->next));
    return std::unexpected(*s_->failed);
  }
  return {};
}

result<encode_result> delta_decoder::finish() {
  if (s_->failed) return std::unexpected(*s_->failed);
  if (s_->finished) return fail(errc::internal, "delta for " + s_->cur.pages_name + ": finished twice");
  s_->finished = true;
  auto r = s_->finish();
  if (!r) s_->failed = r.error().context("delta for " + s_->cur.pages_name);
  return with_context(std::move(r), "delta for " + s_->cur.pages_name);
}

result<encode_result> hash_pages_file(const page_set& set, int pages_fd) {
  if (auto r = check_set(set, "current"); !r) return std::unexpected(r.error());
  if (auto r = check_size(pages_fd, set); !r) return std::unexpected(r.error());
  encode_result res;
  res.hashes.resize(set.stored_pages);
  std::vector<std::uint8_t> block(std::min<std::uint64_t>(set.stored_pages * page_bytes, io_block_bytes));
  for (std::uint64_t first = 0; first < set.stored_pages;) {
    const std::uint64_t n = std::min<std::uint64_t>(set.stored_pages - first, io_block_bytes / page_bytes);
    auto got = pread_full(pages_fd, block.data(), n * page_bytes, first * page_bytes, set.pages_name);
    if (!got) return std::unexpected(got.error());
    if (*got != n * page_bytes) return fail(errc::protocol, set.pages_name + " is shorter than its pagemap");
    for (std::uint64_t k = 0; k < n; ++k)
      res.hashes[first + k] = XXH3_64bits(block.data() + k * page_bytes, page_bytes);
    first += n;
  }
  res.stats.pages = set.stored_pages;
  res.stats.bytes_raw = set.stored_pages * page_bytes;
  res.tree_digest = tree_digest_of(res.hashes);
  return res;
}

}  // namespace migrated::images
