// XXH3-128 checksums of files and streams.
//
// XXH3 rather than a cryptographic hash: integrity against an attacker is
// already provided by the authenticated transport, so this only has to catch
// what goes wrong between the socket and the disk (a bad chunk offset, a short
// write, a decompression bug) — and it runs at memory speed, which matters
// when hashing a multi-gigabyte memory image inside the downtime window.
// Digests are stored in XXH128's canonical big-endian form so both ends and
// the wire agree on byte order regardless of host.
#include "common/hash.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <iterator>
#include <new>
#include <vector>

#include <xxhash.h>

namespace migrated {
namespace {

constexpr std::size_t read_chunk_bytes = 1 << 20;  // large reads, few syscalls

digest128 canonical(XXH128_hash_t hash) {
  XXH128_canonical_t c;
  XXH128_canonicalFromHash(&c, hash);
  digest128 out;
  static_assert(sizeof c.digest == std::tuple_size_v<digest128>);
  std::copy(std::begin(c.digest), std::end(c.digest), out.begin());
  return out;
}

XXH3_state_t* state(void* p) { return static_cast<XXH3_state_t*>(p); }

}  // namespace

xxh128_stream::xxh128_stream() : state_(XXH3_createState()) {
  if (state_ == nullptr) throw std::bad_alloc();
  XXH3_128bits_reset(state(state_));
}

xxh128_stream::~xxh128_stream() { XXH3_freeState(state(state_)); }

void xxh128_stream::update(std::span<const std::uint8_t> data) {
  if (data.empty()) return;
  XXH3_128bits_update(state(state_), data.data(), data.size());
}

digest128 xxh128_stream::digest() const {
  return canonical(XXH3_128bits_digest(state(state_)));
}

digest128 xxh128(std::span<const std::uint8_t> data) {
  return canonical(XXH3_128bits(data.data(), data.size()));
}

std::uint64_t xxh3_64(std::span<const std::uint8_t> data) { return XXH3_64bits(data.data(), data.size()); }

result<digest128> hash_file(const std::filesystem::path& file) {
  xxh128_stream stream;
  std::vector<std::uint8_t> buffer(read_chunk_bytes);
  const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) return fail_errno(errno, "hash " + file.string());
  for (;;) {
    const ssize_t n = ::read(fd, buffer.data(), buffer.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      ::close(fd);
      return fail_errno(err, "hash " + file.string());
    }
    if (n == 0) break;
    stream.update({buffer.data(), static_cast<std::size_t>(n)});
  }
  ::close(fd);
  return stream.digest();
}

std::string hex(std::uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
  return buf;
}

std::string to_hex(std::span<const std::uint8_t> data) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  out.reserve(data.size() * 2);
  for (const std::uint8_t b : data) {
    out.push_back(digits[b >> 4]);
    out.push_back(digits[b & 0x0f]);
  }
  return out;
}

}  // namespace migrated
