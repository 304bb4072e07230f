// What migrated needs to know about CRIU: its version and the kernel
// features it can use (dirty-page tracking, userfaultfd), checked once at
// start-up; and, when a dump or restore fails, the Error lines of its log
// lifted into the message (as crun's show_criu_log does).
#pragma once

#include <cstddef>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "asio.hpp"
#include "common/error.hpp"

namespace migrated::criu {

struct features {
  std::string version;        // "4.1.1"
  bool usable = false;        // `criu check` passed
  bool dirty_tracking = false;
  bool userfaultfd = false;
  // Accepts "empty-ns none" and reads CRIU_CONFIG_FILE after an RPC request
  // (scripts/criu/0002): a container's own network namespace can then be
  // dumped and restored although runc always asks to leave it empty.
  bool own_netns = false;
  // Can lock a dumped or restored network namespace with nftables
  // (`network-lock nftables`, in-process) rather than iptables, whose
  // unlock alone runs iptables-restore five times: ~50 ms of every
  // downtime, at each end.
  bool nftables_lock = false;
  // Its dumps keep tmpfs contents as a plain tar, and it restores them
  // (scripts/criu/0008): an older CRIU cannot restore its images.
  bool tmpfs_plain_tar = false;
  // The largest page pipe its dumps get on this host (page_pipes.hpp).
  std::size_t page_pipe_bytes = 0;
  std::string problem;        // why not usable
};

awaitable<features> detect(const std::filesystem::path& binary);

// The options migrated gives every CRIU that an RPC client (runc) runs for
// it, as environments naming a configuration file (CRIU_CONFIG_FILE):
// - engine: tcp-established and file-locks, on dumps and restores alike;
//   Docker's engine needs the same file for its own restores
//   (docs/operations.md, "Docker");
// - with_netns: those, and "empty-ns none": a container's own network
//   namespace travels in its images (empty when this CRIU cannot).
// - lazy, lazy_with_netns: the same for post-copy's final dump, which
//   serves the container's pages on the socket runc's child has at
//   page_socket_fd (`ps-socket`; runc itself passes only an address and a
//   port, which any local process could connect to first). Empty when this
//   CRIU lacks scripts/criu/0002, which makes it read the file after the
//   RPC request.
// - *_nft: the same dumps with the network namespace locked by nftables,
//   for a destination whose CRIU can lift that lock (the dump records the
//   method in its inventory, and the restore follows it). Empty when this
//   CRIU cannot, or lacks scripts/criu/0005.
// Every file names `cgroup_yard` when there is one (criu/cgroup_yard.hpp).
struct overrides {
  std::filesystem::path engine_file;
  std::vector<std::string> engine;
  std::vector<std::string> with_netns;
  std::vector<std::string> lazy;
  std::vector<std::string> lazy_with_netns;
  std::vector<std::string> with_netns_nft;       // dumps only
  std::vector<std::string> lazy_with_netns_nft;
};

// The descriptor number at which runc, and the `criu swrk` it starts, get
// the page socket of a lazy dump: high enough that neither reuses it.
inline constexpr int page_socket_fd = 200;
result<overrides> write_overrides(const std::filesystem::path& dir, const features& f,
                                  const std::filesystem::path& cgroup_yard = {});

// `criu lazy-pages` for a post-copy restore of `images`: it listens on
// `work`/lazy-pages.socket for the restore's userfaultfds, and asks for
// every page the images lack on the page-server socket it finds at
// descriptor `socket_fd` (the caller's page source; --ps-socket).
std::vector<std::string> lazy_pages_command(const std::filesystem::path& binary, const std::filesystem::path& images,
                                            const std::filesystem::path& work, int socket_fd);
inline constexpr std::string_view lazy_pages_socket = "lazy-pages.socket";  // in `work`

// Up to max_lines "Error (...)" lines of a CRIU log, joined with "; ",
// followed by " (see <log>)". Empty when the log has none or is missing.
std::string log_errors(const std::filesystem::path& log, std::size_t max_lines = 3);

}  // namespace migrated::criu
