// Unit tests for daemon/pages/page_server_protocol: the byte layout of
// CRIU's struct page_server_iov (criu/page-xfer.c), the requests a relay
// accepts from lazy-pages and the answers it accepts from the dump's page
// server, and the stream splitter fed in pieces of any size.
#include <catch2/catch.hpp>

#include <vector>

#include "pages/page_server_protocol.hpp"

using namespace migrated;
using namespace migrated::pages;

namespace {

using iov_span = std::span<const std::uint8_t, iov_bytes>;

std::array<std::uint8_t, iov_bytes> raw(std::uint32_t cmd, std::uint32_t nr, std::uint64_t vaddr, std::uint64_t dst) {
  return encode(page_server_iov{.cmd = cmd, .nr_pages = nr, .vaddr = vaddr, .dst_id = dst});
}

errc code_of_request(const std::array<std::uint8_t, iov_bytes>& b) {
  auto r = parse_request(iov_span(b));
  REQUIRE_FALSE(r);
  INFO(r.error().message);
  CHECK_FALSE(r.error().message.empty());
  return r.error().code;
}

}  // namespace

TEST_CASE("page_server_iov: CRIU's layout, in the host's byte order", "[pages]") {
  const auto b = raw(ps_iov_get, 3, 0x7f0012345000ull, 42);
  // u32 cmd, u32 nr_pages, u64 vaddr, u64 dst_id, little-endian on x86 and arm64
  const std::array<std::uint8_t, iov_bytes> expected{7, 0, 0, 0, 3, 0, 0, 0,  0x00, 0x50, 0x34, 0x12,
                                                     0, 0x7f, 0, 0, 42, 0, 0, 0, 0, 0, 0, 0};
  CHECK(b == expected);
  const page_server_iov back = decode(iov_span(b));
  CHECK(back.command() == ps_iov_get);
  CHECK(back.flags() == 0);
  CHECK(back.nr_pages == 3);
  CHECK(back.vaddr == 0x7f0012345000ull);
  CHECK(back.dst_id == 42);
  const page_server_iov add = decode(iov_span(encode_answer({.pid = 42, .vaddr = 0x1000, .pages = 3}, 2)));
  CHECK(add.command() == ps_iov_add_f);
  CHECK(add.flags() == pe_present);
}

TEST_CASE("requests from lazy-pages: a GET of bounded, aligned memory, or the close", "[pages]") {
  auto get = parse_request(iov_span(raw(ps_iov_get, 16, 0x400000, 1)));
  REQUIRE(get);
  CHECK_FALSE(get->close);
  CHECK(get->pid == 1);
  CHECK(get->vaddr == 0x400000);
  CHECK(get->pages == 16);
  CHECK(encode_request(*get) == raw(ps_iov_get, 16, 0x400000, 1));

  for (std::uint32_t c : {ps_iov_close, ps_iov_force_close}) {
    auto close = parse_request(iov_span(raw(c, 0, 0, 0)));
    REQUIRE(close);
    CHECK(close->close);
  }
  CHECK(encode_request(page_request{.close = true}) == raw(ps_iov_close, 0, 0, 0));

  CHECK(code_of_request(raw(ps_iov_close, 1, 0, 0)) == errc::protocol);                 // a close with pages
  CHECK(code_of_request(raw(ps_iov_add_f | pe_present << 16, 1, 0x1000, 1)) == errc::protocol);  // pages pushed at us
  CHECK(code_of_request(raw(ps_iov_get | 1u << 16, 1, 0x1000, 1)) == errc::protocol);  // flags on a GET
  CHECK(code_of_request(raw(3 /* OPEN */, 0, 0, 1)) == errc::protocol);
  CHECK(code_of_request(raw(ps_iov_get, 0, 0x1000, 1)) == errc::protocol);             // no pages
  CHECK(code_of_request(raw(ps_iov_get, max_request_pages + 1, 0x1000, 1)) == errc::protocol);
  CHECK(code_of_request(raw(ps_iov_get, 1, 0x1001, 1)) == errc::protocol);             // not aligned
  CHECK(code_of_request(raw(ps_iov_get, 2, 0xfffffffffffff000ull, 1)) == errc::protocol);  // wraps
  CHECK(code_of_request(raw(ps_iov_get, 1, 0x1000, 0)) == errc::protocol);             // no task
  CHECK(code_of_request(raw(ps_iov_get, 1, 0x1000, 1ull << 40)) == errc::protocol);    // no pid
  // Memory up to the last address whose end is representable.
  CHECK(parse_request(iov_span(raw(ps_iov_get, 1, 0xffffffffffffe000ull, 1))).has_value());
  CHECK(code_of_request(raw(ps_iov_get, 1, 0xfffffffffffff000ull, 1)) == errc::protocol);
}

