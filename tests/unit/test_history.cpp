// The history of finished migrations: newest first, the same after a
// reopen (a daemon restart), bounded with the oldest dropped from disk, a
// file that is no report skipped, and the registry keeping each finished
// report once.
#include <fstream>

#include <catch2/catch.hpp>

#include "migration/history.hpp"
#include "migration/registry.hpp"
#include "temp_dir.hpp"

using namespace migrated;
using namespace migrated::migration;

namespace {

pb::Report report(const std::string& id, pb::Result result, double downtime_ms) {
  pb::Report r;
  r.set_id(id);
  r.set_container("web-1");
  r.set_source("edge-a");
  r.set_destination("edge-b");
  r.set_method(pb::PRECOPY);
  r.set_result(result);
  r.set_downtime_ms(downtime_ms);
  return r;
}

std::vector<std::string> ids(const std::vector<pb::Report>& rs) {
  std::vector<std::string> out;
  for (auto& r : rs) out.push_back(r.id());
  return out;
}

std::size_t files_in(const std::filesystem::path& dir) {
  std::size_t n = 0;
  for (auto& e : std::filesystem::directory_iterator(dir)) n += e.is_regular_file();
  return n;
}

}  // namespace

TEST_CASE("history: newest first, and the same after a reopen", "[history]") {
  testing::temp_dir tmp;
  const auto dir = tmp.path / "history";
  {
    history h(dir);
    REQUIRE(h.open());
    REQUIRE(h.add(report("m-1", pb::RESULT_OK, 412.5), 1'796'000'000'001));
    REQUIRE(h.add(report("m-2", pb::RESULT_ROLLED_BACK, 90), 1'796'000'000'002));
    REQUIRE(h.add(report("m-3", pb::RESULT_FAILED, 0), 1'796'000'000'003));
    CHECK(ids(h.newest()) == std::vector<std::string>{"m-3", "m-2", "m-1"});
    CHECK(ids(h.newest(2)) == std::vector<std::string>{"m-3", "m-2"});
  }
  history again(dir);
  REQUIRE(again.open());
  const auto past = again.newest();
  REQUIRE(ids(past) == std::vector<std::string>{"m-3", "m-2", "m-1"});
  CHECK(past[1].result() == pb::RESULT_ROLLED_BACK);
  CHECK(past[2].downtime_ms() == 412.5);
  CHECK(past[2].container() == "web-1");
  CHECK(!again.add(pb::Report{}, 1));  // no id: refused
}

TEST_CASE("history: bounded, the oldest dropped from disk too", "[history]") {
  testing::temp_dir tmp;
  const auto dir = tmp.path / "history";
  history h(dir, 5);
  REQUIRE(h.open());
  for (int i = 1; i <= 8; ++i) REQUIRE(h.add(report("m-" + std::to_string(i), pb::RESULT_OK, i), 1000 + i));
  CHECK(ids(h.newest()) == std::vector<std::string>{"m-8", "m-7", "m-6", "m-5", "m-4"});
  CHECK(files_in(dir) == 5);
  history smaller(dir, 3);  // a lower limit applies on the next open
  REQUIRE(smaller.open());
  CHECK(ids(smaller.newest()) == std::vector<std::string>{"m-8", "m-7", "m-6"});
  CHECK(files_in(dir) == 3);
}

TEST_CASE("history: a file that is no report is skipped and left; a torn write goes", "[history]") {
  testing::temp_dir tmp;
  const auto dir = tmp.path / "history";
  {
    history h(dir);
    REQUIRE(h.open());
    REQUIRE(h.add(report("m-1", pb::RESULT_OK, 1), 1001));
  }
  std::ofstream(dir / "0000000001002-m-2.pb") << "\xff\xff\xff not a protobuf";
  std::ofstream(dir / "0000000001003-m-3.pb.tmp") << "half";
  history h(dir);
  REQUIRE(h.open());
  CHECK(ids(h.newest()) == std::vector<std::string>{"m-1"});
  CHECK(std::filesystem::exists(dir / "0000000001002-m-2.pb"));
  CHECK(!std::filesystem::exists(dir / "0000000001003-m-3.pb.tmp"));
}

TEST_CASE("history: the registry keeps each finished report once, of either role", "[history]") {
  testing::temp_dir tmp;
  history h(tmp.path / "history");
  REQUIRE(h.open());
  registry reg("edge-a");
  reg.keep_history(&h);
  reg.add(report("m-1", pb::RESULT_RUNNING, 0));
  CHECK(h.size() == 0);  // running: not history yet
  reg.finish(report("m-1", pb::RESULT_OK, 300));
  reg.finish(report("m-1", pb::RESULT_OK, 300));  // a second finish of the same migration
  auto incoming = report("m-2", pb::RESULT_OK, 0);
  incoming.set_source("edge-c");
  incoming.set_destination("edge-a");
  reg.finish(incoming);
  const auto past = h.newest();
  REQUIRE(ids(past) == std::vector<std::string>{"m-2", "m-1"});
  CHECK(past[1].downtime_ms() == 300);
  CHECK(reg.past() == &h);
}
