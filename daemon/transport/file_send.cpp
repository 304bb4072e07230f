// The sending side of file streams (see file_stream.hpp): a file's chunks
// are read, hashed and compressed on the pool; a produced file (a page
// delta) comes from its producer through a bounded pipe, so producing and
// sending overlap.
#include "transport/file_stream.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>

#include "common/hash.hpp"
#include "common/unique_fd.hpp"
#include "common/zstd_codec.hpp"
#include "transport/chunk_pipe.hpp"
#include "transport/compression.hpp"

namespace migrated::transport {
namespace {

// Bytes sent so far, and what the whole stream will be when that is known
// in advance (0 when not: a producer's output has no size until it ends).
struct progress_count {
  std::uint64_t done = 0;
  std::uint64_t expected = 0;
};

// The sizes of the files to send (stat'd on the pool: a tree may hold
// thousands), or 0 when a producer does not know its size in advance.
std::uint64_t expected_bytes(const std::vector<outgoing_file>& files) {
  std::uint64_t total = 0;
  for (const auto& f : files) {
    if (f.produce) {
      if (f.stream_bytes == 0) return 0;
      total += f.stream_bytes;
      continue;
    }
    std::error_code ec;
    const auto n = std::filesystem::file_size(f.path, ec);
    if (!ec) total += n;
  }
  return total;
}

using clock = std::chrono::steady_clock;

double ms_since(clock::time_point t) {
  return std::chrono::duration<double, std::milli>(clock::now() - t).count();
}

struct prepared_chunk {
  std::vector<std::uint8_t> wire;  // what goes in the payload
  std::uint32_t raw = 0;
  bool compressed = false;
};

// The FileChunk header for `raw` bytes of file `id` at `offset`.
pb::Envelope chunk_header(std::uint32_t id, std::uint64_t offset, std::uint32_t raw, bool compressed) {
  pb::Envelope env;
  auto* m = env.mutable_file_chunk();
  m->set_file_id(id);
  m->set_offset(offset);
  m->set_raw_bytes(raw);
  m->set_compressed(compressed);
  return env;
}

// Compresses `data` into c.wire when the policy says so and it pays.
void pack(std::span<const std::uint8_t> data, zstd_compressor* zc, adaptive_compression& policy,
          prepared_chunk& c) {
  c.raw = std::uint32_t(data.size());
  c.compressed = false;
  const int level = zc ? policy.next_level(data.size()) : 0;
  if (level > 0) {
    zc->set_level(level);
    const auto t0 = clock::now();
    if (zc->compress(data, c.wire)) {
      policy.compressed(data.size(), c.wire.size(), ms_since(t0));
      if (double(c.wire.size()) < double(data.size()) * (1.0 - adaptive_compression::min_gain)) {
        c.compressed = true;
        return;
      }
    }
  }
  c.wire.assign(data.begin(), data.end());
}

// Reads [offset, offset+len) of fd, feeds the hash, compresses if worth it.
// A file that ends early fails unless `live`; then the chunk is what was read.
result<prepared_chunk> prepare_chunk(int fd, std::uint64_t offset, std::uint32_t len, bool live,
                                     xxh128_stream& hash, zstd_compressor* zc, adaptive_compression& policy,
                                     std::vector<std::uint8_t>& raw) {
  raw.resize(len);
  std::size_t got = 0;
  while (got < len) {
    ssize_t n = ::pread(fd, raw.data() + got, len - got, off_t(offset + got));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail_errno(errno, "read");
    if (n == 0 && !live) return fail(errc::io, "file shrank while being sent");
    if (n == 0) break;
    got += std::size_t(n);
  }
  raw.resize(got);
  hash.update(raw);
  prepared_chunk c;
  pack(raw, zc, policy, c);
  return c;
}

awaitable<result<void>> send_one(channel& ch, std::uint32_t id, const outgoing_file& f,
                                 const send_options& opts, zstd_compressor* zc, adaptive_compression& policy,
                                 stream_stats& st, progress_count& count) {
  struct stat sb {};
  auto opened = co_await offload(*opts.pool, [&]() -> result<unique_fd> {
    auto fd = open_readonly(f.path);
    if (fd && ::fstat(fd->get(), &sb) != 0) return fail_errno(errno, "stat " + f.path.string());
    return fd;
  });
  // A file of a running container that is gone now: the next sync says so.
  if (!opened && opts.live && opened.error().code == errc::not_found) co_return result<void>{};
  if (!opened) co_return std::unexpected(opened.error());
  unique_fd fd = std::move(*opened);
  const std::uint64_t size = std::uint64_t(sb.st_size);

  pb::Envelope begin;
  auto* b = begin.mutable_file_begin();
  b->set_file_id(id);
  b->set_path(f.name);
  b->set_size(size);
  b->set_mode(sb.st_mode & 07777);
  b->set_mtime_ns(std::int64_t(sb.st_mtim.tv_sec) * 1'000'000'000 + sb.st_mtim.tv_nsec);
  if (auto ok = co_await ch.send(begin); !ok) co_return ok;

  xxh128_stream hash;
  std::vector<std::uint8_t> raw;
  std::uint64_t sent = 0;
  while (sent < size) {
    const auto want = std::uint32_t(std::min<std::uint64_t>(opts.chunk_bytes, size - sent));
    auto c = co_await offload(*opts.pool,
                              [&] { return prepare_chunk(fd.get(), sent, want, opts.live, hash, zc, policy, raw); });
    if (!c) co_return std::unexpected(c.error().context(f.path.string()));
    if (c->raw > 0) {
      if (opts.cut_connection && opts.cut_connection()) {
        ch.close();
        co_return fail(errc::peer, "connection dropped (fault source.transfer.cut)");
      }
      const pb::Envelope chunk = chunk_header(id, sent, c->raw, c->compressed);
      const auto t0 = clock::now();
      if (auto ok = co_await ch.send(chunk, c->wire); !ok) co_return ok;
      policy.sent(c->wire.size(), ms_since(t0));
      sent += c->raw;
      count.done += c->raw;
      st.bytes_wire += c->wire.size();
      if (opts.on_progress) opts.on_progress(count.done, count.expected);
    }
    if (c->raw < want) break;  // (live) it ended before its announced size
  }
  pb::Envelope end;
  end.mutable_file_end()->set_file_id(id);
  auto d = hash.digest();
  end.mutable_file_end()->set_xxh128(d.data(), d.size());
  if (sent < size) {
    end.mutable_file_end()->set_shrank(true);
    end.mutable_file_end()->set_size(sent);
  }
  st.bytes_raw += sent;
  st.files += 1;
  co_return co_await ch.send(end);
}

// Chunks in flight between a producer and the socket: enough to keep both
// busy, few enough that memory stays small (at most this many chunk_bytes).
constexpr std::size_t pipe_depth = 8;

// Runs on the pool: produces, hashes, compresses and queues the chunks.
void run_producer(std::shared_ptr<chunk_pipe> pipe, file_producer produce, zstd_compressor* zc,
                  adaptive_compression& policy, std::shared_ptr<digest128> stream_digest) {
  xxh128_stream hash;
  chunk_writer write = [&](std::span<const std::uint8_t> data) {
    hash.update(data);
    prepared_chunk packed;
    pack(data, zc, policy, packed);
    pipe_chunk c{std::move(packed.wire), packed.raw, packed.compressed};
    return pipe->push(std::move(c));
  };
  auto outcome = produce(write);
  *stream_digest = hash.digest();
  pipe->finish(std::move(outcome));
}

awaitable<result<void>> send_produced(channel& ch, std::uint32_t id, const outgoing_file& f,
                                      const send_options& opts, zstd_compressor* zc, adaptive_compression& policy,
                                      stream_stats& st, progress_count& count) {
  pb::Envelope begin;
  auto* b = begin.mutable_file_begin();
  b->set_file_id(id);
  b->set_path(f.name);
  b->set_size(f.size);
  b->set_mode(0600);
  b->set_page_delta(!f.engine_image);
  b->set_engine_image(f.engine_image);
  b->set_pagemap(f.pagemap);
  if (auto ok = co_await ch.send(begin); !ok) co_return ok;

  auto pipe = std::make_shared<chunk_pipe>(co_await asio::this_coro::executor, pipe_depth);
  auto stream_digest = std::make_shared<digest128>();
  // zc and policy outlive the producer: we drain the pipe before returning.
  asio::post(*opts.pool, [pipe, produce = f.produce, zc, &policy, stream_digest] {
    run_producer(pipe, produce, zc, policy, stream_digest);
  });
  result<void> sent{};
  std::uint64_t offset = 0;
  while (auto c = co_await pipe->pop()) {
    if (!sent) continue;  // draining after a failure: the producer must end before we return
    if (opts.cut_connection && opts.cut_connection()) {
      ch.close();
      sent = fail(errc::peer, "connection dropped (fault source.transfer.cut)");
    } else {
      const pb::Envelope chunk = chunk_header(id, offset, c->raw_bytes, c->compressed);
      const auto t0 = clock::now();
      sent = co_await ch.send(chunk, c->wire);
      policy.sent(c->wire.size(), ms_since(t0));
    }
    if (!sent) {
      pipe->cancel();
      continue;
    }
    offset += c->raw_bytes;
    count.done += c->raw_bytes;
    st.bytes_wire += c->wire.size();
    if (opts.on_progress) opts.on_progress(count.done, count.expected);
  }
  if (!sent) co_return sent;
  if (!pipe->outcome()) co_return std::unexpected(pipe->outcome().error().context(f.name));
  pb::Envelope end;
  auto* e = end.mutable_file_end();
  e->set_file_id(id);
  e->set_xxh128(stream_digest->data(), stream_digest->size());
  e->set_tree_digest(*pipe->outcome());
  st.bytes_raw += f.engine_image ? offset : f.size;  // an image archive is as long as it streamed
  st.files += 1;
  co_return co_await ch.send(end);
}

}  // namespace

awaitable<result<stream_stats>> send_files(channel& ch, const std::vector<outgoing_file>& files,
                                           const send_options& opts) {
  auto t0 = clock::now();
  stream_stats st;
  std::unique_ptr<zstd_compressor> zc;
  if (opts.zstd_level > 0) zc = std::make_unique<zstd_compressor>(opts.zstd_level);
  adaptive_compression policy(opts.zstd_level);
  progress_count count;
  if (opts.on_progress) count.expected = co_await offload(*opts.pool, [&] { return expected_bytes(files); });
  result<void> sent{};
  for (std::uint32_t i = 0; i < files.size() && sent; ++i) {
    if (files[i].produce)
      sent = co_await send_produced(ch, i, files[i], opts, zc.get(), policy, st, count);
    else
      sent = co_await send_one(ch, i, files[i], opts, zc.get(), policy, st, count);
  }
  if (sent) {
    pb::Envelope end;
    end.mutable_stream_end()->set_files(st.files);
    end.mutable_stream_end()->set_bytes(st.bytes_raw);
    sent = co_await ch.send(end);
  }
  if (!sent) {
    // The receiver may have refused the stream and said why before closing.
    if (ch.is_open()) {
      auto why = co_await ch.recv(std::chrono::milliseconds(500));
      if (why && why->msg.has_abort()) co_return std::unexpected(aborted_by_peer(ch, why->msg.abort()));
      if (why && why->msg.has_reply() && !why->msg.reply().ok())
        co_return std::unexpected(to_result(why->msg.reply()).error().context("receiver refused the stream"));
    }
    co_return std::unexpected(sent.error());
  }
  auto r = co_await expect_reply(ch, "file stream", ch.io_timeout());
  if (!r) co_return std::unexpected(r.error());
  if (auto ok = to_result(*r); !ok) co_return std::unexpected(ok.error().context("receiver"));
  st.ms = ms_since(t0);
  co_return st;
}

}  // namespace migrated::transport