TEST_CASE("answers from the dump's page server: the pages asked for, or fewer, and nothing else", "[pages]") {
  const page_request asked{.pid = 7, .vaddr = 0x7f0000000000ull, .pages = 8};
  auto all = parse_answer(iov_span(encode_answer(asked, 8)), asked);
  REQUIRE(all);
  CHECK(*all == 8);
  auto fewer = parse_answer(iov_span(encode_answer(asked, 3)), asked);
  REQUIRE(fewer);
  CHECK(*fewer == 3);
  const auto refused = [&](const std::array<std::uint8_t, iov_bytes>& b) {
    auto r = parse_answer(iov_span(b), asked);
    REQUIRE_FALSE(r);
    INFO(r.error().message);
    return r.error().code;
  };
  CHECK(refused(encode_answer(asked, 9)) == errc::protocol);  // more than asked
  CHECK(refused(encode_answer(asked, 0)) == errc::protocol);  // nothing
  CHECK(refused(raw(ps_iov_add_f | pe_present << 16, 8, asked.vaddr + page_size, 7)) == errc::protocol);
  CHECK(refused(raw(ps_iov_add_f | pe_present << 16, 8, asked.vaddr, 8)) == errc::protocol);  // another task
  CHECK(refused(raw(ps_iov_add_f, 8, asked.vaddr, 7)) == errc::protocol);                     // not present
  CHECK(refused(raw(ps_iov_get, 8, asked.vaddr, 7)) == errc::protocol);
  CHECK(parse_answer(iov_span(encode_answer(asked, 1)), page_request{.close = true}).error().code == errc::internal);
}

TEST_CASE("request_reader: requests in order from pieces of any size; the first bad one ends the stream", "[pages]") {
  std::vector<std::uint8_t> stream;
  for (std::uint32_t i = 1; i <= 5; ++i) {
    const auto b = raw(ps_iov_get, i, 0x10000 * i, 1);
    stream.insert(stream.end(), b.begin(), b.end());
  }
  SECTION("one byte at a time") {
    request_reader r;
    std::vector<page_request> got;
    for (std::uint8_t byte : stream) {
      r.feed(std::span(&byte, 1));
      while (auto next = r.next()) {
        REQUIRE(*next);
        got.push_back(**next);
      }
    }
    REQUIRE(got.size() == 5);
    for (std::uint32_t i = 1; i <= 5; ++i) {
      CHECK(got[i - 1].pages == i);
      CHECK(got[i - 1].vaddr == 0x10000 * i);
    }
    CHECK(r.buffered() == 0);
  }
  SECTION("all at once, then a bad request, then good ones") {
    const auto bad = raw(ps_iov_get, 1, 0x10001, 1);
    stream.insert(stream.begin() + 2 * iov_bytes, bad.begin(), bad.end());
    request_reader r;
    r.feed(stream);
    int ok = 0;
    std::optional<error> first_error;
    while (auto next = r.next()) {
      if (!*next) {
        first_error = next->error();
        continue;
      }
      ++ok;
    }
    CHECK(ok == 2);
    REQUIRE(first_error);
    CHECK(first_error->code == errc::protocol);
    CHECK_FALSE(r.next().has_value());  // refused from then on
    r.feed(stream);
    CHECK_FALSE(r.next().has_value());
  }
  SECTION("a partial request waits for the rest") {
    request_reader r;
    r.feed(std::span(stream).first(iov_bytes + 10));
    REQUIRE(r.next().has_value());
    CHECK_FALSE(r.next().has_value());
    CHECK(r.buffered() == 10);
    r.feed(std::span(stream).subspan(iov_bytes + 10, iov_bytes - 10));
    auto second = r.next();
    REQUIRE(second.has_value());
    REQUIRE(*second);
    CHECK((*second)->pages == 2);
  }
}
