// Loading and checking a node's credentials, and the signatures of UDP
// datagrams, on OpenSSL 3.
//
// Why it looks the way it does:
// - The private key file is opened once and checked with fstat on the open
//   descriptor, so the permissions checked are those of the bytes read; a
//   key that others can read is refused, not warned about.
// - A certificate's name and role come from its subject only (CN, OU), each
//   exactly once; the CA signs what it states, so a peer cannot claim
//   another name or the controller role by saying so in its Hello.
// - Signatures use the key's own algorithm (Ed25519 for keys made by
//   scripts/migrated-ca: no digest to choose, 64-byte signatures).
#include "common/credentials.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <stdexcept>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include "common/config.hpp"

namespace migrated {
namespace {

constexpr std::size_t max_key_file_bytes = 64 << 10;

// Ed25519 signs the message itself; other key types sign its SHA-256.
const EVP_MD* digest_for(EVP_PKEY* key) { return EVP_PKEY_get_id(key) == EVP_PKEY_ED25519 ? nullptr : EVP_sha256(); }

std::string octal_mode(mode_t mode) {
  char text[8];
  std::snprintf(text, sizeof text, "%04o", static_cast<unsigned>(mode & 07777));
  return text;
}

result<std::string> read_key_file(const std::filesystem::path& file) {
  const std::string name = file.string();
  const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) return fail_errno(errno, "open tls.key " + name);
  struct stat st {};
  std::string data;
  auto done = [&](result<std::string> r) {
    ::close(fd);
    return r;
  };
  if (::fstat(fd, &st) != 0) return done(fail_errno(errno, "stat tls.key " + name));
  if (!S_ISREG(st.st_mode)) return done(fail(errc::config, "tls.key " + name + " is not a regular file"));
  if ((st.st_mode & 077) != 0)
    return done(fail(errc::config, "tls.key " + name + " is readable or writable by group or others (mode " +
                                       octal_mode(st.st_mode) + "): chmod 600 " + name));
  char buffer[4096];
  for (;;) {
    const ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return done(fail_errno(errno, "read tls.key " + name));
    if (n == 0) break;
    data.append(buffer, static_cast<std::size_t>(n));
    if (data.size() > max_key_file_bytes)
      return done(fail(errc::config, "tls.key " + name + " is larger than " + std::to_string(max_key_file_bytes) +
                                         " bytes: not a key"));
  }
  return done(std::move(data));
}

std::shared_ptr<BIO> memory_bio(std::string_view pem) {
  return {BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), BIO_free};
}

// One subject field, exactly once.
result<std::string> subject_field(X509* cert, int nid, std::string_view what) {
  X509_NAME* subject = X509_get_subject_name(cert);
  if (!subject) return fail(errc::auth, "certificate has no subject");
  const int at = X509_NAME_get_index_by_NID(subject, nid, -1);
  if (at < 0) return fail(errc::auth, "certificate names no " + std::string(what));
  if (X509_NAME_get_index_by_NID(subject, nid, at) >= 0)
    return fail(errc::auth, "certificate names more than one " + std::string(what));
  ASN1_STRING* value = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, at));
  unsigned char* utf8 = nullptr;
  const int n = ASN1_STRING_to_UTF8(&utf8, value);
  if (n < 0) return fail(errc::auth, "certificate's " + std::string(what) + " is not text");
  std::string out(reinterpret_cast<const char*>(utf8), static_cast<std::size_t>(n));
  OPENSSL_free(utf8);
  return out;
}

// Chain to the fleet CA, validity dates included.
result<void> verify_chain(X509_STORE* store, X509* cert) {
  std::unique_ptr<X509_STORE_CTX, decltype(&X509_STORE_CTX_free)> ctx(X509_STORE_CTX_new(), X509_STORE_CTX_free);
  if (!ctx || X509_STORE_CTX_init(ctx.get(), store, cert, nullptr) != 1)
    return fail(errc::internal, "certificate check: " + openssl_reason());
  if (X509_verify_cert(ctx.get()) != 1)
    return fail(errc::auth, std::string("certificate does not verify: ") +
                                X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx.get())));
  return {};
}

}  // namespace

std::string openssl_reason() {
  const unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (e == 0) return "unknown OpenSSL error";
  char text[256];
  ERR_error_string_n(e, text, sizeof text);
  return text;
}

void credentials::cert_free::operator()(X509* c) const { X509_free(c); }
void credentials::key_free::operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
void credentials::store_free::operator()(X509_STORE* s) const { X509_STORE_free(s); }

std::string_view role_name(node_role r) { return r == node_role::controller ? "controller" : "peer"; }

result<node_identity> identity_of(X509* cert) {
  if (!cert) return fail(errc::auth, "no certificate");
  auto name = subject_field(cert, NID_commonName, "node (CN)");
  if (!name) return std::unexpected(name.error());
  if (!valid_node_name(*name)) return fail(errc::auth, "certificate names an invalid node '" + *name + "'");
  auto role = subject_field(cert, NID_organizationalUnitName, "role (OU)");
  if (!role) return std::unexpected(role.error().context("certificate of " + *name));
  if (*role == "peer") return node_identity{*name, node_role::peer};
  if (*role == "controller") return node_identity{*name, node_role::controller};
  return fail(errc::auth, "certificate of " + *name + " states the unknown role '" + *role + "' (OU)");
}

