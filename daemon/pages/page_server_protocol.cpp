// CRIU writes struct page_server_iov with send(2) of the struct itself, so
// its fields are in the host's byte order; both ends of a migration are the
// same architecture (the handshake compares them), and memcpy into the
// fields keeps this file free of alignment assumptions.
#include "pages/page_server_protocol.hpp"

#include <cstdio>
#include <cstring>
#include <string>

namespace migrated::pages {

namespace {

// 1..max pages at a page-aligned address, the end inside the address space.
result<void> check_range(std::uint64_t vaddr, std::uint32_t pages, std::uint32_t max, const char* what) {
  if (pages == 0 || pages > max)
    return fail(errc::protocol, std::string(what) + " of " + std::to_string(pages) + " pages (1.." +
                                    std::to_string(max) + ")");
  if (vaddr % page_size != 0) return fail(errc::protocol, std::string(what) + " at " + hex(vaddr) + ": not page aligned");
  if (vaddr > UINT64_MAX - std::uint64_t(pages) * page_size)
    return fail(errc::protocol, std::string(what) + " at " + hex(vaddr) + " of " + std::to_string(pages) +
                                    " pages runs past the end of the address space");
  return {};
}

}  // namespace

std::array<std::uint8_t, iov_bytes> encode(const page_server_iov& iov) {
  std::array<std::uint8_t, iov_bytes> out{};
  std::memcpy(out.data(), &iov.cmd, 4);
  std::memcpy(out.data() + 4, &iov.nr_pages, 4);
  std::memcpy(out.data() + 8, &iov.vaddr, 8);
  std::memcpy(out.data() + 16, &iov.dst_id, 8);
  return out;
}

page_server_iov decode(std::span<const std::uint8_t, iov_bytes> bytes) {
  page_server_iov iov;
  std::memcpy(&iov.cmd, bytes.data(), 4);
  std::memcpy(&iov.nr_pages, bytes.data() + 4, 4);
  std::memcpy(&iov.vaddr, bytes.data() + 8, 8);
  std::memcpy(&iov.dst_id, bytes.data() + 16, 8);
  return iov;
}

result<page_request> parse_request(std::span<const std::uint8_t, iov_bytes> bytes) {
  const page_server_iov iov = decode(bytes);
  if (iov.cmd == ps_iov_close || iov.cmd == ps_iov_force_close) {
    if (iov.nr_pages != 0 || iov.vaddr != 0 || iov.dst_id != 0)
      return fail(errc::protocol, "page request: a close that carries an address or pages");
    return page_request{.close = true};
  }
  if (iov.command() != ps_iov_get || iov.flags() != 0)
    return fail(errc::protocol, "page request: command " + hex(iov.cmd) + " (only GET and CLOSE are asked)");
  if (iov.dst_id == 0 || iov.dst_id > INT32_MAX)
    return fail(errc::protocol, "page request: task " + std::to_string(iov.dst_id) + " is no pid");
  if (auto ok = check_range(iov.vaddr, iov.nr_pages, max_request_pages, "page request"); !ok)
    return std::unexpected(ok.error());
  return page_request{.close = false, .pid = iov.dst_id, .vaddr = iov.vaddr, .pages = iov.nr_pages};
}

std::array<std::uint8_t, iov_bytes> encode_request(const page_request& r) {
  if (r.close) return encode(page_server_iov{.cmd = ps_iov_close});
  return encode(page_server_iov{.cmd = ps_iov_get, .nr_pages = r.pages, .vaddr = r.vaddr, .dst_id = r.pid});
}

result<std::uint32_t> parse_answer(std::span<const std::uint8_t, iov_bytes> bytes, const page_request& asked) {
  const page_server_iov iov = decode(bytes);
  if (asked.close) return fail(errc::internal, "page answer: no pages were asked for");
  if (iov.command() != ps_iov_add_f || (iov.flags() & pe_present) == 0)
    return fail(errc::protocol, "page answer: command " + hex(iov.cmd) + " (expected pages, ADD_F|PRESENT)");
  if (iov.dst_id != asked.pid || iov.vaddr != asked.vaddr)
    return fail(errc::protocol, "page answer for task " + std::to_string(iov.dst_id) + " at " + hex(iov.vaddr) +
                                    " to a request for task " + std::to_string(asked.pid) + " at " + hex(asked.vaddr));
  if (auto ok = check_range(iov.vaddr, iov.nr_pages, asked.pages, "page answer"); !ok)
    return std::unexpected(ok.error());
  return iov.nr_pages;
}

std::array<std::uint8_t, iov_bytes> encode_answer(const page_request& asked, std::uint32_t pages) {
  return encode(page_server_iov{.cmd = ps_iov_add_f | pe_present << 16,
                                .nr_pages = pages,
                                .vaddr = asked.vaddr,
                                .dst_id = asked.pid});
}

void request_reader::feed(std::span<const std::uint8_t> bytes) {
  if (failed_) return;
  // What next() has parsed goes.
  pending_.erase(pending_.begin(), pending_.begin() + static_cast<std::ptrdiff_t>(offset_));
  offset_ = 0;
  pending_.insert(pending_.end(), bytes.begin(), bytes.end());
}

std::optional<result<page_request>> request_reader::next() {
  if (failed_ || buffered() < iov_bytes) return std::nullopt;
  const auto r = parse_request(std::span<const std::uint8_t, iov_bytes>(pending_.data() + offset_, iov_bytes));
  offset_ += iov_bytes;
  if (!r) failed_ = true;
  return r;
}

}  // namespace migrated::pages
