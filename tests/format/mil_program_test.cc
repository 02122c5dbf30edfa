#include "format/mil_program.h"

#include <map>

#include "format/package.h"
#include "gtest/gtest.h"
#include "tests/testing/model_builder.h"
#include "tests/testing/test_env.h"

namespace coremlz::format {
namespace {
namespace mil = CoreML::Specification::MILSpec;

absl::StatusOr<std::vector<ProgramWeight>> ListFor(MlPackage* pkg, bool include_small = false) {
  return ListProgramWeights(pkg->model().mlprogram(),
                            [pkg](const BlobRef& ref) -> absl::StatusOr<BlobMetadata> {
                              auto file = pkg->WeightFile(ref.file_name);
                              if (!file.ok()) return file.status();
                              return (*file)->Metadata(ref.offset);
                            },
                            include_small);
}

std::map<std::string, ProgramWeight> ByName(const std::vector<ProgramWeight>& ws) {
  std::map<std::string, ProgramWeight> out;
  for (const auto& w : ws) out[w.name] = w;
  return out;
}

TEST(MilProgramTest, ListsGoldenOriginalWeights) {
  auto pkg = MlPackage::Open(testing::GoldenDir() + "/ios16_original.mlpackage");
  ASSERT_TRUE(pkg.ok());
  auto weights = ListFor(pkg->get());
  ASSERT_TRUE(weights.ok()) << weights.status();
  auto by = ByName(*weights);
  ASSERT_TRUE(by.count("conv_weight_0_to_fp16"));
  const ProgramWeight& conv = by["conv_weight_0_to_fp16"];
  EXPECT_EQ(conv.op_type, "const");
  EXPECT_EQ(conv.type, ElementType::kFloat16);
  EXPECT_EQ(conv.shape, (Shape{128, 64, 3, 3}));
  EXPECT_EQ(conv.stored_bytes, 128u * 64 * 9 * 2);
  ASSERT_EQ(conv.tensors.size(), 1u);
  EXPECT_TRUE(conv.tensors[0].in_blob);
  EXPECT_EQ(conv.tensors[0].blob.offset, 64u);
  EXPECT_EQ(conv.consumers, std::vector<std::string>{"conv.weight"});
  EXPECT_EQ(by["fc_weight_0_to_fp16"].shape, (Shape{256, 512}));
  EXPECT_EQ(by["fc_bias_0_to_fp16"].consumers, std::vector<std::string>{"linear.bias"});
}

TEST(MilProgramTest, ListsConstexprOpsOfBothOpsetGenerations) {
  struct Case {
    const char* package;
    const char* name;
    const char* op;
    uint64_t bytes;
  } cases[] = {
      // iOS16 ops keep parameters as attributes.
      {"ios16_palettize_4bit_kmeans", "conv_weight_0_to_fp16_palettized", "constexpr_lut_to_dense", 36864 + 32 + 16},
      {"ios16_linear_int8_symmetric_per_channel", "fc_weight_0_to_fp16_quantized", "constexpr_affine_dequantize", 131072 + 256 + 512 + 4},
      {"ios16_prune_magnitude_50", "conv_weight_0_to_fp16_sparsified", "constexpr_sparse_to_dense", 73694 + 9216 + 16},
      // iOS18 ops bind them as inputs.
      {"ios18_linear_int4_per_block_32", "conv_weight_0_to_fp16_quantized", "constexpr_blockwise_shift_scale", 36864 + 512},
      {"ios18_palettize_3bit_kmeans", "fc_weight_0_to_fp16_palettized", "constexpr_lut_to_dense", 49152 + 16},
      {"ios18_joint_prune50_palettize4", "conv_weight_0_to_fp16_sparsified_nonzero_data_0_palettized", "constexpr_lut_to_sparse", 9216 + 18424 + 32},
  };
  for (const Case& c : cases) {
    auto pkg = MlPackage::Open(testing::GoldenDir() + "/" + c.package + ".mlpackage");
    ASSERT_TRUE(pkg.ok()) << c.package;
    auto weights = ListFor(pkg->get());
    ASSERT_TRUE(weights.ok()) << c.package << ": " << weights.status();
    auto by = ByName(*weights);
    ASSERT_TRUE(by.count(c.name)) << c.package << " lacks " << c.name;
    EXPECT_EQ(by[c.name].op_type, c.op);
    EXPECT_EQ(by[c.name].stored_bytes, c.bytes) << c.package;
  }
}

TEST(MilProgramTest, JointChainRecordsConsumersByOutputName) {
  auto pkg = MlPackage::Open(testing::GoldenDir() + "/ios18_joint_prune50_palettize4.mlpackage");
  ASSERT_TRUE(pkg.ok());
  auto weights = ListFor(pkg->get());
  ASSERT_TRUE(weights.ok());
  auto by = ByName(*weights);
  const auto& lut = by["fc_weight_0_to_fp16_sparsified_nonzero_data_0_palettized"];
  std::vector<std::string> consumers = lut.consumers;
  std::sort(consumers.begin(), consumers.end());
  EXPECT_EQ(consumers, (std::vector<std::string>{"constexpr_sparse_to_dense.mask",
                                                 "constexpr_sparse_to_dense.nonzero_data"}));
  EXPECT_EQ(by["fc_weight_0_to_fp16_sparsified"].consumers, std::vector<std::string>{"linear.weight"});
}

TEST(MilProgramTest, RealModelsList) {
  auto pkg = MlPackage::Open(testing::ModelsDir() + "/mobilenetv2_randinit/mobilenetv2_randinit.mlpackage");
  ASSERT_TRUE(pkg.ok());
  auto weights = ListFor(pkg->get());
  ASSERT_TRUE(weights.ok()) << weights.status();
  int blob_backed = 0;
  for (const auto& w : *weights) blob_backed += w.tensors.size() == 1 && w.tensors[0].in_blob;
  EXPECT_EQ(blob_backed, 79);
  auto tf = MlPackage::Open(testing::ModelsDir() + "/transformer_encoder_randinit/transformer_encoder_randinit.mlpackage");
  ASSERT_TRUE(tf.ok());
  auto tw = ListFor(tf->get());
  ASSERT_TRUE(tw.ok()) << tw.status();
  auto by = ByName(*tw);
  // Layer 0's projection is shared by all four (deduplicated) layers.
  ASSERT_TRUE(by.count("enc_layers_0_self_attn_in_proj_weight_to_fp16"));
  EXPECT_EQ(by["enc_layers_0_self_attn_in_proj_weight_to_fp16"].consumers.size(), 4u);
}

// Builds a one-const program whose blob reference is then corrupted.
class BrokenProgramTest : public ::testing::Test {
 protected:
  void SetUp() override {
    testing::ProgramBuilder b(7);
    b.AddInput("x", ElementType::kFloat16, {1, 8});
    b.Linear("fc", "x", 8, 16, {1, 8}, ElementType::kFloat16, 1);
    b.Linear("fc2", "fc", 16, 16, {1, 16}, ElementType::kFloat16, 2);
    b.AddOutput("fc2", ElementType::kFloat16, {1, 16});
    ASSERT_TRUE(b.WritePackage(scratch_.Join("p.mlpackage")).ok());
    auto pkg = MlPackage::Open(scratch_.Join("p.mlpackage"));
    ASSERT_TRUE(pkg.ok());
    pkg_ = std::move(*pkg);
    program_ = pkg_->model().mlprogram();
  }
  mil::Value* ValOf(const std::string& name) {
    mil::Block& block = (*(*program_.mutable_functions())["main"].mutable_block_specializations())["CoreML6"];
    for (auto& op : *block.mutable_operations()) {
      if (op.outputs_size() == 1 && op.outputs(0).name() == name) return &(*op.mutable_attributes())["val"];
    }
    return nullptr;
  }
  absl::Status List() {
    MlPackage* pkg = pkg_.get();
    return ListProgramWeights(program_, [pkg](const BlobRef& ref) -> absl::StatusOr<BlobMetadata> {
             auto file = pkg->WeightFile(ref.file_name);
             if (!file.ok()) return file.status();
             return (*file)->Metadata(ref.offset);
           }).status();
  }
  testing::ScratchDir scratch_;
  std::unique_ptr<MlPackage> pkg_;
  mil::Program program_;
};

TEST_F(BrokenProgramTest, ValidProgramLists) { EXPECT_TRUE(List().ok()) << List(); }

TEST_F(BrokenProgramTest, OffsetPastEnd) {
  ValOf("fc_weight")->mutable_blobfilevalue()->set_offset(1 << 30);
  absl::Status s = List();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("fc_weight"), std::string::npos) << s;
  EXPECT_NE(s.message().find("past the end"), std::string::npos) << s;
}

TEST_F(BrokenProgramTest, DtypeMismatch) {
  ValOf("fc_weight")->mutable_type()->mutable_tensortype()->set_datatype(mil::FLOAT32);
  absl::Status s = List();
  EXPECT_NE(s.message().find("declared fp32"), std::string::npos) << s;
}

TEST_F(BrokenProgramTest, ShapeLargerThanBlob) {
  ValOf("fc_weight")->mutable_type()->mutable_tensortype()->mutable_dimensions(0)->mutable_constant()->set_size(1000);
  absl::Status s = List();
  EXPECT_NE(s.message().find("needs 8000 elements"), std::string::npos) << s;
}

TEST_F(BrokenProgramTest, ShapeProductOverflows) {
  auto* tt = ValOf("fc_weight")->mutable_type()->mutable_tensortype();
  tt->mutable_dimensions(0)->mutable_constant()->set_size(uint64_t{1} << 40);
  tt->mutable_dimensions(1)->mutable_constant()->set_size(uint64_t{1} << 40);
  absl::Status s = List();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("2^62"), std::string::npos) << s;
}

