// TLS 1.3 for every connection between daemons and between a controller and
// a daemon: OpenSSL (transport/tls_stream.hpp), both sides presenting a
// certificate of the fleet's CA (common/credentials.hpp). Nothing else is
// accepted: no older protocol version, no connection without a client
// certificate, no session resumption. See docs/protocol.md, "Identities".
#pragma once

#include <chrono>
#include <memory>

#include <boost/asio/ssl/context.hpp>

#include "asio.hpp"

#include "common/credentials.hpp"
#include "common/error.hpp"

using SSL = struct ssl_st;

namespace migrated::transport {

namespace ssl = boost::asio::ssl;

// A context for both directions (this node connects and accepts with the
// same certificate). The credentials are shared into it.
result<std::shared_ptr<ssl::context>> make_tls_context(const credentials& creds);

// Who the other end of an established TLS connection is, by its certificate.
result<node_identity> peer_identity(SSL* connection);

// Waits until the client's first TLS record — its ClientHello, at most
// 16 KiB — has wholly arrived in the kernel's socket buffer, looking at it
// without reading it. Until then a connection costs this process no TLS
// state (OpenSSL's handshake buffers and ours take tens of KiB), so idle
// and slow-drip connections stay cheap. errc::timeout after `timeout`,
// errc::peer when the client closes, errc::protocol for bytes that are not
// a TLS handshake record.
awaitable<result<void>> await_client_hello(tcp::socket& socket, std::chrono::milliseconds timeout);

// "TLS_AES_128_GCM_SHA256" — for logs and the benchmark.
std::string cipher_of(SSL* connection);

}  // namespace migrated::transport
