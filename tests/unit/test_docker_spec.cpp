// The Docker backend's reading of `docker inspect` (a real answer of Docker
// 20.10, tests/unit/fixtures/docker_inspect.json): what moves and how the
// destination's create request rebuilds the container.
#include <catch2/catch.hpp>

#include <fstream>

#include "runtime/docker.hpp"

using namespace migrated;
using runtime::create_spec;
using runtime::describe_container;

namespace {

docker::json fixture() {
  std::ifstream in(std::filesystem::path(__FILE__).parent_path() / "fixtures" / "docker_inspect.json");
  REQUIRE(in);
  return docker::json::parse(in);
}

}  // namespace

TEST_CASE("docker: inspect → container_info", "[docker]") {
  auto info = describe_container(fixture());
  CHECK(info.id == "insp");
  CHECK(info.status == "running");
  CHECK(info.pid > 0);
  CHECK(info.image == "migrated-test:1");
  CHECK(info.image_id.rfind("sha256:", 0) == 0);
  CHECK(info.bundle.filename() == "diff");  // overlay2's UpperDir
  CHECK(info.labels.at("app") == "counter");
  REQUIRE(info.volumes.size() == 1);
  CHECK(info.volumes[0].name == "dk-vol");
  CHECK(info.volumes[0].path.string().ends_with("/volumes/dk-vol/_data"));
}

TEST_CASE("docker: the create spec keeps configuration and address", "[docker]") {
  auto j = fixture();
  auto spec = create_spec(j);
  CHECK(spec["Image"] == "migrated-test:1");
  CHECK(spec["Env"].dump().find("MODE=edge") != std::string::npos);
  CHECK(spec["Labels"]["app"] == "counter");
  CHECK(spec["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped");
  CHECK(spec["HostConfig"]["PortBindings"]["8080/tcp"][0]["HostPort"] == "18081");
  auto& ep = spec["NetworkingConfig"]["EndpointsConfig"]["edge"];
  CHECK(ep["IPAMConfig"]["IPv4Address"] == "172.30.0.20");
  // The short id alias names the old container: it must not travel.
  for (auto& a : ep["Aliases"]) CHECK(a != j["Id"].get<std::string>().substr(0, 12));

  SECTION("a dynamic address is pinned on a user-defined network") {
    j["NetworkSettings"]["Networks"]["edge"]["IPAMConfig"] = nullptr;
    CHECK(create_spec(j)["NetworkingConfig"]["EndpointsConfig"]["edge"]["IPAMConfig"]["IPv4Address"] == "172.30.0.20");
  }
  SECTION("default networks get no endpoint config") {
    auto net = j["NetworkSettings"]["Networks"]["edge"];
    j["NetworkSettings"]["Networks"].erase("edge");
    j["NetworkSettings"]["Networks"]["bridge"] = net;
    CHECK_FALSE(create_spec(j).contains("NetworkingConfig"));
  }
}
