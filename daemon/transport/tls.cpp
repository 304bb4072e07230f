// The TLS context. Choices, each for a reason:
// - TLS 1.3 only: its handshake encrypts the certificates, it has no
//   renegotiation and no weak suites to configure away.
// - AES-128-GCM first: with AES-NI and PCLMULQDQ (every x86 edge box of the
//   last decade) it is the fastest AEAD OpenSSL has; ChaCha20-Poly1305
//   stays for CPUs without them, and the peers agree on one.
// - No session tickets: every connection authenticates with certificates;
//   tickets would be state to protect for no gain (connections are long).
// - A bounded certificate list (16 KiB): before the handshake completes a
//   connection may cost little (limits.*).
// - SSL_MODE_RELEASE_BUFFERS: an idle connection holds no record buffers.
#include "transport/tls.hpp"

#include <algorithm>
#include <array>

#include <poll.h>

#include <openssl/ssl.h>
#include <openssl/x509.h>

namespace migrated::transport {
namespace {

constexpr long max_peer_certificate_list = 16 * 1024;
constexpr std::size_t max_client_hello = 16 * 1024;
constexpr std::uint8_t tls_handshake_record = 22;

bool peer_shut_down(tcp::socket& socket) {
  pollfd p{socket.native_handle(), POLLRDHUP, 0};
  return ::poll(&p, 1, 0) == 1 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
}

}  // namespace

result<std::shared_ptr<ssl::context>> make_tls_context(const credentials& creds) {
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls);
  SSL_CTX* raw = ctx->native_handle();
  if (SSL_CTX_set_min_proto_version(raw, TLS1_3_VERSION) != 1 ||
      SSL_CTX_set_ciphersuites(raw, "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256") != 1)
    return fail(errc::internal, "TLS 1.3 is not available: " + openssl_reason());
  if (SSL_CTX_use_certificate(raw, creds.certificate()) != 1 || SSL_CTX_use_PrivateKey(raw, creds.key()) != 1 ||
      SSL_CTX_check_private_key(raw) != 1)
    return fail(errc::config, "tls.cert " + creds.files().cert.string() + " with tls.key " +
                                  creds.files().key.string() + ": " + openssl_reason());
  SSL_CTX_set1_cert_store(raw, creds.trust());
  SSL_CTX_set_verify(raw, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  SSL_CTX_set_num_tickets(raw, 0);
  SSL_CTX_set_options(raw, SSL_OP_NO_TICKET);
  SSL_CTX_set_session_cache_mode(raw, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_max_cert_list(raw, max_peer_certificate_list);
  SSL_CTX_set_mode(raw, SSL_MODE_RELEASE_BUFFERS);
  return ctx;
}

result<node_identity> peer_identity(SSL* connection) {
  X509* cert = SSL_get0_peer_certificate(connection);
  if (!cert) return fail(errc::auth, "the peer presented no certificate");
  if (SSL_get_verify_result(connection) != X509_V_OK)
    return fail(errc::auth, std::string("the peer's certificate does not verify: ") +
                                X509_verify_cert_error_string(SSL_get_verify_result(connection)));
  return identity_of(cert);
}

awaitable<result<void>> await_client_hello(tcp::socket& socket, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  asio::steady_timer pause(socket.get_executor());
  auto wait = std::chrono::milliseconds(1);
  boost::system::error_code ec;
  socket.non_blocking(true, ec);
  for (;;) {
    std::array<std::uint8_t, 5> header{};  // type, version (2), length (2)
    const std::size_t n = socket.receive(asio::buffer(header), tcp::socket::message_peek, ec);
    if (!ec && n == 0) co_return fail(errc::peer, "closed before its ClientHello");
    if (ec && ec != asio::error::would_block) co_return fail(errc::peer, "before its ClientHello: " + ec.message());
    if (!ec && (header[0] != tls_handshake_record || (n >= 2 && header[1] != 3)))
      co_return fail(errc::protocol, "not a TLS client (its first bytes are no TLS handshake record)");
    if (!ec && n == header.size()) {
      const std::size_t length = (std::size_t(header[3]) << 8) | header[4];
      if (length > max_client_hello)
        co_return fail(errc::protocol, "a ClientHello of " + std::to_string(length) + " bytes (at most " +
                                           std::to_string(max_client_hello) + ")");
      if (socket.available(ec) >= header.size() + length && !ec) co_return result<void>{};
    }
    // A client that has shut down its side will send no more: waiting for
    // the rest of the record would only hold its slot until the deadline.
    if (peer_shut_down(socket)) co_return fail(errc::peer, "closed before its whole ClientHello");
    if (std::chrono::steady_clock::now() + wait > deadline)
      co_return fail(errc::timeout, "no ClientHello within " + std::to_string(timeout.count()) + " ms");
    pause.expires_after(wait);
    co_await pause.async_wait(asio::redirect_error(use_awaitable, ec));
    if (ec) co_return fail(errc::cancelled, "waiting for the ClientHello: cancelled");
    wait = std::min(wait * 2, std::chrono::milliseconds(20));
  }
}

std::string cipher_of(SSL* connection) {
  const char* name = SSL_get_cipher_name(connection);
  return name ? name : "(none)";
}

}  // namespace migrated::transport
