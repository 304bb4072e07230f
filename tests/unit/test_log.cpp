// Logging: text lines carry the migration id and phase, setup() can replace
// the sink of loggers that already exist, and on journald the id, phase and
// module arrive as fields that journalctl can match on.

#include <catch2/catch.hpp>

#include "temp_dir.hpp"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include "common/log.hpp"

using namespace migrated;
using Catch::Matchers::Contains;

namespace {

using testing::temp_dir;

std::string read_all(const std::filesystem::path& file) {
  std::ifstream in(file);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

std::string run(const std::string& command) {
  std::string output;
  FILE* pipe = ::popen(command.c_str(), "r");
  if (!pipe) return output;
  char buffer[4096];
  while (std::size_t n = std::fread(buffer, 1, sizeof(buffer), pipe)) output.append(buffer, n);
  ::pclose(pipe);
  return output;
}

std::string unique_id(std::string_view prefix) {
  const auto now = std::chrono::steady_clock::now().time_since_epoch().count();
  return std::string(prefix) + std::to_string(::getpid()) + "-" + std::to_string(now);
}

log::options make_options(std::string sink, std::string level = "info", std::string file = {}) {
  log::options opts;
  opts.sink = std::move(sink);
  opts.level = std::move(level);
  opts.file = std::move(file);
  return opts;
}

// Leaves later tests with the default sink.
struct restore_stderr {
  ~restore_stderr() { (void)log::setup(log::options{}); }
};

}  // namespace

TEST_CASE("log: a file sink line carries module, id and phase", "[log]") {
  temp_dir dir;
  const restore_stderr restore;
  const auto file = dir.path / "m.log";
  REQUIRE(log::setup(make_options("file", "debug", file.string())));
  auto logger = log::get("test-file");
  log::info(*logger, "m-42", "dump", "round {} wrote {} pages", 2, 128);
  log::event(*logger, spdlog::level::debug, "m-42", "send", "flushed");
  logger->trace("not at this level");
  const std::string text = read_all(file);
  CHECK_THAT(text, Contains("test-file: [m-42] dump: round 2 wrote 128 pages"));
  CHECK_THAT(text, Contains("info"));
  CHECK_THAT(text, Contains("[m-42] send: flushed"));
  CHECK_THAT(text, !Contains("not at this level"));
}

TEST_CASE("log: setup replaces the sink of existing loggers", "[log]") {
  temp_dir dir;
  const restore_stderr restore;
  auto logger = log::get("test-swap");
  CHECK(log::get("test-swap") == logger);
  CHECK(spdlog::get("test-swap") == logger);
  REQUIRE(log::setup(make_options("file", "info", (dir.path / "a.log").string())));
  logger->info("first");
  logger->debug("hidden at info");
  REQUIRE(log::setup(make_options("file", "debug", (dir.path / "b.log").string())));
  logger->info("second");
  logger->debug("shown at debug");
  const std::string a = read_all(dir.path / "a.log");
  const std::string b = read_all(dir.path / "b.log");
  CHECK_THAT(a, Contains("first") && !Contains("second") && !Contains("hidden"));
  CHECK_THAT(b, Contains("second") && Contains("shown at debug") && !Contains("first"));
}

TEST_CASE("log: setup rejects what it cannot honour", "[log]") {
  temp_dir dir;
  const restore_stderr restore;
  auto sink = log::setup(make_options("syslog"));
  REQUIRE_FALSE(sink);
  CHECK_THAT(sink.error().message, Contains("log.sink") && Contains("syslog"));
  auto level = log::setup(make_options("stderr", "loud"));
  REQUIRE_FALSE(level);
  CHECK_THAT(level.error().message, Contains("log.level") && Contains("loud"));
  auto no_file = log::setup(make_options("file"));
  REQUIRE_FALSE(no_file);
  CHECK_THAT(no_file.error().message, Contains("log.file"));
  // A regular file as the parent directory fails even for root.
  std::ofstream(dir.path / "plain") << "x";
  auto unwritable = log::setup(make_options("file", "info", (dir.path / "plain" / "m.log").string()));
  REQUIRE_FALSE(unwritable);
  CHECK_THAT(unwritable.error().message, Contains("plain/m.log"));
}

TEST_CASE("log: journald lines carry MIGRATION_ID, PHASE and MODULE", "[log][journald]") {
  if (!std::filesystem::exists("/run/systemd/journal/socket")) {
    WARN("skipped: /run/systemd/journal/socket does not exist (systemd-journald not running)");
    return;
  }
  if (run("command -v journalctl").empty()) {
    WARN("skipped: journalctl is not installed");
    return;
  }
  const restore_stderr restore;
  log::options opts = make_options("journald");
  opts.ident = "migrated-test";
  auto ready = log::setup(opts);
  INFO((ready ? std::string() : ready.error().message));
  REQUIRE(ready);
  const std::string id = unique_id("m-test-");
  auto logger = log::get("test-journal");
  log::info(*logger, id, "restore", "restored {} processes", 3);
  logger->info("plain line after {}", id);  // outside event(): no migration fields

  const std::string query = "journalctl --no-pager -o json MIGRATION_ID=" + id + " 2>/dev/null";
  std::string found;
  for (int attempt = 0; attempt < 50 && found.empty(); ++attempt) {
    (void)run("journalctl --sync 2>/dev/null");
    found = run(query);
    if (found.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  INFO(found);
  CHECK_THAT(found, Contains("\"PHASE\":\"restore\""));
  CHECK_THAT(found, Contains("\"MODULE\":\"test-journal\""));
  CHECK_THAT(found, Contains("\"SYSLOG_IDENTIFIER\":\"migrated-test\""));
  CHECK_THAT(found, Contains("\"PRIORITY\":\"6\""));
  CHECK_THAT(found, Contains("restore: restored 3 processes"));

  const std::string plain =
      run("journalctl --no-pager -o json MODULE=test-journal 'MESSAGE=plain line after " + id +
          "' 2>/dev/null");
  INFO(plain);
  CHECK_THAT(plain, Contains("plain line after") && !Contains("MIGRATION_ID"));
}
