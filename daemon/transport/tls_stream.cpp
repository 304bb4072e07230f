// OpenSSL's record layer over two plain byte buffers: a BIO of our own
// (bio_read/bio_write) takes ciphertext from `in_` and appends it to
// `out_`; fill() and flush() move those buffers to and from the socket
// with the tcp_stream's deadlines. A write hands OpenSSL at most `limit_`
// bytes of plaintext at a time, so `out_` never holds more than that plus
// the records' overhead before it goes out in one system call.
#include "transport/tls_stream.hpp"

#include <algorithm>
#include <cstring>

#include <boost/asio/ssl/error.hpp>
#include <boost/asio/write.hpp>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

namespace migrated::transport {
namespace {

// One TLS record and its header, tag and padding: enough for a handshake.
constexpr std::size_t record_bytes = 16 * 1024 + 512;

}  // namespace

void tls_stream::buffer::reserve(std::size_t n) {
  if (begin == end) begin = end = 0;
  if (capacity - end >= n) return;
  if (begin > 0 && capacity - size() >= n) {
    std::memmove(bytes.get(), bytes.get() + begin, size());
    end -= begin;
    begin = 0;
    return;
  }
  const std::size_t grown = std::max(size() + n, capacity * 2);
  // Not value-initialised: pages nobody writes stay unallocated.
  std::unique_ptr<std::uint8_t[]> more(new std::uint8_t[grown]);
  if (size() > 0) std::memcpy(more.get(), bytes.get() + begin, size());
  end -= begin;
  begin = 0;
  bytes = std::move(more);
  capacity = grown;
}

tls_stream::tls_stream(tcp::socket socket, boost::asio::ssl::context& context)
    : layer_(std::move(socket)), limit_(record_bytes) {
  // One BIO method for the process, made on first use (thread-safe static).
  static BIO_METHOD* const method = [] {
    BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "migrated tls_stream");
    if (m && BIO_meth_set_write_ex(m, &tls_stream::bio_write) == 1 &&
        BIO_meth_set_read_ex(m, &tls_stream::bio_read) == 1 && BIO_meth_set_ctrl(m, &tls_stream::bio_ctrl) == 1)
      return m;
    return static_cast<BIO_METHOD*>(nullptr);
  }();
  ssl_ = method ? SSL_new(context.native_handle()) : nullptr;
  if (!ssl_) return;  // handshake() reports it
  BIO* bio = BIO_new(method);
  if (!bio) {
    SSL_free(ssl_);
    ssl_ = nullptr;
    return;
  }
  BIO_set_data(bio, this);
  BIO_set_init(bio, 1);
  SSL_set_bio(ssl_, bio, bio);  // the SSL owns it
}

tls_stream::~tls_stream() {
  if (ssl_) SSL_free(ssl_);
}

int tls_stream::bio_write(BIO* bio, const char* data, std::size_t n, std::size_t* written) {
  auto* self = static_cast<tls_stream*>(BIO_get_data(bio));
  BIO_clear_retry_flags(bio);
  // While out_ is on its way to the socket it must not move: what a read
  // produces meanwhile (an alert, a KeyUpdate) waits in late_.
  self->append(self->flushing_ ? self->late_ : self->out_, data, n);
  *written = n;
  return 1;
}

int tls_stream::bio_read(BIO* bio, char* data, std::size_t n, std::size_t* got) {
  auto* self = static_cast<tls_stream*>(BIO_get_data(bio));
  BIO_clear_retry_flags(bio);
  if (self->in_.size() == 0) {
    if (self->peer_closed_) return 0;  // end of stream
    BIO_set_retry_read(bio);
    return 0;
  }
  const std::size_t take = std::min(n, self->in_.size());
  std::memcpy(data, self->in_.bytes.get() + self->in_.begin, take);
  self->in_.begin += take;
  *got = take;
  return 1;
}

