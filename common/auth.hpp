// Randomness and constant-time comparison, on OpenSSL. Identities and the
// protection of links live in common/credentials.hpp and TLS
// (transport/tls.hpp); this is what the rest of the code needs besides.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

namespace migrated::auth {

using bytes = std::vector<std::uint8_t>;

// Constant-time comparison (lengths must also match).
bool equal(std::span<const std::uint8_t> a, std::span<const std::uint8_t> b);

bytes random_bytes(std::size_t n);  // from the OS CSPRNG
std::uint64_t random_u64();

std::span<const std::uint8_t> as_bytes(std::string_view s);

}  // namespace migrated::auth
