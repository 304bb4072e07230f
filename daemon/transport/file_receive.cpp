// The receiving side of file streams (see file_stream.hpp): files are
// opened, chunks decompressed, hashed and written, and files finished on the
// pool (or fed to a sink, for produced files); the I/O thread only reads frames. Chunks of a file arrive in order; any gap, overrun, size
// lie, unfinished file or checksum mismatch fails the stream with a message
// naming the file, and the sender is told why.
#include "transport/file_stream.hpp"

#include <fcntl.h>
#include <sys/stat.h>

#include <chrono>
#include <cstring>
#include <unordered_map>

#include "common/auth.hpp"
#include "common/hash.hpp"
#include "common/path.hpp"
#include "common/unique_fd.hpp"
#include "common/zstd_codec.hpp"

namespace migrated::transport {
namespace {

using clock = std::chrono::steady_clock;

// How long the reply that refuses a stream may take to leave.
constexpr auto refusal_timeout = std::chrono::seconds(2);

double ms_since(clock::time_point t) {
  return std::chrono::duration<double, std::milli>(clock::now() - t).count();
}

}  // namespace

namespace {

struct incoming_file {
  std::string name;
  std::filesystem::path path;
  std::uint64_t size = 0;
  std::uint64_t next = 0;
  unique_fd fd;
  std::unique_ptr<xxh128_stream> hash = std::make_unique<xxh128_stream>();
  std::unique_ptr<chunk_sink> sink;  // produced files: bytes go here, not to fd
  bool image = false;                // an image archive: no size announced
  bool open = true;
};

// A produced stream may exceed the file it rebuilds only by its framing
// (one op byte per page and a little more); beyond that the sender lies.
std::uint64_t max_stream_bytes(std::uint64_t size) { return size + size / 64 + 65536; }

// An image archive's size is not known before the engine has written it.
constexpr std::uint64_t max_image_bytes = std::uint64_t(1) << 40;  // 1 TiB: beyond, a peer bug

class receiver {
 public:
  receiver(const std::filesystem::path& dir, const receive_options& opts) : dir_(dir), opts_(opts) {}

  result<void> begin(const pb::FileBegin& b) {
    if (files_.contains(b.file_id())) return fail(errc::protocol, "file id " + std::to_string(b.file_id()) + " reused");
    auto path = confine(dir_, b.path());
    if (!path) return std::unexpected(path.error());
    if (b.page_delta() || b.engine_image()) {
      if (!opts_.open_sink) return fail(errc::protocol, b.path() + ": unexpected produced file");
      auto sink = opts_.open_sink(b, *path);
      if (!sink) return std::unexpected(sink.error().context(b.path()));
      auto& f = files_[b.file_id()];
      f.name = b.path();
      f.path = *path;
      f.size = b.size();
      f.image = b.engine_image();
      f.sink = std::move(*sink);
      return {};
    }
    std::error_code ec;
    std::filesystem::create_directories(path->parent_path(), ec);
    if (ec) return fail(errc::io, "create " + path->parent_path().string() + ": " + ec.message());
    ::unlink(path->c_str());
    int fd = ::open(path->c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) return fail_errno(errno, "create " + path->string());
    auto& f = files_[b.file_id()];
    f.name = b.path();
    f.path = *path;
    f.size = b.size();
    f.fd.reset(fd);
    return {};
  }

  result<incoming_file*> find(std::uint32_t id) {
    auto it = files_.find(id);
    if (it == files_.end() || !it->second.open)
      return fail(errc::protocol, "data for unknown or closed file id " + std::to_string(id));
    return &it->second;
  }

  // Runs on the pool: decompress, hash, write.
  result<void> chunk(incoming_file& f, const pb::FileChunk& c, std::vector<std::uint8_t>& payload) {
    if (c.offset() != f.next) return fail(errc::protocol, f.name + ": chunk out of order");
    const std::uint64_t limit = f.image ? max_image_bytes : f.sink ? max_stream_bytes(f.size) : f.size;
    if (c.raw_bytes() > wire::max_payload_bytes || f.next + c.raw_bytes() > limit)
      return fail(errc::protocol, f.name + ": chunk beyond the announced size");
    std::vector<std::uint8_t>* data = &payload;
    if (c.compressed()) {
      raw_.resize(c.raw_bytes());
      if (auto ok = dz_.decompress(payload, raw_); !ok) return std::unexpected(ok.error().context(f.name));
      data = &raw_;
    } else if (payload.size() != c.raw_bytes()) {
      return fail(errc::protocol, f.name + ": raw chunk length mismatch");
    }
    if (opts_.on_chunk) opts_.on_chunk(chunks_, *data);
    ++chunks_;
    f.hash->update(*data);
    if (f.sink) {
      if (auto ok = f.sink->feed(*data); !ok) return std::unexpected(ok.error().context(f.name));
      f.next += data->size();
      return {};
    }
    std::size_t done = 0;
    while (done < data->size()) {
      ssize_t n = ::pwrite(f.fd.get(), data->data() + done, data->size() - done, off_t(f.next + done));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return fail_errno(errno, "write " + f.path.string());
      done += std::size_t(n);
    }
    f.next += data->size();
    bytes_raw_ += data->size();
    return {};
  }

