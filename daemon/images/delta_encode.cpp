// encode_delta, the source side of the format in delta_format.hpp. The
// current pages file is mapped, every page hashed first (on two threads:
// this scan is what a final round spends most of its time on while the
// container is stopped), then one pass sends each page as the first op in
// that comment's order that reproduces it, the stream handed to the sink in
// chunks. XOR bodies are built only here (build_xor) and applied
// only in delta_decode.cpp (apply_xor).
#include "images/delta.hpp"

#include <algorithm>
#include <cstring>
#include <memory>
#include <optional>
#include <thread>
#include <unordered_map>

#include <sys/mman.h>

#include <xxhash.h>

#include "images/delta_format.hpp"

namespace migrated::images {
using namespace detail;  // the format's helpers, shared with delta_decode.cpp
namespace {

constexpr std::size_t xor_gap_inline = 2;  // unchanged bytes between changes costing less than a new pair

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
    out_.reserve(std::min<std::size_t>(chunk_bytes_, 16 << 20) + max_op_bytes + 2 * max_uleb_bytes);
    if (auto r = map_pages(total); !r) return std::unexpected(r.error());
    hash_all(total);
    stored_walker walk(cur_);
    for (std::uint64_t i = 0; i < total; ++i, walk.advance(1))
      if (auto r = encode_page(i, walk.vaddr(), page_at(i)); !r) return std::unexpected(r.error());
    if (auto r = end_run(); !r) return std::unexpected(r.error());
    if (auto r = emit(true); !r) return std::unexpected(r.error());
    res_.stats.pages = total;
    res_.stats.bytes_raw = total * page_bytes;
    res_.tree_digest = tree_digest_of(res_.hashes);
    return std::move(res_);
  }

  ~encoder() {
    if (map_) ::munmap(map_, map_bytes_);
  }

 private:
  // check_size() has checked the file holds every stored page.
  result<void> map_pages(std::uint64_t total) {
    if (total == 0) return {};
    map_bytes_ = total * page_bytes;
    void* m = ::mmap(nullptr, map_bytes_, PROT_READ, MAP_PRIVATE, fd_, 0);
    if (m == MAP_FAILED) return fail_errno(errno, "map " + cur_.pages_name);
    map_ = m;
    ::madvise(map_, map_bytes_, MADV_SEQUENTIAL);
    return {};
  }

  const std::uint8_t* page_at(std::uint64_t index) const {
    return static_cast<const std::uint8_t*>(map_) + index * page_bytes;
  }

  // Below this many pages a second thread costs more than it saves.
  static constexpr std::uint64_t parallel_hash_pages = 4096;

  void hash_all(std::uint64_t total) {
    res_.hashes.resize(total);
    auto hash_range = [this](std::uint64_t from, std::uint64_t to) {
      for (std::uint64_t i = from; i < to; ++i) res_.hashes[i] = XXH3_64bits(page_at(i), page_bytes);
    };
    if (total < parallel_hash_pages) return hash_range(0, total);
    std::thread other(hash_range, total / 2, total);
    hash_range(0, total / 2);
    other.join();
  }

  result<void> encode_page(std::uint64_t index, std::uint64_t vaddr, const std::uint8_t* page) {
    const std::uint64_t hash = res_.hashes[index];
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

  // Finding a page anywhere in the previous round takes a table of all its
  // pages, built once per file: 524 288 entries for 2 GiB, 50 ms or more.
  // Above 256 MiB it is built only once this file has looked for as many
  // pages as a 64th of them: a final round's few changed pages (1 of a
  // 2 GiB hybrid, 1 028 of a 2 GiB precopy, inside the downtime) go as XOR
  // or FULL instead.
  static constexpr std::uint64_t ref_table_cheap = 1u << 16;
  static constexpr std::uint64_t ref_table_share = 64;

  result<bool> try_ref(std::uint64_t hash, const std::uint8_t* page) {
    if (!prev_.set || prev_.pages_fd < 0) return false;
    const std::uint64_t prev_pages = prev_.hashes->size();
    if (!prev_by_hash_ && prev_pages > ref_table_cheap && ++ref_wanted_ * ref_table_share < prev_pages) return false;
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
    if (std::memcmp(page_at(it->second), page, page_bytes) != 0) return false;
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
  std::optional<std::unordered_map<std::uint64_t, std::uint64_t>> prev_by_hash_;  // built once worth it
  std::uint64_t ref_wanted_ = 0;  // pages looked for before it was
  std::unordered_map<std::uint64_t, std::uint64_t> cur_by_hash_;  // pages sent as XOR or FULL
  std::vector<std::uint8_t> out_, xor_body_;
  void* map_ = nullptr;
  std::size_t map_bytes_ = 0;
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

}  // namespace migrated::images