TEST_F(BrokenProgramTest, RankDisagreesWithDimensions) {
  ValOf("fc_weight")->mutable_type()->mutable_tensortype()->set_rank(3);
  EXPECT_NE(List().message().find("rank 3"), std::string::npos);
}

TEST_F(BrokenProgramTest, UnknownDtype) {
  ValOf("fc_weight")->mutable_type()->mutable_tensortype()->set_datatype(static_cast<mil::DataType>(77));
  EXPECT_NE(List().message().find("unknown MIL data type 77"), std::string::npos);
}

TEST_F(BrokenProgramTest, OverlappingBlobs) {
  // Point fc2's weight at fc's weight offset + 64 (inside fc's data): that
  // location holds no sentinel, so it is rejected as not-a-blob; an exact
  // shared offset is fine.
  uint64_t fc_offset = ValOf("fc_weight")->blobfilevalue().offset();
  ValOf("fc2_weight")->mutable_blobfilevalue()->set_offset(fc_offset + 64);
  EXPECT_EQ(List().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(BrokenProgramTest, SharedBlobOffsetIsAllowedWhenShapesAgree) {
  // fc_bias and fc2_bias are both fp16[16]: sharing one blob is legitimate.
  uint64_t shared = ValOf("fc_bias")->blobfilevalue().offset();
  ValOf("fc2_bias")->mutable_blobfilevalue()->set_offset(shared);
  EXPECT_TRUE(List().ok()) << List();
}

TEST_F(BrokenProgramTest, WeightFileOutsidePackage) {
  ValOf("fc_weight")->mutable_blobfilevalue()->set_filename("@model_path/../../../etc/passwd");
  EXPECT_EQ(List().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(BrokenProgramTest, ConstWithoutValue) {
  mil::Block& block = (*(*program_.mutable_functions())["main"].mutable_block_specializations())["CoreML6"];
  for (auto& op : *block.mutable_operations()) {
    if (op.outputs(0).name() == "fc_weight") op.mutable_attributes()->erase("val");
  }
  EXPECT_NE(List().message().find("no \"val\""), std::string::npos);
}

}  // namespace
}  // namespace coremlz::format
