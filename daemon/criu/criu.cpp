// CRIU feature detection and log excerpts. Detection runs `criu --version`,
// `criu check` and `criu check --feature X` once at start-up; the results go
// into this node's Capabilities so a peer can choose a method that works.
#include "criu/criu.hpp"

#include <fstream>
#include <vector>

#include "criu/page_pipes.hpp"
#include "process/process.hpp"

namespace migrated::criu {

awaitable<features> detect(const std::filesystem::path& binary) {
  features f;
  const std::string bin = binary.string();
  // (argument vectors are named variables: g++ 12 miscompiles braced
  // initializer lists passed to coroutines)
  process::options quick{.timeout = std::chrono::seconds(30)};
  std::vector<std::string> args{bin, "--version"};
  auto version = co_await process::run(args, quick);
  if (!version || !version->ok()) {
    f.problem = version ? "criu --version: " + version->summary() : version.error().message;
    co_return f;
  }
  auto pos = version->out.find("Version: ");
  if (pos != std::string::npos) {
    auto end = version->out.find('\n', pos);
    f.version = version->out.substr(pos + 9, end == std::string::npos ? std::string::npos : end - pos - 9);
  }
  args = {bin, "check"};
  auto check = co_await process::run(args, quick);
  f.usable = check && check->ok();
  if (!f.usable) f.problem = check ? "criu check: " + check->summary() : check.error().message;
  args = {bin, "check", "--feature", "mem_dirty_track"};
  auto dirty = co_await process::run(args, quick);
  f.dirty_tracking = dirty && dirty->ok();
  args = {bin, "check", "--feature", "uffd-noncoop"};
  auto uffd = co_await process::run(args, quick);
  f.userfaultfd = uffd && uffd->ok();
  args = {bin, "check", "--empty-ns", "none"};  // refused as "Unsupported empty namespace" without the patch
  auto netns = co_await process::run(args, quick);
  f.own_netns = netns && netns->ok();
  args = {bin, "check", "--feature", "network_lock_nftables"};
  auto nft = co_await process::run(args, quick);
  f.nftables_lock = nft && nft->ok();
  args = {bin, "check", "--feature", "tmpfs_plain_tar"};
  auto tar = co_await process::run(args, quick);
  f.tmpfs_plain_tar = tar && tar->ok();
  f.page_pipe_bytes = host_page_pipe_capacity();
  co_return f;
}

namespace {

result<void> write_file(const std::filesystem::path& file, const std::string& text) {
  const auto tmp = file.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << text;
    if (!out) return fail(errc::io, "write " + tmp);
  }
  std::error_code ec;
  std::filesystem::rename(tmp, file, ec);
  if (ec) return fail(errc::io, "rename " + tmp + ": " + ec.message());
  return {};
}

}  // namespace

result<overrides> write_overrides(const std::filesystem::path& dir, const features& f,
                                  const std::filesystem::path& cgroup_yard) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return fail(errc::io, "create " + dir.string() + ": " + ec.message());
  std::string common =
      "# Written by migrated at start-up: options for the CRIU that runc runs, on\n"
      "# dumps and restores alike. Docker's engine reads engine.conf too when dockerd\n"
      "# runs with CRIU_CONFIG_FILE naming it: its own restores pass neither option.\n"
      "tcp-established\n"
      "file-locks\n";
  if (!cgroup_yard.empty())
    common += "# The host's cgroup hierarchies, so that CRIU need not mount its own (criu/cgroup_yard.hpp).\n"
              "cgroup-yard " + cgroup_yard.string() + "\n";
  overrides o;
  o.engine_file = dir / "engine.conf";
  if (auto ok = write_file(o.engine_file, common); !ok) return std::unexpected(ok.error());
  o.engine = {"CRIU_CONFIG_FILE=" + o.engine_file.string()};
  if (f.own_netns) {
    const auto file = dir / "netns.conf";
    const std::string text = common +
                             "# runc always asks CRIU to leave a container's network namespace empty;\n"
                             "# this keeps its loopback, addresses, routes and connections (scripts/criu/0002).\n"
                             "empty-ns none\n";
    if (auto ok = write_file(file, text); !ok) return std::unexpected(ok.error());
    o.with_netns = {"CRIU_CONFIG_FILE=" + file.string()};
    const std::string lazy = "# Post-copy's final dump serves its pages on this descriptor (docs/design.md).\n"
                             "ps-socket " + std::to_string(page_socket_fd) + "\n";
    const auto lazy_file = dir / "lazy.conf", lazy_netns_file = dir / "lazy-netns.conf";
    if (auto ok = write_file(lazy_file, common + lazy); !ok) return std::unexpected(ok.error());
    if (auto ok = write_file(lazy_netns_file, text + lazy); !ok) return std::unexpected(ok.error());
    o.lazy = {"CRIU_CONFIG_FILE=" + lazy_file.string()};
    o.lazy_with_netns = {"CRIU_CONFIG_FILE=" + lazy_netns_file.string()};
    if (f.nftables_lock) {
      const std::string nft = "# The namespace is locked by nftables while CRIU works on it (docs/design.md).\n"
                              "network-lock nftables\n";
      const auto nft_file = dir / "netns-nft.conf", lazy_nft_file = dir / "lazy-netns-nft.conf";
      if (auto ok = write_file(nft_file, text + nft); !ok) return std::unexpected(ok.error());
      if (auto ok = write_file(lazy_nft_file, text + lazy + nft); !ok) return std::unexpected(ok.error());
      o.with_netns_nft = {"CRIU_CONFIG_FILE=" + nft_file.string()};
      o.lazy_with_netns_nft = {"CRIU_CONFIG_FILE=" + lazy_nft_file.string()};
    }
  }
  return o;
}

std::string log_errors(const std::filesystem::path& log, std::size_t max_lines) {
  std::ifstream in(log);
  if (!in) return {};
  std::vector<std::string> lines;
  std::string last;
  bool last_is_error = false;
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    last = line;
    auto pos = line.find("Error (");
    last_is_error = pos != std::string::npos;
    if (!last_is_error) continue;
    // Logged as an error on every restore by a daemon without CAP_SYS_RESOURCE
    // headroom, and harmless: CRIU goes on with the limit it has.
    if (line.find("Can't setup RLIMIT_NOFILE") != std::string::npos) continue;
    auto colon = line.find("): ", pos);
    lines.push_back(colon == std::string::npos ? line.substr(pos) : line.substr(colon + 3));
  }
  std::string out;
  // The first errors name the cause; later ones are its consequences.
  for (std::size_t i = 0; i < lines.size() && i < max_lines; ++i) {
    if (!out.empty()) out += "; ";
    out += lines[i];
  }
  // CRIU that crashed leaves no error line: its last words say where.
  if (!last_is_error && !last.empty()) {
    auto paren = last.find(") ");
    out += (out.empty() ? "" : "; ") + std::string("log ends: ") +
           (last.front() == '(' && paren != std::string::npos ? last.substr(paren + 2) : last);
  }
  if (out.empty()) return {};
  return out + " (see " + log.string() + ")";
}

std::vector<std::string> lazy_pages_command(const std::filesystem::path& binary, const std::filesystem::path& images,
                                            const std::filesystem::path& work, int socket_fd) {
  return {binary.string(), "lazy-pages", "--page-server", "--ps-socket", std::to_string(socket_fd), "-D",
          images.string(), "-W", work.string(), "-v4", "-o", "lazy-pages.log"};
}

}  // namespace migrated::criu
