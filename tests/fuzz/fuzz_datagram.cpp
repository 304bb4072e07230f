// UDP command datagrams (common/datagram.hpp) opened by a node of a fixed
// fleet (tests/fuzz/fleet.hpp), with a fixed clock and a fresh replay
// guard. The first byte chooses how the rest is used:
//   even  the datagram as received: its certificate field is whatever the
//         input holds, so this is also the certificate decoder (DER, chain,
//         name and role) and the signature check;
//   odd   the rest parsed as a Datagram, given the controller's certificate
//         and the signature it needs (as docs/protocol.md defines it), which
//         reaches the clock, body and replay checks behind the signature.
// Invariants: an opened datagram opens a second time only as a replay; a
// re-signed one never fails authentication (else this file and the format
// disagree); errors are the documented codes.
#include <cstdint>
#include <span>
#include <string>

#include "common/auth.hpp"
#include "common/datagram.hpp"
#include "fleet.hpp"
#include "fuzz_support.hpp"

using namespace migrated;
namespace dg = migrated::datagram;

namespace {

const dg::clock::time_point now{std::chrono::milliseconds(1'800'000'000'000)};

void put_field(std::string& out, std::string_view field) {
  const auto n = static_cast<std::uint32_t>(field.size());
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<char>(n >> shift));
  out.append(field);
}

void put_u64(std::string& out, std::uint64_t v) {
  for (int shift = 56; shift >= 0; shift -= 8) out.push_back(static_cast<char>(v >> shift));
}

void resign(pb::Datagram& d, const credentials& signer) {
  d.set_sender(signer.self().name);
  const auto der = signer.certificate_der();
  d.set_certificate(der.data(), der.size());
  std::string message;
  put_field(message, "migrated-v2 datagram");
  put_field(message, d.sender());
  put_u64(message, d.nonce());
  put_u64(message, static_cast<std::uint64_t>(d.timestamp_ms()));
  put_field(message, d.body());
  const auto sig = signer.sign(auth::as_bytes(message));
  d.set_signature(sig.data(), sig.size());
}

bool documented(errc c) {
  return c == errc::protocol || c == errc::auth || c == errc::timeout || c == errc::already_exists ||
         c == errc::busy;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const credentials& node = fuzzing::fleet_member("edge-a");
  const bool resigned = (data[0] & 1) != 0;
  std::span<const std::uint8_t> bytes(data + 1, size - 1);
  std::string sealed;
  if (resigned) {
    pb::Datagram d;
    if (!d.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) return 0;
    resign(d, fuzzing::fleet_member("ctl-1"));
    sealed = d.SerializeAsString();
    bytes = auth::as_bytes(sealed);
  }
  dg::replay_guard guard;
  auto opened = dg::open(node, bytes, guard, now);
  if (!opened) {
    FUZZ_CHECK(documented(opened.error().code), opened.error().message);
    if (resigned && bytes.size() <= dg::max_datagram_bytes)
      FUZZ_CHECK(opened.error().code != errc::auth, opened.error().message);
    return 0;
  }
  FUZZ_CHECK(guard.size() == 1);
  FUZZ_CHECK(!opened->sender.name.empty());
  auto twice = dg::open(node, bytes, guard, now);
  FUZZ_CHECK(!twice && twice.error().code == errc::already_exists);
  return 0;
}