  result<void> end(const pb::FileEnd& e) {
    auto f = find(e.file_id());
    if (!f) return std::unexpected(f.error());
    incoming_file& file = **f;
    const bool shrank = e.shrank() && e.size() == file.next && file.next < file.size;  // a live tree's file
    if (!file.sink && file.next != file.size && !shrank)
      return fail(errc::protocol, file.name + ": ended after " + std::to_string(file.next) + " of " +
                                      std::to_string(file.size) + " bytes");
    auto d = file.hash->digest();
    if (e.xxh128().size() != d.size() || std::memcmp(e.xxh128().data(), d.data(), d.size()) != 0)
      return fail(errc::checksum, file.name + ": checksum mismatch (received " + to_hex(d) +
                                      ", sender has " + to_hex(auth::as_bytes(e.xxh128())) + ")");
    file.open = false;
    ++completed_;
    if (file.sink) {
      bytes_raw_ += file.image ? file.next : file.size;  // an archive counts what streamed
      auto ok = file.sink->finish(e);
      file.sink.reset();
      return ok;
    }
    file.fd.reset();
    if (opts_.on_file_done) return opts_.on_file_done(file.name, file.path);
    return {};
  }

  result<void> finish(const pb::StreamEnd& e) const {
    // A file begun and never ended was never checked against its checksum.
    for (const auto& [id, f] : files_)
      if (f.open) return fail(errc::protocol, f.name + ": stream ended before the file did");
    if (e.files() != completed_ || e.bytes() != bytes_raw_)
      return fail(errc::protocol, "stream ended with " + std::to_string(completed_) + " files / " +
                                      std::to_string(bytes_raw_) + " bytes, sender says " +
                                      std::to_string(e.files()) + " / " + std::to_string(e.bytes()));
    return {};
  }

  std::uint32_t completed() const { return completed_; }
  std::uint64_t bytes_raw() const { return bytes_raw_; }

 private:
  std::filesystem::path dir_;
  const receive_options& opts_;
  std::unordered_map<std::uint32_t, incoming_file> files_;
  zstd_decompressor dz_;
  std::vector<std::uint8_t> raw_;
  std::uint64_t chunks_ = 0;
  std::uint32_t completed_ = 0;
  std::uint64_t bytes_raw_ = 0;
};

awaitable<result<void>> receive_loop(channel& ch, receiver& rx, const receive_options& opts,
                                     std::uint64_t& wire_bytes) {
  for (;;) {
    auto f = co_await ch.recv();
    if (!f) co_return std::unexpected(f.error());
    auto& m = f->msg;
    if (m.has_file_begin()) {
      // Opening may create directories, read a pagemap or connect to an engine: not on the I/O thread.
      auto ok = co_await offload(*opts.pool, [&] { return rx.begin(m.file_begin()); });
      if (!ok) co_return ok;
    } else if (m.has_file_chunk()) {
      auto file = rx.find(m.file_chunk().file_id());
      if (!file) co_return std::unexpected(file.error());
      wire_bytes += f->payload.size();
      auto ok = co_await offload(*opts.pool, [&] { return rx.chunk(**file, m.file_chunk(), f->payload); });
      if (!ok) co_return ok;
    } else if (m.has_file_end()) {
      // Finishing may flush a rebuilt pages file or wait for an engine to load an image.
      auto ok = co_await offload(*opts.pool, [&] { return rx.end(m.file_end()); });
      if (!ok) co_return ok;
    } else if (m.has_stream_end()) {
      co_return rx.finish(m.stream_end());
    } else if (m.has_abort()) {
      co_return fail(errc::cancelled, "sender aborted: " + m.abort().reason());
    } else {
      co_return fail(errc::protocol, "unexpected message #" + std::to_string(m.body_case()) + " in a file stream");
    }
  }
}

}  // namespace

awaitable<result<stream_stats>> receive_files(channel& ch, const std::filesystem::path& dir,
                                              const receive_options& opts) {
  auto t0 = clock::now();
  receiver rx(dir, opts);
  std::uint64_t wire_bytes = 0;
  auto outcome = co_await receive_loop(ch, rx, opts, wire_bytes);
  if (!outcome) {
    // The sender is still sending, not reading: this last word gets a short
    // deadline, or a failed stream would hold the receiver for the I/O one.
    if (outcome.error().code != errc::peer && ch.is_open()) {
      const pb::Envelope refusal = make_reply(0, outcome);
      co_await ch.send_within(refusal_timeout, refusal);
    }
    co_return std::unexpected(outcome.error());
  }
  if (auto ok = co_await ch.reply(0, {}); !ok) co_return std::unexpected(ok.error());
  co_return stream_stats{rx.completed(), rx.bytes_raw(), wire_bytes, ms_since(t0)};
}

}  // namespace migrated::transport
