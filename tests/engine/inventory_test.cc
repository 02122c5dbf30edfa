// The weights inventory of a multifunction package: a weight the functions
// share is one weight, listed once with every function that reads it, and the
// totals never exceed the files.
#include "engine/inventory.h"

#include <set>

#include "absl/strings/match.h"
#include "common/file_util.h"
#include "gtest/gtest.h"
#include "tests/testing/test_env.h"

namespace coremlz::engine {
namespace {

using coremlz::testing::GoldenDir;

TEST(InventoryTest, WeightsSharedByFunctionsAreListedOnce) {
  for (const char* name : {"llm_like_multifunction", "llm_like_multifunction_int4_block32",
                           "llm_like_multifunction_palettize4_grouped16"}) {
    const std::string path = GoldenDir() + "/llm_like/" + name + ".mlpackage";
    if (!PathExists(path)) GTEST_SKIP() << "no " << path;
    auto inv = InspectModel(path, {});
    ASSERT_TRUE(inv.ok()) << inv.status();
    EXPECT_LE(inv->weight_bytes, inv->model_bytes) << name << ": weights can't outweigh the files";
    std::set<std::string> names;
    int shared = 0;
    for (const InventoryEntry& e : inv->weights) {
      EXPECT_TRUE(names.insert(e.name).second) << name << ": " << e.name << " listed twice";
      if (absl::StrContains(e.function, ",")) ++shared;
    }
    EXPECT_GT(shared, 0) << name << ": the two functions share their weights";
    double share = 0;
    for (const InventoryEntry& e : inv->weights) share += e.share;
    EXPECT_NEAR(share, 1.0, 1e-9);
  }
}

}  // namespace
}  // namespace coremlz::engine
