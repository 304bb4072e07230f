// UDP command datagrams (common/datagram.hpp) opened with a fixed key, a
// fixed clock and a fresh replay guard. The first byte chooses how the rest
// is used:
//   even  the datagram as received (only the seeds carry a valid tag);
//   odd   the rest parsed as a Datagram and given the tag it needs under
//         the fixed key (the tag as docs/protocol.md defines it), which
//         reaches the clock, body and replay checks behind the tag.
// Invariants: an opened datagram opens a second time only as a replay; a
// re-tagged one never fails its tag check (else this file and the format
// disagree); errors are the documented codes.
#include <cstdint>
#include <span>
#include <string>

#include "common/datagram.hpp"
#include "fuzz_support.hpp"

using namespace migrated;
namespace dg = migrated::datagram;

namespace {

const auth::psk key{auth::bytes(32, 0x42)};
const dg::clock::time_point now{std::chrono::milliseconds(1'800'000'000'000)};

void put_field(std::string& out, std::string_view field) {
  const auto n = static_cast<std::uint32_t>(field.size());
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<char>(n >> shift));
  out.append(field);
}

void put_u64(std::string& out, std::uint64_t v) {
  for (int shift = 56; shift >= 0; shift -= 8) out.push_back(static_cast<char>(v >> shift));
}

void retag(pb::Datagram& d) {
  std::string message;
  put_field(message, "migrated-v1 datagram");
  put_field(message, d.sender());
  put_u64(message, d.nonce());
  put_u64(message, static_cast<std::uint64_t>(d.timestamp_ms()));
  put_field(message, d.body());
  const auto m = auth::hmac_sha256(key.key, {auth::as_bytes(message)});
  d.set_mac(m.data(), m.size());
}

bool documented(errc c) {
  return c == errc::protocol || c == errc::auth || c == errc::timeout || c == errc::already_exists ||
         c == errc::busy;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const bool retagged = (data[0] & 1) != 0;
  std::span<const std::uint8_t> bytes(data + 1, size - 1);
  std::string sealed;
  if (retagged) {
    pb::Datagram d;
    if (!d.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) return 0;
    retag(d);
    sealed = d.SerializeAsString();
    bytes = auth::as_bytes(sealed);
  }
  dg::replay_guard guard;
  auto opened = dg::open(key, bytes, guard, now);
  if (!opened) {
    FUZZ_CHECK(documented(opened.error().code), opened.error().message);
    if (retagged && bytes.size() <= dg::max_datagram_bytes)
      FUZZ_CHECK(opened.error().code != errc::auth, opened.error().message);
    return 0;
  }
  FUZZ_CHECK(guard.size() == 1);
  auto twice = dg::open(key, bytes, guard, now);
  FUZZ_CHECK(!twice && twice.error().code == errc::already_exists);
  return 0;
}
