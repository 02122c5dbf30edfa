// EstimateJobMemory sizes a job before any weight is read, from declared
// shapes; it must not let a declared shape that the uploaded files cannot
// hold pass for a merely large model.
#include "absl/strings/match.h"
#include "common/file_util.h"
#include "engine/worker_pool.h"
#include "format/package.h"
#include "gtest/gtest.h"
#include "tests/testing/test_env.h"

namespace coremlz::engine {
namespace {

namespace mil = CoreML::Specification::MILSpec;

// Copies the iOS16 golden package and sets fc_weight's declared shape.
std::string PackageWithFcShape(const testing::ScratchDir& scratch, const std::vector<uint64_t>& dims) {
  const std::string dir = scratch.Join("m.mlpackage");
  testing::CopyTree(testing::GoldenDir() + "/ios16_original.mlpackage", dir);
  const std::string spec_path = dir + "/Data/com.apple.CoreML/model.mlmodel";
  CoreML::Specification::Model model;
  EXPECT_TRUE(model.ParseFromString(*ReadFile(spec_path)));
  for (auto& [_, fn] : *model.mutable_mlprogram()->mutable_functions()) {
    for (auto& [_, block] : *fn.mutable_block_specializations()) {
      for (auto& op : *block.mutable_operations()) {
        if (op.type() != "const" || op.outputs(0).name() != "fc_weight_0_to_fp16") continue;
        for (mil::TensorType* t : {op.mutable_outputs(0)->mutable_type()->mutable_tensortype(),
                                   (*op.mutable_attributes())["val"].mutable_type()->mutable_tensortype()}) {
          t->clear_dimensions();
          t->set_rank(static_cast<int64_t>(dims.size()));
          for (uint64_t d : dims) t->add_dimensions()->mutable_constant()->set_size(d);
        }
      }
    }
  }
  EXPECT_TRUE(WriteFileAtomically(spec_path, model.SerializeAsString()).ok());
  return dir;
}

TEST(EstimateJobMemory, GrowsWithTheLargestWeight) {
  auto golden = EstimateJobMemory(testing::GoldenDir() + "/ios16_original.mlpackage");
  ASSERT_TRUE(golden.ok()) << golden.status();
  // 131072 fc elements at ~20 bytes each, plus fixed slack.
  EXPECT_GE(*golden, 131072u * 20);
  EXPECT_LT(*golden, uint64_t{64} << 20);
}

TEST(EstimateJobMemory, RefusesShapesLargerThanTheirFile) {
  testing::ScratchDir scratch;
  auto estimate = EstimateJobMemory(PackageWithFcShape(scratch, {uint64_t{1} << 40, 512}));
  ASSERT_FALSE(estimate.ok());
  EXPECT_EQ(estimate.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(estimate.status().message(), "fc_weight_0_to_fp16")) << estimate.status();
}

TEST(EstimateJobMemory, RefusesShapesThatOverflow) {
  testing::ScratchDir scratch;
  auto estimate = EstimateJobMemory(PackageWithFcShape(scratch, {uint64_t{1} << 32, uint64_t{1} << 32, 2}));
  ASSERT_FALSE(estimate.ok());
  EXPECT_EQ(estimate.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(estimate.status().message(), "fc_weight_0_to_fp16")) << estimate.status();
}

}  // namespace
}  // namespace coremlz::engine
