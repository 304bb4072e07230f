// Authentication primitives: the pre-shared key, HMAC-SHA256, randomness, and
// the proofs of the mutual challenge–response handshake (docs/protocol.md):
//
//   client -> Hello{nonce_c}      server -> Hello{nonce_s}
//   server -> AuthProof{proof(psk, "server", ...)}   (server proves first)
//   client -> AuthProof{proof(psk, "client", ...)}
//
// Each proof binds both nonces and both node names, so a proof can neither
// be replayed in another session nor reflected back to its sender. After
// the handshake every frame is tagged with a per-direction session key.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <initializer_list>
#include <span>
#include <string_view>
#include <vector>

#include "common/error.hpp"

namespace migrated::auth {

constexpr std::size_t mac_bytes = 32;     // HMAC-SHA256
constexpr std::size_t nonce_bytes = 32;
constexpr std::size_t min_psk_bytes = 16; // shorter keys are guessable

using mac = std::array<std::uint8_t, mac_bytes>;
using bytes = std::vector<std::uint8_t>;

struct psk {
  bytes key;
};

// Reads the key file: its bytes with trailing whitespace removed. Refuses a
// file that is group- or world-readable ("psk file /x is readable by others
// (mode 0644): chmod 600 it"), missing, or shorter than min_psk_bytes.
result<psk> load_psk(const std::filesystem::path& file);

// HMAC-SHA256 over the concatenation of parts.
mac hmac_sha256(std::span<const std::uint8_t> key,
                std::initializer_list<std::span<const std::uint8_t>> parts);

// Constant-time comparison (lengths must also match).
bool equal(std::span<const std::uint8_t> a, std::span<const std::uint8_t> b);

bytes random_bytes(std::size_t n);  // from the OS CSPRNG
std::uint64_t random_u64();

std::span<const std::uint8_t> as_bytes(std::string_view s);

// Handshake proof by `label` ("server" or "client"):
// HMAC(psk, "migrated-v1 " label | len-prefixed nonce_c, nonce_s, node_c, node_s).
mac proof(const psk& key, std::string_view label,
          std::span<const std::uint8_t> nonce_client,
          std::span<const std::uint8_t> nonce_server,
          std::string_view node_client, std::string_view node_server);

// Per-direction frame keys derived from the psk and both nonces.
struct session_keys {
  bytes client_to_server;
  bytes server_to_client;
};
session_keys derive_session_keys(const psk& key,
                                 std::span<const std::uint8_t> nonce_client,
                                 std::span<const std::uint8_t> nonce_server);

}  // namespace migrated::auth
