// delta_decoder and hash_pages_file, the destination side of the format in
// delta_format.hpp: the op stream arrives split at any byte, every op is
// checked against the pagemaps before it touches a file, and the pages file
// is rebuilt with batched writes and copy_file_range. hash_pages_file
// digests a pages file by reading it, with the same checks and hashes.
#include "images/delta.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <limits>
#include <optional>

#include <xxhash.h>

#include "common/hash.hpp"
#include "images/delta_format.hpp"

namespace migrated::images {
using namespace detail;  // the format's helpers, shared with delta_encode.cpp
namespace {

constexpr std::uint64_t hashes_reserved_pages = 1u << 20;  // 8 MiB of hashes, 4 GiB of pages

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

}  // namespace

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
    // The hashes grow with the pages written, not to the pagemap's claim:
    // a pagemap of a few bytes may claim 2^28 pages (2 GiB of hashes)
    // before one page of data arrives. Up to 1 Mi pages are reserved.
    hashes.reserve(std::min<std::uint64_t>(cur.stored_pages, hashes_reserved_pages));
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
      if (copy_mode && hit->index != next)
        return fail(errc::internal, "layouts differ although same_layout said equal");
      const auto first = prev.hashes->begin() + std::ptrdiff_t(hit->index);
      hashes.insert(hashes.end(), first, first + std::ptrdiff_t(k));
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
    hashes.push_back(hash);
    ++next;
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
  page_hashes hashes;  // of pages 0..next-1
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
