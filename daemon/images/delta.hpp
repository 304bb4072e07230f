// Page-level deltas between two dumps of the same process (the previous
// round's and the current one), in the spirit of QEMU's precopy:
//
//   SAME  n        the next n pages equal the previous version at the same vaddr
//   ZERO  n        the next n pages are all zero
//   REF   vaddr    the page equals the previous dump's page at another vaddr
//   XOR   len, b   the page is the previous version at the same vaddr XOR a
//                  small change, encoded as (zero-run, non-zero-run, bytes)*
//                  with ULEB128 lengths (QEMU's XBZRLE) — used only when that
//                  is smaller than the page
//   FULL  page     the 4096 bytes
//
// one op per current stored page, in the current pagemap's order (runs of
// SAME/ZERO coalesced). With no previous dump (the first round) everything
// is ZERO, REF (pages identical to an earlier page of this dump: REF_CUR)
// or FULL. The encoder compares pages by their XXH3-64 hash against the
// previous round's hashes, so it reads each current page once and a
// previous page only when it builds an XOR.
//
// Verification: each side keeps one XXH3-64 hash per stored page; the tree
// digest of a pages file is XXH3-128 over its page hashes (little-endian
// u64s in page order). The decoder computes hashes only for the pages it
// writes and reuses the previous round's for SAME pages, so the destination
// checks the rebuilt file against the source's digest without reading it
// back.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "common/hash.hpp"
#include "images/page_set.hpp"

namespace migrated::images {

using page_hashes = std::vector<std::uint64_t>;  // one per stored page, in order

struct delta_stats {
  std::uint64_t pages = 0;   // stored pages in the current dump
  std::uint64_t same = 0;
  std::uint64_t zero = 0;
  std::uint64_t ref = 0;
  std::uint64_t xor_pages = 0;
  std::uint64_t full = 0;
  std::uint64_t bytes_raw = 0;    // current pages file size
  std::uint64_t bytes_delta = 0;  // encoded op stream size (before zstd)
};

// A previous round as both sides hold it.
struct previous_dump {
  const page_set* set = nullptr;    // nullptr: no previous dump (first round)
  const page_hashes* hashes = nullptr;
  int pages_fd = -1;                // its pages file, for XOR and REF, and for SAME when copying
};

// Source side. Reads the current pages file, emits the op stream in chunks
// of about chunk_bytes to `sink` (which may fail, stopping the encoder).
struct encode_result {
  delta_stats stats;
  page_hashes hashes;     // of the current dump, for the next round
  digest128 tree_digest{};
};
using delta_sink = std::function<result<void>(std::span<const std::uint8_t>)>;
result<encode_result> encode_delta(const previous_dump& prev, const page_set& cur, int cur_pages_fd,
                                   std::size_t chunk_bytes, const delta_sink& sink);

// Destination side: rebuilds the current pages file into out_fd from the
// previous dump and the op stream fed in arbitrary chunks. When
// `out_is_copy_of_prev` (out_fd already holds a copy of the previous pages
// file and the layouts are equal), SAME pages are left as they are instead
// of copied. Every malformed or lying stream (unknown op, run past the
// pagemap, REF to a page that does not exist, XOR overrun, SAME without a
// previous page, stream ending early or too long) is errc::protocol.
class delta_decoder {
 public:
  delta_decoder(const previous_dump& prev, const page_set& cur, int out_fd, bool out_is_copy_of_prev);
  ~delta_decoder();
  delta_decoder(const delta_decoder&) = delete;
  delta_decoder& operator=(const delta_decoder&) = delete;

  result<void> feed(std::span<const std::uint8_t> chunk);
  // After the last chunk: checks every page was produced; returns the hashes
  // of the rebuilt file and its tree digest.
  result<encode_result> finish();

 private:
  struct state;
  state* s_;
};

// Tree digest of a pages file by reading it (tests, and a fallback check).
result<encode_result> hash_pages_file(const page_set& set, int pages_fd);

}  // namespace migrated::images
