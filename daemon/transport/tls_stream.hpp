// One TLS connection over a beast::tcp_stream, with OpenSSL reading and
// writing through buffers of our own instead of a socket. Asio's ssl
// stream moves every 16 KiB record through its own 17 KiB memory BIO, so
// each record costs a system call and a copy on both sides; here a
// connection moves up to `bulk_bytes` of records per system call once it
// is authenticated (bench/RESULTS.md, "What encryption costs"). Until
// then its buffers stay at one record, so an unauthenticated connection
// costs little.
//
// The deadlines are the tcp_stream's: callers set expires_after before an
// operation, as with any beast stream. One read and one write may be in
// flight at a time; only reads take bytes from the socket and only writes
// (and the handshake) put bytes on it. In TLS 1.3 without tickets and
// post-handshake authentication neither needs the other's direction.
//
// Errors are Asio's: asio::error::eof after the peer's close_notify,
// asio::ssl::error::stream_truncated when the socket ends without one,
// errors of asio::error::get_ssl_category() for what OpenSSL refused.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <utility>

#include <boost/asio/ssl/context.hpp>
#include <boost/beast/core/tcp_stream.hpp>

#include "asio.hpp"

using SSL = struct ssl_st;
using BIO = struct bio_st;

namespace migrated::transport {

class tls_stream {
 public:
  // What moves per system call once authenticated (raise_buffers()).
  static constexpr std::size_t bulk_bytes = 256 * 1024;

  tls_stream(tcp::socket socket, boost::asio::ssl::context& context);
  ~tls_stream();
  tls_stream(const tls_stream&) = delete;
  tls_stream& operator=(const tls_stream&) = delete;

  boost::beast::tcp_stream& layer() { return layer_; }
  const boost::beast::tcp_stream& layer() const { return layer_; }
  SSL* native_handle() const { return ssl_; }

  awaitable<boost::system::error_code> handshake(bool as_client);

  // Sends every byte of `buffers`.
  awaitable<boost::system::error_code> write(std::span<const asio::const_buffer> buffers);

  // Fills `into` exactly; the count says how much arrived before an error.
  awaitable<std::pair<boost::system::error_code, std::size_t>> read(asio::mutable_buffer into);

  // From now on, move up to bulk_bytes per system call.
  void raise_buffers() { limit_ = bulk_bytes; }

 private:
  struct buffer {
    std::unique_ptr<std::uint8_t[]> bytes;
    std::size_t capacity = 0, begin = 0, end = 0;
    std::size_t size() const { return end - begin; }
    void reserve(std::size_t n);
  };
  static int bio_write(BIO* bio, const char* data, std::size_t n, std::size_t* written);
  static int bio_read(BIO* bio, char* data, std::size_t n, std::size_t* got);
  static long bio_ctrl(BIO* bio, int cmd, long num, void* ptr);

  awaitable<boost::system::error_code> fill();   // socket → in_
  awaitable<boost::system::error_code> flush();  // out_ → socket
  static void append(buffer& to, const void* data, std::size_t n);
  boost::system::error_code failure(int ssl_error) const;

  boost::beast::tcp_stream layer_;
  SSL* ssl_ = nullptr;
  buffer in_, out_, late_;
  std::size_t limit_;
  bool peer_closed_ = false;
  bool flushing_ = false;
};

}  // namespace migrated::transport
