// The destination's page-delta decoder (daemon/images/delta_decode.cpp) on
// pagemaps and op streams from the input (delta_input.hpp), the previous
// pages file made from page indices, the output on a memfd. Pagemaps go
// through read_page_set as the daemon reads them, and sets claiming more
// than max_fuzz_pages are skipped as the daemon refuses them first.
// Invariant: a stream the decoder accepts rebuilt a file whose digest, read
// back, is the one it reports, with one hash per page.
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <vector>

#include "delta_input.hpp"
#include "fuzz_support.hpp"
#include "images/delta.hpp"

using namespace migrated;
using namespace migrated::images;

namespace {

std::optional<page_set> load(std::span<const std::uint8_t> image, const char* name) {
  const auto dir = fuzz::scratch("delta");
  {
    std::ofstream f(dir / name, std::ios::binary | std::ios::trunc);
    f.write(reinterpret_cast<const char*>(image.data()), std::streamsize(image.size()));
  }
  auto set = read_page_set(dir, name);
  if (!set || set->stored_pages > fuzz::max_fuzz_pages) return std::nullopt;
  return std::move(*set);
}

struct memfd {
  int fd = ::memfd_create("fuzz-delta", MFD_CLOEXEC);
  ~memfd() { ::close(fd); }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  auto in = fuzz::split_delta_input({data, size});
  if (!in) return 0;
  auto cur = load(in->cur_pagemap, "cur-pagemap.img");
  if (!cur) return 0;
  std::optional<page_set> prev;
  if (!in->prev_pagemap.empty() && !(prev = load(in->prev_pagemap, "prev-pagemap.img"))) return 0;

  memfd prev_file, out;
  FUZZ_CHECK(prev_file.fd >= 0 && out.fd >= 0);
  page_hashes prev_hashes;
  previous_dump pd;
  if (prev) {
    std::vector<std::uint8_t> pages(prev->stored_pages * page_bytes);
    for (std::uint64_t i = 0; i < prev->stored_pages; ++i) fuzz::previous_page(i, pages.data() + i * page_bytes);
    FUZZ_CHECK(::pwrite(prev_file.fd, pages.data(), pages.size(), 0) == ssize_t(pages.size()));
    auto h = hash_pages_file(*prev, prev_file.fd);
    FUZZ_CHECK(h.has_value(), h.error().message);
    prev_hashes = std::move(h->hashes);
    pd = {&*prev, &prev_hashes, prev_file.fd};
    if (in->in_place)  // as the destination does: the output starts as a copy
      FUZZ_CHECK(::pwrite(out.fd, pages.data(), pages.size(), 0) == ssize_t(pages.size()));
  }
  const bool in_place = in->in_place && prev && cur->same_layout(*prev);

  delta_decoder decoder(pd, *cur, out.fd, in_place);
  const std::size_t chunk = in->chunk == 0 ? std::max<std::size_t>(in->stream.size(), 1) : in->chunk;
  for (std::size_t at = 0; at < in->stream.size(); at += chunk)
    if (!decoder.feed(in->stream.subspan(at, std::min(chunk, in->stream.size() - at)))) return 0;
  auto done = decoder.finish();
  if (!done) {
    FUZZ_CHECK(!done.error().message.empty());
    return 0;
  }
  FUZZ_CHECK(done->hashes.size() == cur->stored_pages);
  auto check = hash_pages_file(*cur, out.fd);
  FUZZ_CHECK(check.has_value(), check.error().message);
  FUZZ_CHECK(check->hashes == done->hashes, "the reported page hashes are not the file's");
  FUZZ_CHECK(check->tree_digest == done->tree_digest);
  return 0;
}
