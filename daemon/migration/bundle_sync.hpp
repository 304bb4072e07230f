// Moving a container's bundle (config.json + rootfs) with the tree protocol:
// the source sends the manifest of the tree, the destination plans (fixing
// all metadata at once) and answers with the files it wants, the source
// streams those. Run while the container runs (most of the data), and again
// after it stopped (only what it changed meanwhile), so open files and
// written data match what the checkpoint expects.
#pragma once

#include <filesystem>
#include <string>

#include "transport/file_stream.hpp"

namespace migrated::migration {

struct sync_stats {
  std::uint32_t entries = 0;
  transport::stream_stats files;
};

// The tree names on the wire: the bundle (runc) or writable layer (Docker),
// and each named volume.
inline const std::string bundle_tree = "bundle";
inline std::string volume_tree(const std::string& name) { return "volume:" + name; }

// Source side.
awaitable<result<sync_stats>> send_tree(transport::channel& ch, const std::filesystem::path& root,
                                        const transport::send_options& opts, const std::string& tree = bundle_tree);

// Destination side; `first` is the first TreeManifest frame, already read.
awaitable<result<sync_stats>> receive_tree(transport::channel& ch, const std::filesystem::path& root,
                                           const pb::TreeManifest& first, asio::thread_pool& pool);

}  // namespace migrated::migration
