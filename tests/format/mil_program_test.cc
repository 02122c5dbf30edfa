#include "format/mil_program.h"

#include <filesystem>
#include <map>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
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

// --- ValidateProgramGraph ------------------------------------------------

// Every ML Program in ../shared (models and golden outputs) is a valid graph.
TEST(SharedProgramGraphTest, EverySharedProgramIsValid) {
  int checked = 0;
  for (const std::string& root : {testing::ModelsDir(), testing::GoldenDir()}) {
    for (const auto& entry : std::filesystem::recursive_directory_iterator(root)) {
      const std::string path = entry.path().string();
      if (!absl::EndsWith(path, ".mlpackage") || !entry.is_directory()) continue;
      auto pkg = MlPackage::Open(path);
      if (!pkg.ok() || !(*pkg)->model().has_mlprogram()) continue;
      EXPECT_TRUE(ValidateProgramGraph((*pkg)->model().mlprogram()).ok())
          << path << ": " << ValidateProgramGraph((*pkg)->model().mlprogram());
      ++checked;
    }
  }
  EXPECT_GE(checked, 10);
}

class ProgramGraphTest : public ::testing::Test {
 protected:
  void SetUp() override {
    testing::ProgramBuilder b(9);
    b.AddInput("x", ElementType::kFloat16, {1, 8});
    b.Linear("fc", "x", 8, 8, {1, 8}, ElementType::kFloat16, 1);
    b.Op("relu", {{"x", "fc"}}, "r", ElementType::kFloat16, {1, 8});
    b.AddOutput("r", ElementType::kFloat16, {1, 8});
    model_ = b.Build();
  }
  mil::Block& Main() {
    return (*(*model_.mutable_mlprogram()->mutable_functions())["main"].mutable_block_specializations())["CoreML8"];
  }
  static mil::Operation* AddOp(mil::Block* block, const std::string& type, const std::string& in,
                               const std::string& out) {
    mil::Operation* op = block->add_operations();
    op->set_type(type);
    if (!in.empty()) (*op->mutable_inputs())["x"].add_arguments()->set_name(in);
    op->add_outputs()->set_name(out);
    return op;
  }
  absl::Status Validate() { return ValidateProgramGraph(model_.mlprogram()); }
  CoreML::Specification::Model model_;
};

TEST_F(ProgramGraphTest, ValidProgram) { EXPECT_TRUE(Validate().ok()) << Validate(); }

TEST_F(ProgramGraphTest, DuplicateOutputNamesNameBothOps) {
  AddOp(&Main(), "sigmoid", "r", "fc");
  absl::Status s = Validate();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(),
            "function main: op sigmoid \"fc\" defines \"fc\", which op linear \"fc\" already defines: every value "
            "needs a name of its own");
}

TEST_F(ProgramGraphTest, AnOutputNamedLikeAFunctionInputIsADuplicate) {
  AddOp(&Main(), "relu", "r", "x");
  EXPECT_EQ(Validate().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(Validate().message(), "the function's input already defines")) << Validate();
}

TEST_F(ProgramGraphTest, DuplicatesInsideNestedBlocksCount) {
  mil::Operation* cond = AddOp(&Main(), "cond", "r", "c");
  mil::Block* then_block = cond->add_blocks();
  AddOp(then_block, "relu", "r", "inner");
  then_block->add_outputs("inner");
  mil::Block* else_block = cond->add_blocks();
  AddOp(else_block, "relu", "r", "inner");  // the same name in the sibling block
  else_block->add_outputs("inner");
  absl::Status s = Validate();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(s.message(), "defines \"inner\"")) << s;
}

TEST_F(ProgramGraphTest, NestedBlocksSeeOuterNamesAndTheirOwnInputs) {
  mil::Operation* loop = AddOp(&Main(), "while_loop", "r", "l");
  for (int i = 0; i < 2; ++i) {  // cond and body share block input names, as coremltools writes them
    mil::Block* b = loop->add_blocks();
    b->add_inputs()->set_name("r_x0");
    AddOp(b, "add", "r_x0", absl::StrCat("step", i));
    (*b->mutable_operations(0)->mutable_inputs())["y"].add_arguments()->set_name("fc");  // an outer name
    b->add_outputs(absl::StrCat("step", i));
  }
  EXPECT_TRUE(Validate().ok()) << Validate();
  // The loop's own names are not visible after it.
  AddOp(&Main(), "relu", "r_x0", "after");
  EXPECT_TRUE(absl::StrContains(Validate().message(), "op relu \"after\" reads \"r_x0\" (input \"x\"), which nothing defines"))
      << Validate();
}

TEST_F(ProgramGraphTest, ACycleIsNamed) {
  AddOp(&Main(), "add", "b", "a");
  AddOp(&Main(), "relu", "a", "b");
  absl::Status s = Validate();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(),
            "function main: op add \"a\" reads \"b\" (input \"x\"), which op relu \"b\" computes from its output: "
            "the ops form a cycle");
}

TEST_F(ProgramGraphTest, AnOpReadingItsOwnOutputIsACycle) {
  AddOp(&Main(), "relu", "self", "self");
  EXPECT_TRUE(absl::StrContains(Validate().message(), "the ops form a cycle")) << Validate();
}

TEST_F(ProgramGraphTest, UseBeforeDefinitionWithoutACycle) {
  AddOp(&Main(), "relu", "later", "early");
  AddOp(&Main(), "relu", "r", "later");
  EXPECT_TRUE(absl::StrContains(Validate().message(),
                                "op relu \"early\" reads \"later\" (input \"x\") before op relu \"later\" defines it"))
      << Validate();
}

TEST_F(ProgramGraphTest, ABlockOutputMustExist) {
  Main().add_outputs("ghost");
  EXPECT_EQ(Validate().message(), "function main: the function's output \"ghost\" is not defined in its block");
}

}  // namespace
}  // namespace coremlz::format
