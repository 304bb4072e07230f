// Unit tests for daemon/migration/destination: where a migration may go.
#include <string>

#include <catch2/catch.hpp>

#include "common/config.hpp"
#include "migration/destination.hpp"

using namespace migrated;

namespace {

config node_config() {
  config c;
  c.node_name = "edge-a";
  c.peers.push_back({"edge-b", {"10.0.0.2", 7450}});
  c.peers.push_back({"edge-c", {"edge-c.example", 7451}});
  return c;
}

}  // namespace

TEST_CASE("a listed peer is found by name, and must present that name", "[destination]") {
  const config cfg = node_config();
  auto d = migration::resolve_destination(cfg, "edge-c");
  REQUIRE(d);
  CHECK(d->name == "edge-c");
  CHECK(d->address.host == "edge-c.example");
  CHECK(d->address.port == 7451);
}

TEST_CASE("a listed peer's host:port resolves to its name", "[destination]") {
  const config cfg = node_config();
  auto d = migration::resolve_destination(cfg, "10.0.0.2:7450");
  INFO((d ? std::string() : d.error().message));
  REQUIRE(d);
  CHECK(d->name == "edge-b");  // so its certificate must name edge-b
  CHECK(d->address.host == "10.0.0.2");
  CHECK(d->address.port == 7450);
}

TEST_CASE("an unlisted host:port is denied unless allow_unlisted_destinations", "[destination]") {
  config cfg = node_config();
  SECTION("an unknown address") {
    auto d = migration::resolve_destination(cfg, "10.0.0.9:7450");
    REQUIRE_FALSE(d);
    CHECK(d.error().code == errc::denied);
    CHECK_THAT(d.error().message, Catch::Contains("10.0.0.9:7450"));
    CHECK_THAT(d.error().message, Catch::Contains("allow_unlisted_destinations"));
  }
  SECTION("a listed peer's host on another port") {
    auto d = migration::resolve_destination(cfg, "10.0.0.2:7451");
    REQUIRE_FALSE(d);
    CHECK(d.error().code == errc::denied);
  }
  SECTION("allowed: any peer of the fleet, whatever its name") {
    cfg.allow_unlisted_destinations = true;
    auto d = migration::resolve_destination(cfg, "10.0.0.9:7450");
    REQUIRE(d);
    CHECK(d->name.empty());
    CHECK(d->address.host == "10.0.0.9");
    CHECK(d->address.port == 7450);
    // A listed address still maps to its name when unlisted ones are allowed.
    auto listed = migration::resolve_destination(cfg, "10.0.0.2:7450");
    REQUIRE(listed);
    CHECK(listed->name == "edge-b");
  }
}

TEST_CASE("an unknown name is not found and the known peers are named", "[destination]") {
  config cfg = node_config();
  auto d = migration::resolve_destination(cfg, "edge-q");
  REQUIRE_FALSE(d);
  CHECK(d.error().code == errc::not_found);
  CHECK_THAT(d.error().message, Catch::Contains("edge-q"));
  CHECK_THAT(d.error().message, Catch::Contains("edge-b, edge-c"));
  cfg.peers.clear();
  cfg.allow_unlisted_destinations = true;  // allows addresses, not unknown names
  auto none = migration::resolve_destination(cfg, "edge-q");
  REQUIRE_FALSE(none);
  CHECK(none.error().code == errc::not_found);
  CHECK_THAT(none.error().message, Catch::Contains("none"));
}

TEST_CASE("a malformed host:port is refused", "[destination]") {
  config cfg = node_config();
  cfg.allow_unlisted_destinations = true;
  for (const std::string bad : {"10.0.0.9:", "10.0.0.9:notaport", ":7450", "10.0.0.9:99999"}) {
    INFO(bad);
    CHECK_FALSE(migration::resolve_destination(cfg, bad));
  }
}
