// Streams of files over a channel: FileBegin, FileChunk* (payload = raw or
// zstd bytes), FileEnd (XXH3-128 of the whole file), ..., StreamEnd, then
// the receiver's Reply once everything is written and verified. Reading,
// hashing, compressing and writing run on the thread pool; the I/O thread
// only moves frames. Received names are confined to the target directory.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "asio.hpp"
#include "transport/channel.hpp"

namespace migrated::transport {

struct stream_stats {
  std::uint32_t files = 0;
  std::uint64_t bytes_raw = 0;   // file bytes
  std::uint64_t bytes_wire = 0;  // frame payload bytes actually sent
  double ms = 0;
};

// Emits one chunk of produced bytes; false when the stream was abandoned.
using chunk_writer = std::function<bool(std::span<const std::uint8_t>)>;

// Produces a file's bytes on the pool (e.g. a page delta, docs/images.md)
// instead of reading them from `path`; returns the tag for FileEnd.tree_digest.
using file_producer = std::function<result<std::string>(const chunk_writer&)>;

struct outgoing_file {
  std::string name;              // relative name at the receiver
  std::filesystem::path path;    // where to read it here
  file_producer produce;         // set: send what it produces instead
  std::string pagemap;           // produced page deltas: their pagemap image
  std::uint64_t size = 0;        // produced: the size of the file it rebuilds
  std::uint64_t stream_bytes = 0;  // produced: the raw bytes it will produce, when known (progress)
  bool engine_image = false;     // produced: an image archive for the peer's engine (size unknown)
};

struct send_options {
  asio::thread_pool* pool = nullptr;
  int zstd_level = 3;            // 0: send raw
  std::uint32_t chunk_bytes = 1u << 20;
  // After each chunk: the raw bytes sent so far and, when every file's size
  // is known in advance (on disk, or a producer's stream_bytes), what they
  // add up to (0: unknown).
  std::function<void(std::uint64_t raw_done, std::uint64_t raw_expected)> on_progress;
  std::function<bool()> cut_connection;  // fault hook: true = drop the link now
  // The files may change while they are read (the tree of a running
  // container): one that vanished is skipped, one that shrank is sent as it
  // was read (FileEnd.shrank). The sync after the stop carries their final
  // content. Otherwise either is an error.
  bool live = false;
};

awaitable<result<stream_stats>> send_files(channel& ch, const std::vector<outgoing_file>& files,
                                           const send_options& opts);

// Receives the bytes of a produced file (FileBegin.page_delta or
// engine_image) in place of
// writing them: feed() runs on the pool, finish() after the stream's own
// checksum matched, with FileEnd (its tree_digest) to verify the result.
class chunk_sink {
 public:
  virtual ~chunk_sink() = default;
  virtual result<void> feed(std::span<const std::uint8_t> chunk) = 0;
  virtual result<void> finish(const pb::FileEnd& end) = 0;
};

struct receive_options {
  asio::thread_pool* pool = nullptr;
  // Opens the sink of a produced file; unset: such files are refused.
  std::function<result<std::unique_ptr<chunk_sink>>(const pb::FileBegin&, const std::filesystem::path& file)> open_sink;
  // Called after a file is complete and verified (e.g. to set its metadata).
  std::function<result<void>(const std::string& name, const std::filesystem::path& file)> on_file_done;
  // Called on every chunk before it is written (fault hooks).
  std::function<void(std::uint64_t chunk_index, std::vector<std::uint8_t>& raw)> on_chunk;
};

// Receives one stream into `dir` and answers it with a Reply (ok or the error).
awaitable<result<stream_stats>> receive_files(channel& ch, const std::filesystem::path& dir,
                                              const receive_options& opts);

}  // namespace migrated::transport
