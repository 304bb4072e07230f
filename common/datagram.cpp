// Sealed UDP command datagrams.
//
// A datagram has no connection and so no handshake: everything the receiver
// needs to trust it travels inside it, the sender's certificate included.
// The signature covers the sender, nonce, timestamp and body as
// length-prefixed fields under their own domain label, so it can never be
// mistaken for a signature made for anything else with the same key. Checks
// run cheapest-first and in an order that leaks nothing: size and shape,
// then certificate and signature, and only for authentic datagrams the clock
// and the replay memory — an outsider can neither fill the replay memory
// nor learn our clock.
//
// The replay memory only has to cover the window in which a timestamp is
// accepted (± max_skew); it keeps twice that to survive a clock step.
#include "common/datagram.hpp"

#include "common/auth.hpp"

#include <algorithm>
#include <string>
#include <vector>

namespace migrated::datagram {
namespace {

constexpr std::string_view datagram_label = "migrated-v2 datagram";
constexpr std::chrono::milliseconds replay_window = 2 * max_skew;
constexpr std::size_t max_signature_bytes = 512;  // Ed25519: 64, ECDSA P-521: < 140
// Below this many entries expired ones are swept on every accept (cheap);
// above it, sweeps happen only when the memory is full, so a burst of
// commands costs amortised O(1) each.
constexpr std::size_t eager_sweep_below = 1024;

void append_u64(std::string& out, std::uint64_t v) {
  for (int shift = 56; shift >= 0; shift -= 8)
    out.push_back(static_cast<char>(v >> shift));
}

void append_field(std::string& out, std::string_view field) {
  const auto n = static_cast<std::uint32_t>(field.size());
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<char>(n >> shift));
  out.append(field);
}

std::string signed_part(std::string_view sender, std::uint64_t nonce, std::int64_t timestamp_ms,
                        std::string_view body) {
  std::string message;
  message.reserve(4 * 3 + datagram_label.size() + sender.size() + 16 + body.size());
  append_field(message, datagram_label);
  append_field(message, sender);
  append_u64(message, nonce);
  append_u64(message, static_cast<std::uint64_t>(timestamp_ms));
  append_field(message, body);
  return message;
}

std::int64_t unix_ms(clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

using seen_map = std::unordered_map<std::uint64_t, clock::time_point>;

bool expired(clock::time_point sent, clock::time_point now) {
  return sent < now - replay_window;
}

void sweep_expired(seen_map& seen, clock::time_point now) {
  std::erase_if(seen, [&](const auto& entry) { return expired(entry.second, now); });
}

}  // namespace

std::vector<std::uint8_t> seal(const credentials& me, const pb::Envelope& body, clock::time_point now) {
  pb::Datagram d;
  d.set_sender(me.self().name);
  d.set_nonce(auth::random_u64());
  d.set_timestamp_ms(unix_ms(now));
  d.set_body(body.SerializeAsString());
  const auto der = me.certificate_der();
  d.set_certificate(der.data(), der.size());
  const auto signature = me.sign(auth::as_bytes(signed_part(d.sender(), d.nonce(), d.timestamp_ms(), d.body())));
  d.set_signature(signature.data(), signature.size());
  std::vector<std::uint8_t> out(d.ByteSizeLong());
  d.SerializeWithCachedSizesToArray(out.data());
  return out;
}

replay_guard::verdict replay_guard::accept(std::uint64_t nonce, clock::time_point sent, clock::time_point now) {
  if (auto it = seen_.find(nonce); it != seen_.end()) {
    if (!expired(it->second, now)) return verdict::replay;
    seen_.erase(it);
  }
  if (seen_.size() < eager_sweep_below || seen_.size() >= max_entries) sweep_expired(seen_, now);
  if (seen_.size() >= max_entries) return verdict::full;
  seen_.emplace(nonce, sent);
  return verdict::fresh;
}

result<opened> open(const credentials& trust, std::span<const std::uint8_t> bytes,
                    replay_guard& guard, clock::time_point now) {
  if (bytes.size() > max_datagram_bytes)
    return fail(errc::protocol, "datagram of " + std::to_string(bytes.size()) +
                                    " bytes exceeds " + std::to_string(max_datagram_bytes));
  pb::Datagram d;
  if (!d.ParseFromArray(bytes.data(), static_cast<int>(bytes.size())))
    return fail(errc::protocol, "datagram is not a valid Datagram message");
  if (d.certificate().empty() || d.signature().empty())
    return fail(errc::protocol, "datagram carries no certificate or no signature");
  if (d.signature().size() > max_signature_bytes)
    return fail(errc::protocol, "datagram signature of " + std::to_string(d.signature().size()) + " bytes");

  const std::string part = signed_part(d.sender(), d.nonce(), d.timestamp_ms(), d.body());
  auto who = trust.verify_signed(auth::as_bytes(d.certificate()), auth::as_bytes(part), auth::as_bytes(d.signature()));
  if (!who) return std::unexpected(who.error().context("datagram"));
  if (who->name != d.sender())
    return fail(errc::auth, "datagram names its sender '" + d.sender() + "' but carries the certificate of " + who->name);

  // Compared in milliseconds first: a far-off timestamp would overflow the
  // clock's nanosecond representation.
  const std::int64_t now_ms = unix_ms(now);
  const std::int64_t limit_ms = max_skew.count();
  const std::int64_t sent_ms = d.timestamp_ms();
  if (sent_ms < now_ms - limit_ms || sent_ms > now_ms + limit_ms) {
    const bool ahead = sent_ms > now_ms;
    const auto sent_u = static_cast<std::uint64_t>(sent_ms);
    const auto now_u = static_cast<std::uint64_t>(now_ms);
    const std::uint64_t off = ahead ? sent_u - now_u : now_u - sent_u;  // no signed overflow
    return fail(errc::timeout, "stale datagram from " + d.sender() + ": timestamp is " +
                                   std::to_string(off) + " ms " + (ahead ? "ahead" : "behind") +
                                   " (limit " + std::to_string(limit_ms) + " ms)");
  }
  const auto sent = clock::time_point(std::chrono::milliseconds(sent_ms));

  opened out;
  if (!out.body.ParseFromString(d.body()))
    return fail(errc::protocol, "datagram from " + d.sender() + " has a malformed body");
  switch (guard.accept(d.nonce(), sent, now)) {
    case replay_guard::verdict::fresh: break;
    case replay_guard::verdict::replay:
      return fail(errc::already_exists, "replay of datagram " + std::to_string(d.nonce()) + " from " + d.sender());
    case replay_guard::verdict::full:
      return fail(errc::busy, "datagram from " + d.sender() + " refused: " + std::to_string(replay_guard::max_entries) +
                                  " datagrams arrived within " + std::to_string(replay_window.count() / 1000) +
                                  " s, and none may be forgotten before it expires");
  }
  out.sender = std::move(*who);
  return out;
}

}  // namespace migrated::datagram
