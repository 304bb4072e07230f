// CRIU image files as the daemon reads them (daemon/images/criu_image.hpp,
// page_set.hpp): the entry framing and message parsing of any image, and a
// pagemap through read_page_set from a file. A received round's pagemap
// comes from the peer, so any bytes are possible. Invariants on an
// accepted page_set: the runs are consistent (the check the delta code
// makes of hand-built sets), the layout equals itself, and every stored
// page is found again at its own vaddr.
#include <cstdint>
#include <fstream>
#include <span>

#include "fuzz_support.hpp"
#include "images/criu_image.hpp"
#include "images/delta_format.hpp"
#include "images/page_set.hpp"

using namespace migrated;
using namespace migrated::images;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::uint8_t> file(data, size);
  std::size_t entries = 0;
  (void)criu_image::for_each_entry(file, criu_image::pagemap_magic,
                                   [&](std::span<const std::uint8_t> message) -> result<void> {
                                     FUZZ_CHECK(message.data() >= data && message.data() + message.size() <= data + size);
                                     ++entries;
                                     auto e = criu_image::parse<criu::PagemapEntry>(message, "entry");
                                     if (!e) return std::unexpected(e.error());
                                     return {};
                                   });

  const auto& dir = fuzz::scratch("criu_image");
  {
    std::ofstream out(dir / "pagemap-1.img", std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), std::streamsize(size));
  }
  auto set = read_page_set(dir, "pagemap-1.img");
  if (!set) {
    FUZZ_CHECK(set.error().code == errc::protocol, set.error().message);
    return 0;
  }
  FUZZ_CHECK(set->runs.size() + 1 == entries);
  FUZZ_CHECK(is_pages_file(set->pages_name), set->pages_name);
  auto consistent = detail::check_set(*set, "fuzzed");
  FUZZ_CHECK(consistent.has_value(), consistent.error().message);
  FUZZ_CHECK(set->same_layout(*set));
  // Every stored page (a bounded sample of huge sets) maps back to itself.
  const std::uint64_t step = set->stored_pages / 4096 + 1;
  for (std::uint64_t i = 0; i < set->stored_pages; i += step) {
    const std::uint64_t vaddr = set->vaddr_of(i);
    const auto found = set->find(vaddr);
    FUZZ_CHECK(found && *found == i, "stored page " + std::to_string(i));
  }
  FUZZ_CHECK(!set->find(1));  // never an unaligned address
  return 0;
}
