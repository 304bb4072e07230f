// A peer link: one TLS 1.3 connection (transport/tls_stream.hpp) carrying frames
// (common/wire.hpp). Every read and write has a deadline; a peer that closes
// at a frame boundary is errc::peer ("closed"), a frame cut short is
// errc::protocol, a TLS record that does not decrypt errc::auth. The
// protocol on a connection is a strict conversation, so there is one reader
// and one writer at a time.
#pragma once

#include <chrono>
#include <span>
#include <string>
#include <vector>

#include "asio.hpp"

#include "common/credentials.hpp"
#include "common/error.hpp"
#include "common/wire.hpp"
#include "migrated.pb.h"
#include "transport/tls.hpp"
#include "transport/tls_stream.hpp"

namespace migrated::transport {

struct frame {
  pb::Envelope msg;
  std::vector<std::uint8_t> payload;
};

class channel {
 public:
  enum class side { client, server };
  channel(tcp::socket socket, std::shared_ptr<ssl::context> tls, std::chrono::milliseconds io_timeout);

  // The TLS handshake, within `timeout`; on success `who` is the identity
  // the other end's certificate proves. errc::auth when either side refuses
  // the other's certificate (the message says which and why).
  awaitable<result<void>> secure(side s, std::chrono::milliseconds timeout);

  awaitable<result<void>> send(const pb::Envelope& msg, std::span<const std::uint8_t> payload = {}) {
    return send_within(io_timeout_, msg, payload);
  }
  // A send with its own deadline (an Abort to a peer that may have stopped reading).
  awaitable<result<void>> send_within(std::chrono::milliseconds timeout, const pb::Envelope& msg,
                                      std::span<const std::uint8_t> payload = {});
  awaitable<result<frame>> recv() { return recv(io_timeout_); }
  awaitable<result<frame>> recv(std::chrono::milliseconds timeout);

  // Sends a Reply for `request_id`, ok or carrying `err`.
  // (No defaulted argument: it would be a temporary spanning the caller's
  // co_await, which g++ 12 mishandles; see docs/design.md.)
  awaitable<result<void>> reply(std::uint64_t request_id, const result<void>& outcome,
                                const std::string& migration_id);
  awaitable<result<void>> reply(std::uint64_t request_id, const result<void>& outcome);

  // Frames larger than this (header + payload) are refused before anything
  // is allocated for them; 0: only the protocol's maxima. Before a peer has
  // finished its Hello it may cost us no more than a few KiB.
  void limit_frames(std::size_t max_bytes) { frame_limit_ = max_bytes; }

  void close();
  // Ends the pending read or write (errc::cancelled) and refuses every
  // later read; the connection stays open, so a last message can be sent.
  void cancel();
  bool is_open() const;
  std::string remote() const { return remote_; }
  std::chrono::milliseconds io_timeout() const { return io_timeout_; }
  void set_io_timeout(std::chrono::milliseconds t) { io_timeout_ = t; }

  std::string cipher() const;

  // Set by secure(): who the certificate names.
  node_identity who;
  // Set by the handshake: the peer's Hello, its node and role those of `who`.
  pb::Hello peer;

 private:
  std::shared_ptr<ssl::context> tls_;
  std::unique_ptr<tls_stream> stream_;  // its OpenSSL state points at it: it must not move
  std::chrono::milliseconds io_timeout_;
  std::string remote_;
  std::vector<std::uint8_t> buf_;
  bool reads_cancelled_ = false;
  std::size_t frame_limit_ = 0;
};

// An Envelope holding the Reply to `request_id`: ok, or carrying the error.
pb::Envelope make_reply(std::uint64_t request_id, const result<void>& outcome,
                        const std::string& migration_id = {});

// The error carried by a Reply, or success.
result<void> to_result(const pb::Reply& r);
pb::Code to_code(errc c);
errc from_code(pb::Code c);

// The error a peer's Abort carries ("<peer> gave up: <reason>").
error aborted_by_peer(const channel& ch, const pb::Abort& a);

// Receives the next frame and requires it to be a Reply (an Abort is the
// peer giving up: errc::cancelled with its reason); returns the reply.
awaitable<result<pb::Reply>> expect_reply(channel& ch, std::string_view what,
                                          std::chrono::milliseconds timeout);

}  // namespace migrated::transport
