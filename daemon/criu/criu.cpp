// CRIU feature detection and log excerpts. Detection runs `criu --version`,
// `criu check` and `criu check --feature X` once at start-up; the results go
// into this node's Capabilities so a peer can choose a method that works.
#include "criu/criu.hpp"

#include <fstream>
#include <vector>

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
  co_return f;
}

result<std::vector<std::string>> write_overrides(const std::filesystem::path& file, const features& f) {
  if (!f.own_netns) return std::vector<std::string>{};
  std::error_code ec;
  std::filesystem::create_directories(file.parent_path(), ec);
  const auto tmp = file.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << "# Written by migrated at start-up: options for every CRIU that runc runs for it.\n"
           "# runc always asks CRIU to leave a container's network namespace empty;\n"
           "# this keeps its loopback, addresses, routes and TCP connections.\n"
           "empty-ns none\n";
    if (!out) return fail(errc::io, "write " + tmp);
  }
  std::filesystem::rename(tmp, file, ec);
  if (ec) return fail(errc::io, "rename " + tmp + ": " + ec.message());
  return std::vector<std::string>{"CRIU_CONFIG_FILE=" + file.string()};
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

}  // namespace migrated::criu
