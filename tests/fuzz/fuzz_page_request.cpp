// The page-server protocol as a relay meets it (daemon/pages): any bytes as
// the stream lazy-pages sends, fed to request_reader in pieces whose sizes
// the input's first byte chooses; and each 24-byte piece also as the page
// server's answer to the last request. Invariants: an accepted request is a
// close or a GET of 1..max_request_pages aligned pages that do not wrap,
// and a GET re-encodes to the bytes it came from; after the first refusal
// nothing more is accepted; an accepted answer has 1..asked pages.
#include <cstdint>
#include <span>

#include "fuzz_support.hpp"
#include "pages/page_server_protocol.hpp"

using namespace migrated;
using namespace migrated::pages;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::size_t piece = 1 + data[0] % 40;
  std::span<const std::uint8_t> rest(data + 1, size - 1);
  request_reader reader;
  bool refused = false;
  std::size_t consumed = 0;
  page_request last{.pid = 1, .vaddr = 0x1000, .pages = 16};
  while (!rest.empty()) {
    const auto now = rest.first(std::min(piece, rest.size()));
    reader.feed(now);
    rest = rest.subspan(now.size());
    while (auto r = reader.next()) {
      FUZZ_CHECK(!refused, "a request accepted after a refusal");
      const auto bytes = std::span<const std::uint8_t>(data + 1 + consumed, iov_bytes);
      consumed += iov_bytes;
      if (!*r) {
        refused = true;
        FUZZ_CHECK(r->error().code == errc::protocol && !r->error().message.empty());
        continue;
      }
      const page_request& q = **r;
      if (q.close) continue;  // CLOSE or FORCE_CLOSE, both re-encoded as CLOSE (the server treats them alike)
      FUZZ_CHECK(std::equal(bytes.begin(), bytes.end(), encode_request(q).begin()), "re-encodes differently");
      FUZZ_CHECK(q.pages >= 1 && q.pages <= max_request_pages);
      FUZZ_CHECK(q.vaddr % page_size == 0);
      FUZZ_CHECK(q.vaddr <= UINT64_MAX - std::uint64_t(q.pages) * page_size);
      FUZZ_CHECK(q.pid != 0);
      last = q;
    }
  }
  for (std::size_t at = 1; at + iov_bytes <= size; at += iov_bytes) {
    auto a = parse_answer(std::span<const std::uint8_t, iov_bytes>(data + at, iov_bytes), last);
    if (a) FUZZ_CHECK(*a >= 1 && *a <= last.pages);
    else FUZZ_CHECK(a.error().code == errc::protocol);
  }
  return 0;
}
