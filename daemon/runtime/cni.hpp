// Containers on a real network, for the runc backend: a named network
// namespace (config.json names its path under /run/netns, so runc and CRIU
// treat it as external) holding an interface that a CNI plugin put on a
// bridge of this host (Debian's containernetworking-plugins), described by
// <runtime.runc.cni.conf_dir>/<network>.conf, where <network> is the
// container's annotation migrated.network.
//
// CRIU carries the processes and their sockets, not the namespace: the
// destination sets up one of its own with the same address and MAC before
// the restore, and the source takes its interface off the bridge while its
// frozen copy waits for Commit (two live copies of one address on one
// segment would answer the clients both). In order:
//
//   source                                 destination
//   describe (address, MAC) while running
//   freeze; isolate: host end down; dump
//                                          attach: netns, lo up, locked with
//                                            CRIU's own rules (the restore's
//                                            unlock lifts them: no RST to a
//                                            client before the sockets are
//                                            back), CNI ADD with the address
//                                            and MAC
//                                          restore; announce (gratuitous ARP)
//   commit: detach (CNI DEL, netns gone)   — or, failing: detach
//   or rollback: host end up, thaw, announce
//
// The namespace's own processes are the container's; these steps run `ip`,
// `nsenter`, `iptables-restore`, busybox's arping and the plugin as child
// processes in the daemon's own network namespace, which is the host's.
#pragma once

#include <filesystem>
#include <string>

#include "asio.hpp"
#include "common/config.hpp"
#include "common/error.hpp"

namespace migrated::runtime::cni {

// What a container's network is, as a migration carries it (in the images:
// network.json).
struct attachment {
  std::string network;         // the CNI network (annotation migrated.network)
  std::string ifname = "eth0";
  std::string address;         // "10.88.0.10/24"
  std::string mac;             // "9e:bb:26:28:6a:59"

  std::string to_json() const;
  static result<attachment> from_json(std::string_view text);
};

inline constexpr const char* annotation = "migrated.network";
inline constexpr const char* image_file = "network.json";  // beside CRIU's images
inline constexpr const char* netns_dir = "/run/netns";

class plugins {
 public:
  explicit plugins(const config::runc_config& cfg) : conf_dir_(cfg.cni_conf_dir), bin_dir_(cfg.cni_bin_dir) {}

  // The address and MAC of `ifname` in the namespace at `netns`.
  awaitable<result<attachment>> describe(const std::filesystem::path& netns, const std::string& network,
                                         const std::string& ifname);
  // The host end of the interface down (off: true) or up again.
  awaitable<result<void>> isolate(const std::filesystem::path& netns, const std::string& ifname, bool off);
  // A new namespace at `netns` with lo up, locked, and the interface.
  awaitable<result<void>> attach(const std::filesystem::path& netns, const std::string& container,
                                 const attachment& a);
  // Tells the segment where the address is now (gratuitous ARP); best effort.
  awaitable<void> announce(const std::filesystem::path& netns, const attachment& a);
  // CNI DEL and the namespace removed; what is already gone is no error.
  awaitable<result<void>> detach(const std::filesystem::path& netns, const std::string& container,
                                 const attachment& a);

 private:
  awaitable<result<std::string>> plugin(const std::string& command, const std::filesystem::path& netns,
                                        const std::string& container, const attachment& a);

  std::filesystem::path conf_dir_;
  std::filesystem::path bin_dir_;
};

// "/run/netns/NAME" → "NAME"; empty for a path elsewhere.
std::string netns_name(const std::filesystem::path& netns);

}  // namespace migrated::runtime::cni
