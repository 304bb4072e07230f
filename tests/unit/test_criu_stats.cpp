// Unit tests for images/criu_stats: the stats-dump and stats-restore CRIU
// 4.1.1 wrote for a real dump and restore of a process
// (tests/unit/fixtures/criu-4.1.1/sleep-stats-*), files built here in CRIU's
// framing, and the errors for a missing, foreign or damaged file.
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "temp_dir.hpp"

#include "images/criu_stats.hpp"
#include "migration/stats.hpp"

using namespace migrated;
using namespace migrated::images;
namespace fs = std::filesystem;

namespace {

const fs::path fixtures = fs::path(__FILE__).parent_path() / "fixtures" / "criu-4.1.1";

// Facts about CRIU's format, stated independently of the code under test.
constexpr std::uint32_t img_service_magic = 0x55105940;
constexpr std::uint32_t img_common_magic = 0x54564319;
constexpr std::uint32_t stats_magic = 0x57093306;

void put_u32(std::vector<std::uint8_t>& out, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(std::uint8_t(v >> (8 * i)));
}

std::vector<std::uint8_t> image(std::uint32_t first, std::uint32_t second, const std::string& message) {
  std::vector<std::uint8_t> out;
  put_u32(out, first);
  put_u32(out, second);
  put_u32(out, std::uint32_t(message.size()));
  out.insert(out.end(), message.begin(), message.end());
  return out;
}

void write(const fs::path& file, const std::vector<std::uint8_t>& data) {
  std::ofstream out(file, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(data.data()), std::streamsize(data.size()));
}

void copy_fixture(const std::string& name, const fs::path& to) {
  fs::copy_file(fixtures / name, to, fs::copy_options::overwrite_existing);
}

}  // namespace

TEST_CASE("criu_stats: a real dump's statistics", "[criu_stats]") {
  testing::temp_dir dir;
  copy_fixture("sleep-stats-dump", dir.path / "stats-dump");
  auto d = read_dump_stats(dir.path);
  REQUIRE(d.has_value());
  // What CRIU 4.1.1 printed for that dump of `sleep` (criu show/protoc).
  CHECK(d->freezing_time() == 131);
  CHECK(d->frozen_time() == 23342);
  CHECK(d->memdump_time() == 460);
  CHECK(d->memwrite_time() == 109);
  CHECK(d->pages_scanned() == 58);
  CHECK(d->pages_skipped_parent() == 0);
  CHECK(d->pages_written() == 31);
  CHECK(d->pages_lazy() == 0);
  // In the report, in milliseconds.
  const auto report = migration::criu_dump_report(*d);
  CHECK(report.freezing_ms() == Approx(0.131));
  CHECK(report.frozen_ms() == Approx(23.342));
  CHECK(report.pages_written() == 31);
  // The dump's file holds no restore statistics.
  copy_fixture("sleep-stats-dump", dir.path / "stats-restore");
  auto r = read_restore_stats(dir.path);
  REQUIRE_FALSE(r.has_value());
  CHECK(r.error().code == errc::protocol);
  CHECK_THAT(r.error().message, Catch::Contains("no restore statistics"));
}

TEST_CASE("criu_stats: a real restore's statistics", "[criu_stats]") {
  testing::temp_dir dir;
  copy_fixture("sleep-stats-restore", dir.path / "stats-restore");
  auto r = read_restore_stats(dir.path);
  REQUIRE(r.has_value());
  CHECK(r->pages_restored() == 31);  // every page the dump wrote
  CHECK(r->forking_time() == 1);
  CHECK(r->restore_time() == 7087);
  const auto report = migration::criu_restore_report(*r);
  CHECK(report.restore_ms() == Approx(7.087));
  CHECK(report.pages_restored() == 31);
}

TEST_CASE("criu_stats: files built in CRIU's framing", "[criu_stats]") {
  testing::temp_dir dir;
  criu::StatsEntry e;
  e.mutable_dump()->set_freezing_time(5000);
  e.mutable_dump()->set_pages_lazy(16384);
  write(dir.path / "stats-dump", image(img_service_magic, stats_magic, e.SerializeAsString()));
  auto d = read_dump_stats(dir.path);
  REQUIRE(d.has_value());
  CHECK(d->freezing_time() == 5000);
  CHECK(d->pages_lazy() == 16384);
  CHECK(d->pages_written() == 0);
}

TEST_CASE("criu_stats: missing, foreign and damaged files", "[criu_stats]") {
  testing::temp_dir dir;
  SECTION("none written") {
    auto d = read_dump_stats(dir.path);
    REQUIRE_FALSE(d.has_value());
    CHECK(d.error().code == errc::not_found);
  }
  SECTION("a pagemap's magic") {
    write(dir.path / "stats-dump", image(img_common_magic, 0x56084025, ""));
    auto d = read_dump_stats(dir.path);
    REQUIRE_FALSE(d.has_value());
    CHECK(d.error().code == errc::protocol);
    CHECK_THAT(d.error().message, Catch::Contains("stats-dump"));
  }
  SECTION("no entry") {
    std::vector<std::uint8_t> data;
    put_u32(data, img_service_magic);
    put_u32(data, stats_magic);
    write(dir.path / "stats-dump", data);
    auto d = read_dump_stats(dir.path);
    REQUIRE_FALSE(d.has_value());
    CHECK(d.error().code == errc::protocol);
    CHECK_THAT(d.error().message, Catch::Contains("no stats entry"));
  }
  SECTION("an entry that is not protobuf") {
    write(dir.path / "stats-dump", image(img_service_magic, stats_magic, std::string("\xff\xff\xff", 3)));
    auto d = read_dump_stats(dir.path);
    REQUIRE_FALSE(d.has_value());
    CHECK(d.error().code == errc::protocol);
    CHECK_THAT(d.error().message, Catch::Contains("not valid protobuf"));
  }
  SECTION("an entry cut short") {
    auto data = image(img_service_magic, stats_magic, criu::StatsEntry().SerializeAsString() + "abcd");
    data.resize(data.size() - 2);
    write(dir.path / "stats-dump", data);
    auto d = read_dump_stats(dir.path);
    REQUIRE_FALSE(d.has_value());
    CHECK(d.error().code == errc::protocol);
  }
  SECTION("two entries") {
    criu::StatsEntry e;
    e.mutable_dump();
    auto data = image(img_service_magic, stats_magic, e.SerializeAsString());
    const auto more = e.SerializeAsString();
    put_u32(data, std::uint32_t(more.size()));
    data.insert(data.end(), more.begin(), more.end());
    write(dir.path / "stats-dump", data);
    auto d = read_dump_stats(dir.path);
    REQUIRE_FALSE(d.has_value());
    CHECK_THAT(d.error().message, Catch::Contains("more than one"));
  }
}
