// Authentication primitives on OpenSSL 3.
//
// Why it looks the way it does:
// - Every MAC input is a sequence of length-prefixed fields (u32 big-endian
//   length, then the bytes), starting with a domain label. Plain
//   concatenation would let ("ab", "c") and ("a", "bc") produce the same tag;
//   with prefixes no two different field lists share an encoding, and the
//   label keeps a handshake proof from ever equalling a session key or a
//   datagram tag.
// - Tags are compared with CRYPTO_memcmp so timing reveals nothing about how
//   many leading bytes of a forged tag were right.
// - The key file is opened first and checked with fstat on the open
//   descriptor, so the permissions checked are those of the bytes read. A key
//   that others can read is refused rather than warned about: a warning in a
//   log nobody reads leaves the cluster open.
// - A failing CSPRNG or HMAC is a broken host, not a recoverable condition:
//   those paths throw (a bug-class exception) instead of returning weak bytes.
#include "common/auth.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>

namespace migrated::auth {
namespace {

constexpr std::size_t max_psk_file_bytes = 64 << 10;  // a key, not a document

struct mac_deleter {
  void operator()(EVP_MAC* m) const { EVP_MAC_free(m); }
};
struct mac_ctx_deleter {
  void operator()(EVP_MAC_CTX* c) const { EVP_MAC_CTX_free(c); }
};

// The HMAC implementation is fetched once; fetching is the slow part and
// this runs for every frame.
EVP_MAC* hmac_algorithm() {
  static const std::unique_ptr<EVP_MAC, mac_deleter> algorithm{
      EVP_MAC_fetch(nullptr, "HMAC", nullptr)};
  if (!algorithm) throw std::runtime_error("OpenSSL has no HMAC implementation");
  return algorithm.get();
}

std::string octal_mode(mode_t mode) {
  char text[8];
  std::snprintf(text, sizeof text, "%04o", static_cast<unsigned>(mode & 07777));
  return text;
}

bool is_space(std::uint8_t c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

void append_field(bytes& out, std::span<const std::uint8_t> field) {
  const auto n = static_cast<std::uint32_t>(field.size());
  out.push_back(static_cast<std::uint8_t>(n >> 24));
  out.push_back(static_cast<std::uint8_t>(n >> 16));
  out.push_back(static_cast<std::uint8_t>(n >> 8));
  out.push_back(static_cast<std::uint8_t>(n));
  out.insert(out.end(), field.begin(), field.end());
}

result<bytes> read_all(int fd, const std::string& name) {
  bytes data;
  std::uint8_t buffer[4096];
  for (;;) {
    const ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail_errno(errno, "read psk file " + name);
    if (n == 0) return data;
    data.insert(data.end(), buffer, buffer + n);
    if (data.size() > max_psk_file_bytes)
      return fail(errc::config, "psk file " + name + " is larger than " +
                                    std::to_string(max_psk_file_bytes) + " bytes");
  }
}

result<void> check_key_file(int fd, const std::string& name) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return fail_errno(errno, "stat psk file " + name);
  if (!S_ISREG(st.st_mode))
    return fail(errc::config, "psk file " + name + " is not a regular file");
  if ((st.st_mode & 077) != 0)
    return fail(errc::config, "psk file " + name +
                                  " is readable or writable by group or others (mode " +
                                  octal_mode(st.st_mode) + "): chmod 600 " + name);
  return {};
}

}  // namespace

result<psk> load_psk(const std::filesystem::path& file) {
  const std::string name = file.string();
  const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) return fail_errno(errno, "open psk file " + name);
  auto checked = check_key_file(fd, name);
  result<bytes> data = checked ? read_all(fd, name) : std::unexpected(checked.error());
  ::close(fd);
  if (!data) return std::unexpected(data.error());

  bytes key = std::move(*data);
  while (!key.empty() && is_space(key.back())) key.pop_back();
  if (key.empty()) return fail(errc::config, "psk file " + name + " is empty");
  if (key.size() < min_psk_bytes)
    return fail(errc::config, "psk file " + name + " holds " + std::to_string(key.size()) +
                                  " bytes; at least " + std::to_string(min_psk_bytes) +
                                  " are required (e.g. openssl rand -hex 32 > " + name + ")");
  return psk{std::move(key)};
}

mac hmac_sha256(std::span<const std::uint8_t> key,
                std::initializer_list<std::span<const std::uint8_t>> parts) {
  std::unique_ptr<EVP_MAC_CTX, mac_ctx_deleter> ctx{EVP_MAC_CTX_new(hmac_algorithm())};
  if (!ctx) throw std::bad_alloc();
  char digest_name[] = "SHA256";
  const OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest_name, 0),
      OSSL_PARAM_construct_end()};
  static const std::uint8_t no_key = 0;  // OpenSSL reads a null key as "keep the old one"
  const std::uint8_t* key_data = key.empty() ? &no_key : key.data();
  if (EVP_MAC_init(ctx.get(), key_data, key.size(), params) != 1)
    throw std::runtime_error("HMAC-SHA256 init failed");
  for (const auto& part : parts) {
    if (!part.empty() && EVP_MAC_update(ctx.get(), part.data(), part.size()) != 1)
      throw std::runtime_error("HMAC-SHA256 update failed");
  }
  mac out{};
  std::size_t written = 0;
  if (EVP_MAC_final(ctx.get(), out.data(), &written, out.size()) != 1 || written != out.size())
    throw std::runtime_error("HMAC-SHA256 final failed");
  return out;
}

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

mac proof(const psk& key, std::string_view label,
          std::span<const std::uint8_t> nonce_client,
          std::span<const std::uint8_t> nonce_server,
          std::string_view node_client, std::string_view node_server) {
  const std::string domain = "migrated-v1 " + std::string(label);
  bytes message;
  message.reserve(5 * 4 + domain.size() + nonce_client.size() + nonce_server.size() +
                  node_client.size() + node_server.size());
  append_field(message, as_bytes(domain));
  append_field(message, nonce_client);
  append_field(message, nonce_server);
  append_field(message, as_bytes(node_client));
  append_field(message, as_bytes(node_server));
  return hmac_sha256(key.key, {message});
}

session_keys derive_session_keys(const psk& key,
                                 std::span<const std::uint8_t> nonce_client,
                                 std::span<const std::uint8_t> nonce_server) {
  auto derive = [&](std::string_view label) {
    bytes message;
    append_field(message, as_bytes(label));
    append_field(message, nonce_client);
    append_field(message, nonce_server);
    const mac k = hmac_sha256(key.key, {message});
    return bytes(k.begin(), k.end());
  };
  return session_keys{derive("migrated-v1 session key client-to-server"),
                      derive("migrated-v1 session key server-to-client")};
}

}  // namespace migrated::auth