result<credentials> credentials::load(const tls_files& files) {
  credentials c;
  c.files_ = files;

  std::shared_ptr<X509_STORE> store(X509_STORE_new(), store_free{});
  if (!store || X509_STORE_load_file(store.get(), files.ca.c_str()) != 1)
    return fail(errc::config, "tls.ca " + files.ca.string() + ": not a readable PEM certificate (" +
                                  openssl_reason() + ")");

  std::unique_ptr<FILE, decltype(&std::fclose)> cert_file(std::fopen(files.cert.c_str(), "re"), std::fclose);
  if (!cert_file) return fail_errno(errno, "open tls.cert " + files.cert.string());
  std::shared_ptr<X509> cert(PEM_read_X509(cert_file.get(), nullptr, nullptr, nullptr), cert_free{});
  if (!cert) return fail(errc::config, "tls.cert " + files.cert.string() + ": not a PEM certificate (" +
                                           openssl_reason() + ")");

  auto pem = read_key_file(files.key);
  if (!pem) return std::unexpected(pem.error());
  auto bio = memory_bio(*pem);
  std::shared_ptr<EVP_PKEY> key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr), key_free{});
  if (!key) return fail(errc::config, "tls.key " + files.key.string() + ": not a PEM private key (" +
                                          openssl_reason() + ")");
  if (X509_check_private_key(cert.get(), key.get()) != 1) {
    ERR_clear_error();
    return fail(errc::config, "tls.key " + files.key.string() + " is not the key of tls.cert " +
                                  files.cert.string());
  }
  if (auto ok = verify_chain(store.get(), cert.get()); !ok)
    return std::unexpected(ok.error().context("tls.cert " + files.cert.string() + " with tls.ca " + files.ca.string()));
  auto self = identity_of(cert.get());
  if (!self) return std::unexpected(self.error().context("tls.cert " + files.cert.string()));

  unsigned char* der = nullptr;
  const int n = i2d_X509(cert.get(), &der);
  if (n <= 0) return fail(errc::internal, "encode tls.cert: " + openssl_reason());
  c.der_.assign(der, der + n);
  OPENSSL_free(der);
  if (c.der_.size() > max_certificate_bytes)
    return fail(errc::config, "tls.cert " + files.cert.string() + " is " + std::to_string(c.der_.size()) +
                                  " bytes; at most " + std::to_string(max_certificate_bytes) + " fit a datagram");
  c.self_ = std::move(*self);
  c.cert_ = std::move(cert);
  c.key_ = std::move(key);
  c.store_ = std::move(store);
  return c;
}

std::vector<std::uint8_t> credentials::sign(std::span<const std::uint8_t> message) const {
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  std::size_t n = 0;
  const EVP_MD* md = digest_for(key_.get());
  if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, md, nullptr, key_.get()) != 1 ||
      EVP_DigestSign(ctx.get(), nullptr, &n, message.data(), message.size()) != 1)
    throw std::runtime_error("signing failed: " + openssl_reason());
  std::vector<std::uint8_t> out(n);
  if (EVP_DigestSign(ctx.get(), out.data(), &n, message.data(), message.size()) != 1)
    throw std::runtime_error("signing failed: " + openssl_reason());
  out.resize(n);
  return out;
}

result<node_identity> credentials::verify_signed(std::span<const std::uint8_t> der,
                                                 std::span<const std::uint8_t> message,
                                                 std::span<const std::uint8_t> signature) const {
  if (der.empty() || der.size() > max_certificate_bytes)
    return fail(errc::auth, "no certificate of at most " + std::to_string(max_certificate_bytes) + " bytes");
  const unsigned char* p = der.data();
  std::unique_ptr<X509, decltype(&X509_free)> cert(d2i_X509(nullptr, &p, static_cast<long>(der.size())), X509_free);
  if (!cert || p != der.data() + der.size()) {
    ERR_clear_error();
    return fail(errc::auth, "not a certificate");
  }
  if (auto ok = verify_chain(store_.get(), cert.get()); !ok) return std::unexpected(ok.error());
  auto who = identity_of(cert.get());
  if (!who) return std::unexpected(who.error());
  EVP_PKEY* key = X509_get0_pubkey(cert.get());
  if (!key) return fail(errc::auth, "certificate of " + who->name + " holds no usable key");
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  const EVP_MD* md = digest_for(key);
  const bool good = ctx && EVP_DigestVerifyInit(ctx.get(), nullptr, md, nullptr, key) == 1 &&
                    EVP_DigestVerify(ctx.get(), signature.data(), signature.size(), message.data(), message.size()) == 1;
  ERR_clear_error();
  if (!good) return fail(errc::auth, "signature of " + who->name + " does not verify (tampered, or not its key)");
  return who;
}

}  // namespace migrated
