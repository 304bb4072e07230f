// Randomness and comparison on OpenSSL 3. A failing CSPRNG is a broken
// host, not a recoverable condition: it throws (a bug-class exception)
// instead of returning weak bytes. Comparisons use CRYPTO_memcmp so timing
// reveals nothing about how many leading bytes were right.
#include "common/auth.hpp"

#include <algorithm>
#include <cstring>
#include <stdexcept>

#include <openssl/crypto.h>
#include <openssl/rand.h>

namespace migrated::auth {

bool equal(std::span<const std::uint8_t> a, std::span<const std::uint8_t> b) {
  if (a.size() != b.size()) return false;
  if (a.empty()) return true;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

bytes random_bytes(std::size_t n) {
  bytes out(n);
  constexpr std::size_t max_step = 1 << 20;  // RAND_bytes takes an int
  for (std::size_t done = 0; done < n;) {
    const std::size_t step = std::min(max_step, n - done);
    if (RAND_bytes(out.data() + done, static_cast<int>(step)) != 1)
      throw std::runtime_error("the OS random number generator failed");
    done += step;
  }
  return out;
}

std::uint64_t random_u64() {
  const bytes raw = random_bytes(sizeof(std::uint64_t));
  std::uint64_t value = 0;
  std::memcpy(&value, raw.data(), sizeof value);
  return value;
}

std::span<const std::uint8_t> as_bytes(std::string_view s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

}  // namespace migrated::auth
