// The migration journal: records survive a reload, torn and corrupt ones
// are refused with a clear error (and nothing is done for them), a store
// that cannot write says where, and the recovery rules for every state.
#include <fstream>
#include <sstream>

#include <catch2/catch.hpp>

#include "common/hash.hpp"
#include "migration/journal.hpp"
#include "migration/journal_recovery.hpp"
#include "temp_dir.hpp"

using namespace migrated;
using namespace migrated::migration;
using journal::role;
using journal::step;

namespace {

journal::entry source_entry(const std::string& id, step s) {
  journal::entry e;
  e.migration_id = id;
  e.side = role::source;
  e.state = s;
  e.container = "web-1";
  e.runtime = "runc";
  e.method = "precopy";
  e.peer = "edge-b";
  e.images = "/var/lib/migrated/outgoing/" + id + "/round-3";
  e.bundle = "/srv/bundles/web-1";
  e.frozen = true;
  return e;
}

journal::entry destination_entry(const std::string& id, step s) {
  journal::entry e = source_entry(id, s);
  e.side = role::destination;
  e.peer = "edge-a";
  e.images.clear();
  e.bundle.clear();
  e.frozen = false;
  return e;
}

std::string slurp(const std::filesystem::path& f) {
  std::ifstream in(f, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

void spit(const std::filesystem::path& f, const std::string& text) {
  std::ofstream out(f, std::ios::binary | std::ios::trunc);
  out << text;
}

}  // namespace

TEST_CASE("journal: a record written is read back whole, and a rewrite replaces it", "[journal]") {
  testing::temp_dir tmp;
  journal::store store(tmp.path / "journal");
  REQUIRE(store.open());
  REQUIRE(store.write(source_entry("m-0a1b", step::stopping)));
  REQUIRE(store.write(source_entry("m-0a1b", step::stopped)));
  REQUIRE(store.write(destination_entry("m-ff00", step::restored)));

  journal::store reopened(tmp.path / "journal");  // as after a restart
  REQUIRE(reopened.open());
  auto got = reopened.read("m-0a1b");
  REQUIRE(got);
  CHECK(got->state == step::stopped);
  CHECK(got->side == role::source);
  CHECK(got->container == "web-1");
  CHECK(got->runtime == "runc");
  CHECK(got->method == "precopy");
  CHECK(got->peer == "edge-b");
  CHECK(got->images == "/var/lib/migrated/outgoing/m-0a1b/round-3");
  CHECK(got->bundle == "/srv/bundles/web-1");
  CHECK(got->frozen);
  CHECK(got->updated_unix_ms > 0);
  auto all = reopened.load();
  CHECK(all.entries.size() == 2);
  CHECK(all.refused.empty());

  REQUIRE(reopened.remove("m-0a1b"));
  CHECK(reopened.read("m-0a1b").error().code == errc::not_found);
  CHECK(reopened.remove("m-0a1b"));  // twice is fine
  CHECK(reopened.load().entries.size() == 1);
  // Nothing but the records is left in the directory: no temporary files.
  std::size_t files = 0;
  for (auto& f : std::filesystem::directory_iterator(tmp.path / "journal")) {
    CHECK(f.path().extension() == ".json");
    ++files;
  }
  CHECK(files == 1);
}

TEST_CASE("journal: a torn or corrupt record is refused naming its file, never read as another state", "[journal]") {
  testing::temp_dir tmp;
  journal::store store(tmp.path / "journal");
  REQUIRE(store.open());
  REQUIRE(store.write(source_entry("m-01", step::committing)));
  const auto file = tmp.path / "journal" / "m-01.json";
  const std::string good = slurp(file);

  SECTION("torn: the file ends half-way") {
    spit(file, good.substr(0, good.size() / 2));
  }
  SECTION("torn: the checksum line is missing") {
    spit(file, good.substr(0, good.find('\n')));
  }
  SECTION("a state flipped on disk (committing -> committed) fails the checksum") {
    auto bad = good;
    bad.replace(bad.find("committing"), 10, "committed\"");
    spit(file, bad);
  }
  SECTION("empty") {
    spit(file, "");
  }
  SECTION("binary garbage") {
    spit(file, std::string("\x00\xff\x13\n\x37", 5));
  }
  auto got = store.read("m-01");
  REQUIRE_FALSE(got);
  CHECK(got.error().code == errc::checksum);
  CHECK_THAT(got.error().message, Catch::Contains(file.string()));
  CHECK_THAT(got.error().message, Catch::Contains("nothing done for it"));
  auto all = store.load();
  CHECK(all.entries.empty());
  REQUIRE(all.refused.size() == 1);
  CHECK(all.refused[0].migration_id == "m-01");
  // It stays where it is for the operator: load() does not delete it.
  CHECK(std::filesystem::exists(file));
}

TEST_CASE("journal: a record whose checksum matches but whose content is impossible is refused", "[journal]") {
  auto resum = [](const std::string& body) {
    const auto d = xxh128(std::span(reinterpret_cast<const std::uint8_t*>(body.data()), body.size()));
    return body + "\n" + to_hex(d) + "\n";
  };
  const auto text = journal::encode(destination_entry("m-02", step::restored));
  REQUIRE(journal::decode(text, "x"));
  const auto body = text.substr(0, text.find('\n'));
  REQUIRE(journal::decode(resum(body), "x"));  // the test's checksum is the format's
  auto with = [&](const std::string& from, const std::string& to) {
    auto b = body;
    b.replace(b.find(from), from.size(), to);
    return journal::decode(resum(b), "x");
  };
  CHECK_FALSE(with("\"restored\"", "\"stopping\""));  // a source's state for a destination
  CHECK_FALSE(with("\"restored\"", "\"rebooted\""));  // no such state
  CHECK_FALSE(with("\"destination\"", "\"bystander\""));
  CHECK_FALSE(with("\"m-02\"", "\"../../x\""));
  CHECK_FALSE(with("\"container\":\"web-1\"", "\"container\":\"\""));
  CHECK_FALSE(with("\"container\":\"web-1\"", "\"container\":7"));
  CHECK_FALSE(journal::decode(resum("[1,2,3]"), "x"));
  CHECK_FALSE(journal::valid_for(role::destination, step::stopping));
  CHECK_FALSE(journal::valid_for(role::source, step::restored));
  CHECK(journal::valid_for(role::source, step::committed));
  CHECK(journal::valid_for(role::destination, step::committed));
}

TEST_CASE("journal: temporary files a crash left are removed on open, records are not", "[journal]") {
  testing::temp_dir tmp;
  journal::store store(tmp.path / "journal");
  REQUIRE(store.open());
  REQUIRE(store.write(source_entry("m-03", step::stopped)));
  spit(tmp.path / "journal" / "m-03.json.tmp", "half a record");  // the crash came before the rename
  REQUIRE(store.open());
  CHECK_FALSE(std::filesystem::exists(tmp.path / "journal" / "m-03.json.tmp"));
  auto got = store.read("m-03");
  REQUIRE(got);
  CHECK(got->state == step::stopped);  // the last durable state, not the torn one
}

TEST_CASE("journal: a store that cannot write says where, and the old record stays", "[journal]") {
  testing::temp_dir tmp;
  SECTION("the journal directory is a file") {
    spit(tmp.path / "journal", "not a directory");
    journal::store store(tmp.path / "journal");
    auto opened = store.open();
    REQUIRE_FALSE(opened);
    CHECK_THAT(opened.error().message, Catch::Contains((tmp.path / "journal").string()));
    auto written = store.write(source_entry("m-04", step::accepted));
    REQUIRE_FALSE(written);
    CHECK_THAT(written.error().message, Catch::Contains("journal"));
  }
  SECTION("the rename cannot replace the record (a directory in its place)") {
    journal::store store(tmp.path / "journal");
    REQUIRE(store.open());
    std::filesystem::create_directories(tmp.path / "journal" / "m-05.json" / "x");
    auto written = store.write(source_entry("m-05", step::accepted));
    REQUIRE_FALSE(written);
    CHECK_THAT(written.error().message, Catch::Contains("rename"));
    CHECK_FALSE(std::filesystem::exists(tmp.path / "journal" / "m-05.json.tmp"));
  }
  SECTION("the directory went away under a running store") {
    journal::store store(tmp.path / "journal");
    REQUIRE(store.open());
    std::filesystem::remove_all(tmp.path / "journal");
    auto written = store.write(source_entry("m-06", step::accepted));
    REQUIRE_FALSE(written);
    CHECK(written.error().code == errc::not_found);
    CHECK_THAT(written.error().message, Catch::Contains("m-06.json.tmp"));
  }
  SECTION("bad ids and states never reach the disk") {
    journal::store store(tmp.path / "journal");
    REQUIRE(store.open());
    CHECK_FALSE(store.write(source_entry("../etc/passwd", step::accepted)));
    CHECK_FALSE(store.write(source_entry("m-07", step::restored)));  // not a source's state
    CHECK(store.load().entries.empty());
  }
}

TEST_CASE("journal: committed destination records are kept to answer the source, then pruned", "[journal]") {
  testing::temp_dir tmp;
  journal::store store(tmp.path / "journal");
  REQUIRE(store.open());
  REQUIRE(store.write(destination_entry("m-10", step::committed)));
  REQUIRE(store.write(destination_entry("m-11", step::restored)));
  REQUIRE(store.write(source_entry("m-12", step::committing)));
  store.prune(std::chrono::system_clock::now());
  CHECK(store.load().entries.size() == 3);
  store.prune(std::chrono::system_clock::now() + journal::store::committed_kept + std::chrono::hours(1));
  auto left = store.load();
  REQUIRE(left.entries.size() == 2);  // unfinished records are never pruned
  for (auto& e : left.entries) CHECK(e.migration_id != "m-10");
}

TEST_CASE("recovery rules: only a record past Commit asks; none thaws what the destination may own", "[journal]") {
  using a = recovery_action;
  CHECK(decide(source_entry("m-1", step::accepted)) == a::thaw_if_frozen);
  CHECK(decide(source_entry("m-1", step::stopping)) == a::bring_back);
  CHECK(decide(source_entry("m-1", step::stopped)) == a::bring_back);
  CHECK(decide(source_entry("m-1", step::committing)) == a::ask);
  CHECK(decide(source_entry("m-1", step::committed)) == a::release);
  // A post-copy stopped here may run at the destination, waiting on its
  // pages: taken up again (and thawed here only if nobody waits there).
  for (const char* lazy : {"postcopy", "hybrid"}) {
    auto e = source_entry("m-1", step::stopped);
    e.method = lazy;
    CHECK(decide(e) == a::resume);
    e.state = step::stopping;  // its final images never left: nothing runs there
    CHECK(decide(e) == a::bring_back);
  }
  CHECK(decide(destination_entry("m-1", step::receiving)) == a::remove_copy);
  CHECK(decide(destination_entry("m-1", step::restored)) == a::remove_copy);
  CHECK(decide(destination_entry("m-1", step::committed)) == a::keep);

  // The destination's answer to a source in `committing`.
  CHECK(decide_after(outcome{true, true}) == a::release);
  CHECK(decide_after(outcome{true, false}) == a::bring_back);
  // Unknown there: it records Commit before acknowledging, so it never had it.
  CHECK(decide_after(outcome{false, false}) == a::bring_back);
  // No answer at all: keep asking (then report it lost), never bring it back on a guess.
  CHECK(decide_after(std::nullopt) == a::ask);
}
