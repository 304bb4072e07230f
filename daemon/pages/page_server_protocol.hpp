// CRIU's page-server protocol as post-copy meets it (criu/page-xfer.c of
// CRIU 4.1): `criu lazy-pages` asks the dump's page server for pages and
// the server answers with their bytes. Every message starts with one
// struct page_server_iov in the host's byte order:
//
//   u32 cmd (low 16 bits the command, high 16 bits its PE_* flags)
//   u32 nr_pages | u64 vaddr | u64 dst_id
//
// lazy-pages → server: GET {nr_pages, vaddr, dst_id = the task's virtual
//   pid}, and at the end CLOSE (all other fields 0);
// server → lazy-pages: ADD_F|PE_PRESENT {nr_pages, vaddr, dst_id} echoing
//   the request, nr_pages possibly fewer, then nr_pages × 4 KiB of page
//   data; after CLOSE a 32-bit status (0).
//
// The daemons relay these between the CRIU processes on their own hosts
// over the authenticated link (docs/design.md, "Post-copy"), so each side
// parses what its CRIU sends before anything crosses: a request must name
// page-aligned, non-wrapping memory of a bounded size, and an answer must be
// the one asked for, before its page bytes are read.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "common/error.hpp"
#include "common/hash.hpp"  // hex(), for the messages about pages

namespace migrated::pages {

inline constexpr std::size_t iov_bytes = 24;
inline constexpr std::uint64_t page_size = 4096;

inline constexpr std::uint32_t ps_iov_add_f = 6;
inline constexpr std::uint32_t ps_iov_get = 7;
inline constexpr std::uint32_t ps_iov_close = 0x1023;
inline constexpr std::uint32_t ps_iov_force_close = 0x1024;
inline constexpr std::uint32_t pe_present = 4;  // images/page_set.hpp reads the same flag from pagemaps

// The most pages one request may ask for: lazy-pages asks for at most a
// run it knows (faults one page, background runs in chunks); 4 GiB is far
// beyond any and keeps vaddr + length from overflowing.
inline constexpr std::uint32_t max_request_pages = 1u << 20;

struct page_server_iov {
  std::uint32_t cmd = 0;  // command | flags << 16, as on the wire
  std::uint32_t nr_pages = 0;
  std::uint64_t vaddr = 0;
  std::uint64_t dst_id = 0;

  std::uint32_t command() const { return cmd & 0xffff; }
  std::uint32_t flags() const { return cmd >> 16; }
};


std::array<std::uint8_t, iov_bytes> encode(const page_server_iov& iov);
page_server_iov decode(std::span<const std::uint8_t, iov_bytes> bytes);

// What lazy-pages asked.
struct page_request {
  bool close = false;      // CLOSE or FORCE_CLOSE: the end of the transfer
  std::uint64_t pid = 0;   // the task's virtual pid (GET's dst_id)
  std::uint64_t vaddr = 0;
  std::uint32_t pages = 0;
};

// A message from lazy-pages: a GET of 1..max_request_pages page-aligned
// pages that do not wrap, or a close. errc::protocol names what is wrong.
result<page_request> parse_request(std::span<const std::uint8_t, iov_bytes> bytes);
std::array<std::uint8_t, iov_bytes> encode_request(const page_request& r);

// The header of the page server's answer to `asked`: ADD_F with
// PE_PRESENT for the same task and address and 1..asked.pages pages.
// Returns how many pages of data follow.
result<std::uint32_t> parse_answer(std::span<const std::uint8_t, iov_bytes> bytes, const page_request& asked);
std::array<std::uint8_t, iov_bytes> encode_answer(const page_request& asked, std::uint32_t pages);

// Splits a byte stream from lazy-pages into requests: feed() what arrives,
// in pieces of any size; next() yields each whole request in order, or the
// first error (after which the stream is refused: nothing more is parsed).
class request_reader {
 public:
  void feed(std::span<const std::uint8_t> bytes);
  std::optional<result<page_request>> next();
  std::size_t buffered() const { return pending_.size() - offset_; }

 private:
  std::vector<std::uint8_t> pending_;
  std::size_t offset_ = 0;
  bool failed_ = false;
};

}  // namespace migrated::pages
