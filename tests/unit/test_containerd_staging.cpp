// containerd's copies of a restored checkpoint: only the new ones holding
// the checkpoint restored are removed.
#include <catch2/catch.hpp>

#include <fstream>

#include "runtime/containerd_staging.hpp"
#include "temp_dir.hpp"

using namespace migrated::runtime;

namespace {

void put(const std::filesystem::path& dir, const std::string& inventory, const std::string& pstree) {
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "inventory.img") << inventory;
  std::ofstream(dir / "pstree.img") << pstree;
  std::ofstream(dir / "pages-1.img") << std::string(4096, 'x');
}

}  // namespace

TEST_CASE("the staged copies of the checkpoint restored are removed, no other", "[containerd_staging]") {
  migrated::testing::temp_dir tmp;
  const auto images = tmp.path / "images";
  put(images, "inv-1", "tree-1");
  const auto old = tmp.path / "ctrd-checkpoint111";  // an earlier restore's, not ours to judge
  put(old, "inv-1", "tree-1");
  staging_snapshot before{{tmp.path}, {old}};
  const auto ours = tmp.path / "ctrd-checkpoint222";
  put(ours, "inv-1", "tree-1");
  const auto other = tmp.path / "ctrd-checkpoint333";  // another container restored meanwhile
  put(other, "inv-2", "tree-2");
  const auto unrelated = tmp.path / "something-else";
  put(unrelated, "inv-1", "tree-1");

  const auto removed = remove_staged_copies(before, identify_checkpoint(images));
  REQUIRE(removed.size() == 1);
  CHECK(removed[0] == ours);
  CHECK_FALSE(std::filesystem::exists(ours));
  CHECK(std::filesystem::exists(old));
  CHECK(std::filesystem::exists(other));
  CHECK(std::filesystem::exists(unrelated));
  CHECK(std::filesystem::exists(images));
}

TEST_CASE("without the checkpoint's identity nothing is removed", "[containerd_staging]") {
  migrated::testing::temp_dir tmp;
  const auto staged = tmp.path / "ctrd-checkpoint1";
  std::filesystem::create_directories(staged);
  staging_snapshot before{{tmp.path}, {}};
  CHECK(remove_staged_copies(before, identify_checkpoint(tmp.path / "nosuch")).empty());
  CHECK(std::filesystem::exists(staged));
}