long tls_stream::bio_ctrl(BIO*, int cmd, long, void*) {
  return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

awaitable<boost::system::error_code> tls_stream::fill() {
  in_.reserve(limit_);
  boost::system::error_code ec;
  const std::size_t n = co_await layer_.async_read_some(
      asio::buffer(in_.bytes.get() + in_.end, std::min(limit_, in_.capacity - in_.end)),
      asio::redirect_error(use_awaitable, ec));
  in_.end += n;
  if (ec == asio::error::eof) {
    peer_closed_ = true;
    co_return boost::system::error_code{};  // OpenSSL sees the end and tells a truncation from close_notify
  }
  co_return ec;
}

void tls_stream::append(buffer& to, const void* data, std::size_t n) {
  to.reserve(n);
  std::memcpy(to.bytes.get() + to.end, data, n);
  to.end += n;
}

awaitable<boost::system::error_code> tls_stream::flush() {
  boost::system::error_code ec;
  while (out_.size() > 0 && !ec) {
    flushing_ = true;
    const std::size_t n = co_await asio::async_write(
        layer_, asio::buffer(out_.bytes.get() + out_.begin, out_.size()), asio::redirect_error(use_awaitable, ec));
    flushing_ = false;
    out_.begin += n;
    if (late_.size() > 0) {
      append(out_, late_.bytes.get() + late_.begin, late_.size());
      late_.begin = late_.end = 0;
    }
  }
  co_return ec;
}

boost::system::error_code tls_stream::failure(int ssl_error) const {
  if (!ssl_) return {int(ERR_R_MALLOC_FAILURE), asio::error::get_ssl_category()};
  if (ssl_error == SSL_ERROR_ZERO_RETURN) return asio::error::eof;
  const unsigned long queued = ERR_peek_last_error();
  const bool eof_inside = ssl_error == SSL_ERROR_SYSCALL ||
                          (queued != 0 && ERR_GET_REASON(queued) == SSL_R_UNEXPECTED_EOF_WHILE_READING);
  if (peer_closed_ && eof_inside) return boost::asio::ssl::error::stream_truncated;
  if (queued != 0) return {int(queued), asio::error::get_ssl_category()};
  return boost::asio::ssl::error::unexpected_result;
}

awaitable<boost::system::error_code> tls_stream::handshake(bool as_client) {
  if (!ssl_) co_return failure(SSL_ERROR_SSL);
  if (as_client) SSL_set_connect_state(ssl_);
  else SSL_set_accept_state(ssl_);
  for (;;) {
    ERR_clear_error();
    const int r = SSL_do_handshake(ssl_);
    const int e = r == 1 ? SSL_ERROR_NONE : SSL_get_error(ssl_, r);
    if (e == SSL_ERROR_NONE) co_return co_await flush();
    if (e != SSL_ERROR_WANT_READ) {
      const auto why = failure(e);
      // The alert tells the other side why; it is sent if the socket takes it.
      co_await flush();
      co_return why;
    }
    if (auto ec = co_await flush()) co_return ec;
    if (auto ec = co_await fill()) co_return ec;
  }
}

awaitable<boost::system::error_code> tls_stream::write(std::span<const asio::const_buffer> buffers) {
  if (!ssl_) co_return failure(SSL_ERROR_SSL);
  for (const auto& b : buffers) {
    auto* p = static_cast<const std::uint8_t*>(b.data());
    std::size_t left = b.size();
    while (left > 0) {
      const std::size_t n = std::min(left, limit_);
      ERR_clear_error();
      std::size_t written = 0;
      const int r = SSL_write_ex(ssl_, p, n, &written);
      if (r != 1) co_return failure(SSL_get_error(ssl_, r));
      p += written;
      left -= written;
      // Small pieces (a frame's prefix and header) go out with what follows.
      if (out_.size() >= limit_)
        if (auto ec = co_await flush()) co_return ec;
    }
  }
  co_return co_await flush();
}

awaitable<std::pair<boost::system::error_code, std::size_t>> tls_stream::read(asio::mutable_buffer into) {
  if (!ssl_) co_return std::pair{failure(SSL_ERROR_SSL), std::size_t(0)};
  auto* p = static_cast<std::uint8_t*>(into.data());
  std::size_t done = 0;
  while (done < into.size()) {
    ERR_clear_error();
    std::size_t got = 0;
    const int r = SSL_read_ex(ssl_, p + done, into.size() - done, &got);
    if (r == 1) {
      done += got;
      continue;
    }
    const int e = SSL_get_error(ssl_, r);
    if (e != SSL_ERROR_WANT_READ) co_return std::pair{failure(e), done};
    if (auto ec = co_await fill()) co_return std::pair{ec, done};
  }
  co_return std::pair{boost::system::error_code{}, done};
}

}  // namespace migrated::transport
