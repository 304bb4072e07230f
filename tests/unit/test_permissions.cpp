// Unit tests for daemon/server/permissions: what a certificate's role lets
// its holder ask, for every kind of request, and that a peer must also be
// listed in `peers:`.
#include <functional>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "common/config.hpp"
#include "server/permissions.hpp"

using namespace migrated;

namespace {

config node_config() {
  config c;
  c.node_name = "edge-a";
  c.peers.push_back({"edge-b", {"10.0.0.2", 7450}});
  return c;
}

struct kind {
  const char* name;
  std::function<void(pb::Envelope&)> make;
  const char* words;  // how the refusal names it
};

const std::vector<kind> controller_kinds = {
    {"migrate", [](pb::Envelope& e) { e.mutable_migrate()->set_container("c1"); }, "start a migration"},
    {"prepare", [](pb::Envelope& e) { e.mutable_prepare(); }, "prepare a migration"},
    {"status", [](pb::Envelope& e) { e.mutable_status(); }, "read status"},
    {"abort_request", [](pb::Envelope& e) { e.mutable_abort_request(); }, "abort a migration"},
    {"recover", [](pb::Envelope& e) { e.mutable_recover(); }, "recover a container"},
    {"measure", [](pb::Envelope& e) { e.mutable_measure(); }, "measure"},
};

const std::vector<kind> peer_kinds = {
    {"pull", [](pb::Envelope& e) { e.mutable_pull(); }, "send a container"},
    {"probe", [](pb::Envelope& e) { e.mutable_probe(); }, "probe the link"},
};

pb::Envelope of(const kind& k) {
  pb::Envelope e;
  e.set_request_id(5);
  k.make(e);
  return e;
}

}  // namespace

TEST_CASE("a controller may command and a peer may not", "[permissions]") {
  const config cfg = node_config();
  const node_identity controller{"ctl-1", node_role::controller};
  const node_identity listed_peer{"edge-b", node_role::peer};
  for (const kind& k : controller_kinds) {
    INFO(k.name);
    const pb::Envelope req = of(k);
    CHECK(server::permitted(req, controller, cfg));
    auto by_peer = server::permitted(req, listed_peer, cfg);
    REQUIRE_FALSE(by_peer);
    CHECK(by_peer.error().code == errc::denied);
    CHECK_THAT(by_peer.error().message, Catch::Contains("edge-b is a peer, not a controller"));
    CHECK_THAT(by_peer.error().message, Catch::Contains(k.words));
    CHECK_THAT(by_peer.error().message, Catch::Contains("edge-a"));
  }
}

TEST_CASE("a listed peer may send containers and probe, a controller may not", "[permissions]") {
  const config cfg = node_config();
  const node_identity controller{"ctl-1", node_role::controller};
  const node_identity listed_peer{"edge-b", node_role::peer};
  for (const kind& k : peer_kinds) {
    INFO(k.name);
    const pb::Envelope req = of(k);
    CHECK(server::permitted(req, listed_peer, cfg));
    auto by_controller = server::permitted(req, controller, cfg);
    REQUIRE_FALSE(by_controller);
    CHECK(by_controller.error().code == errc::denied);
    CHECK_THAT(by_controller.error().message, Catch::Contains("ctl-1 is a controller"));
    CHECK_THAT(by_controller.error().message, Catch::Contains(k.words));
  }
}

TEST_CASE("a peer of the fleet that peers: does not list may do nothing", "[permissions]") {
  config cfg = node_config();
  const node_identity unlisted{"edge-z", node_role::peer};
  for (const kind& k : peer_kinds) {
    INFO(k.name);
    auto r = server::permitted(of(k), unlisted, cfg);
    REQUIRE_FALSE(r);
    CHECK(r.error().code == errc::denied);
    CHECK_THAT(r.error().message, Catch::Contains("edge-z is not one of edge-a's peers"));
    CHECK_THAT(r.error().message, Catch::Contains("peers:"));
  }
  for (const kind& k : controller_kinds) {
    INFO(k.name);
    auto r = server::permitted(of(k), unlisted, cfg);
    REQUIRE_FALSE(r);
    CHECK(r.error().code == errc::denied);
  }
  // Allowing unlisted destinations is about where this node sends, not who may send here.
  cfg.allow_unlisted_destinations = true;
  CHECK_FALSE(server::permitted(of(peer_kinds[0]), unlisted, cfg));
  // Listing it is what admits it.
  cfg.peers.push_back({"edge-z", {"10.0.0.26", 7450}});
  CHECK(server::permitted(of(peer_kinds[0]), unlisted, cfg));
}

TEST_CASE("a controller's name need not be listed", "[permissions]") {
  const config cfg = node_config();
  const node_identity named_like_a_peer{"edge-b", node_role::controller};
  CHECK(server::permitted(of(controller_kinds[0]), named_like_a_peer, cfg));
  CHECK_FALSE(server::permitted(of(peer_kinds[0]), named_like_a_peer, cfg));
}

TEST_CASE("messages that begin no conversation are refused to everyone", "[permissions]") {
  // Only the listed requests open a conversation: a message added to the
  // protocol is closed until it is given to a role.
  const config cfg = node_config();
  pb::Envelope commit;
  commit.mutable_commit();
  pb::Envelope chunk;
  chunk.mutable_file_chunk();
  pb::Envelope provision;
  provision.mutable_provision();
  for (const node_identity& who : {node_identity{"ctl-1", node_role::controller}, node_identity{"edge-b", node_role::peer},
                                  node_identity{"edge-z", node_role::peer}}) {
    for (const pb::Envelope* m : {&commit, &chunk, &provision}) {
      auto r = server::permitted(*m, who, cfg);
      REQUIRE_FALSE(r);
      CHECK(r.error().code == errc::protocol);
    }
  }
}
