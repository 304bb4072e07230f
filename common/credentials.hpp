// A node's identity in its fleet: a certificate issued by the fleet's CA
// (scripts/migrated-ca), its private key, and the CA that every other
// certificate must chain to. The certificate names the node (subject CN)
// and its role (subject OU: "peer" for a daemon, "controller" for
// migratectl and other controllers); nothing a connection *says* about
// itself counts, only what its certificate proves. See docs/protocol.md,
// "Identities".
//
// The same credentials sign and verify UDP datagrams (common/datagram.hpp),
// which have no TLS: a datagram carries its sender's certificate and a
// signature made with the sender's key.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.hpp"

using X509 = struct x509_st;
using X509_STORE = struct x509_store_st;
using EVP_PKEY = struct evp_pkey_st;

namespace migrated {

enum class node_role { peer, controller };
std::string_view role_name(node_role r);  // "peer", "controller"

struct node_identity {
  std::string name;
  node_role role = node_role::peer;
};

// OpenSSL's reason for the error it just queued (and clears the queue),
// for messages: "error:0A000086:SSL routines::certificate verify failed".
std::string openssl_reason();

// The name and role a certificate states; errc::auth when it states no
// valid name, no role, or either more than once.
result<node_identity> identity_of(X509* cert);

struct tls_files {
  std::filesystem::path ca;    // the fleet CA's certificate (PEM)
  std::filesystem::path cert;  // this node's certificate (PEM)
  std::filesystem::path key;   // this node's private key (PEM, mode 0600)
};

class credentials {
 public:
  // Loads and checks the files: the key matches the certificate, the
  // certificate chains to the CA and is valid now, and the key file is
  // readable by its owner only (errc::config naming the file otherwise).
  static result<credentials> load(const tls_files& files);

  const node_identity& self() const { return self_; }
  const tls_files& files() const { return files_; }

  // DER of this node's certificate, for datagrams.
  std::span<const std::uint8_t> certificate_der() const { return der_; }
  // A signature by this node's key over `message`.
  std::vector<std::uint8_t> sign(std::span<const std::uint8_t> message) const;
  // Checks that `der` is a certificate of this fleet, valid now, and that
  // `signature` over `message` was made with its key; returns who it names.
  // errc::auth for anything that does not verify.
  result<node_identity> verify_signed(std::span<const std::uint8_t> der, std::span<const std::uint8_t> message,
                                      std::span<const std::uint8_t> signature) const;

  // For the TLS context.
  X509* certificate() const { return cert_.get(); }
  EVP_PKEY* key() const { return key_.get(); }
  X509_STORE* trust() const { return store_.get(); }

  static constexpr std::size_t max_certificate_bytes = 8 * 1024;

 private:
  struct cert_free { void operator()(X509* c) const; };
  struct key_free { void operator()(EVP_PKEY* k) const; };
  struct store_free { void operator()(X509_STORE* s) const; };

  tls_files files_;
  node_identity self_;
  std::shared_ptr<X509> cert_;
  std::shared_ptr<EVP_PKEY> key_;
  std::shared_ptr<X509_STORE> store_;
  std::vector<std::uint8_t> der_;
};

}  // namespace migrated
