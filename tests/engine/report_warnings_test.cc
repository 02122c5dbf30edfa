// Report warnings: config keys that match nothing, configs that compress
// nothing, blobs no op reads. Run through whole-model compression so keys are
// looked up the way real jobs look them up.
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "engine/compress_model.h"
#include "engine/config_parse.h"
#include "format/package.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/model_builder.h"
#include "tests/testing/test_env.h"

namespace coremlz::engine {
namespace {

using ::testing::AllOf;
using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::SizeIs;

class ReportWarningsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    package_ = scratch_.Join("in.mlpackage");
    ASSERT_TRUE(testing::WriteMixedTestPackage(package_, format::ElementType::kFloat32, 9).ok());
    nn_model_ = scratch_.Join("in.mlmodel");
    ASSERT_TRUE(WriteFileAtomically(nn_model_, format::SerializeModelSpec(testing::BuildNeuralNetworkModel(false, 3))).ok());
  }

  CompressionReport Compress(const std::string& model, const std::string& yaml) {
    auto config = ParseCompressionConfig(yaml);
    EXPECT_TRUE(config.ok()) << config.status();
    const std::string out = scratch_.Join(absl::StrCat("out", ++runs_, model == nn_model_ ? ".mlmodel" : ".mlpackage"));
    auto report = CompressModelPath(model, out, *config, {}, {});
    EXPECT_TRUE(report.ok()) << report.status();
    return report.ok() ? *report : CompressionReport{};
  }

  testing::ScratchDir scratch_;
  std::string package_;
  std::string nn_model_;
  int runs_ = 0;
};

TEST_F(ReportWarningsTest, KeysThatMatchAreNotReported) {
  // conv1_weight is a const's name, q_proj an op's name, linear an op type.
  CompressionReport r = Compress(package_, R"(
config_type: OpLinearQuantizerConfig
op_name_configs:
  conv1_weight: {}
  q_proj: {}
op_type_configs:
  linear: {}
)");
  EXPECT_GT(r.weights_compressed, 0);
  EXPECT_THAT(r.warnings, IsEmpty());
}

TEST_F(ReportWarningsTest, MisspelledNamesAndTypesAreReported) {
  CompressionReport r = Compress(package_, R"(
config_type: OpLinearQuantizerConfig
op_name_configs:
  conv1_weight: {}
  conv1_weigth: {}
op_type_configs:
  innerProduct: {}
)");
  EXPECT_GT(r.weights_compressed, 0);  // conv1_weight still compressed
  EXPECT_THAT(r.warnings, ElementsAre(AllOf(HasSubstr("op_name_configs[\"conv1_weigth\"]"), HasSubstr("matched no")),
                                      AllOf(HasSubstr("op_type_configs[\"innerProduct\"]"), HasSubstr("matched no"))));
}

TEST_F(ReportWarningsTest, NullKeysCountAsUsedWhenTheyMatch) {
  // A null config that matches is the user excluding something on purpose.
  CompressionReport r = Compress(package_, R"(
config_type: OpLinearQuantizerConfig
global_config: {}
op_type_configs:
  conv: null
)");
  EXPECT_GT(r.weights_compressed, 0);
  EXPECT_THAT(r.warnings, IsEmpty());
}

TEST_F(ReportWarningsTest, ConfigThatSelectsNothing) {
  CompressionReport r = Compress(package_, R"(
config_type: OpPalettizerConfig
global_config: null
op_type_configs:
  conv: null
)");
  EXPECT_EQ(r.weights_compressed, 0);
  EXPECT_THAT(r.warnings, ElementsAre(HasSubstr("the config selects no weights")));
}

TEST_F(ReportWarningsTest, EveryWeightSkipped) {
  CompressionReport r = Compress(package_, R"(
config_type: OpPalettizerConfig
global_config: {nbits: 4, weight_threshold: 100000000}
)");
  EXPECT_EQ(r.weights_compressed, 0);
  ASSERT_THAT(r.weights, Not(IsEmpty()));
  EXPECT_THAT(r.warnings, ElementsAre(AllOf(HasSubstr("no weight was compressed"),
                                            HasSubstr(absl::StrCat(r.weights.size(), " weights")))));
}

TEST_F(ReportWarningsTest, KeysArePerPass) {
  // Pass 2's "conv" matches; its "convolution" does not (an NN layer type,
  // not a MIL op).
  CompressionReport r = Compress(package_, R"(
passes:
  - config_type: OpMagnitudePrunerConfig
    global_config: {target_sparsity: 0.5}
  - config_type: OpPalettizerConfig
    joint_compression: true
    op_type_configs:
      conv: {nbits: 4}
      convolution: {nbits: 4}
)");
  EXPECT_GT(r.weights_compressed, 0);
  EXPECT_THAT(r.warnings, ElementsAre(AllOf(HasSubstr("op_type_configs[\"convolution\"] (pass 2)"))));
}

TEST_F(ReportWarningsTest, NeuralNetworkLayerNamesAndTypes) {
  CompressionReport r = Compress(nn_model_, R"(
config_type: OpLinearQuantizerConfig
op_name_configs:
  conv1: {}
  fc2: {}
op_type_configs:
  innerProduct: {}
  linear: {}
)");
  EXPECT_GT(r.weights_compressed, 0);
  EXPECT_THAT(r.warnings, SizeIs(2));
  EXPECT_THAT(r.warnings, Contains(HasSubstr("op_name_configs[\"fc2\"]")));
  EXPECT_THAT(r.warnings, Contains(HasSubstr("op_type_configs[\"linear\"]")));
  EXPECT_THAT(r.warnings, Not(Contains(HasSubstr("[\"conv1\"]"))));
  EXPECT_THAT(r.warnings, Not(Contains(HasSubstr("[\"innerProduct\"]"))));
}

// A NeuralNetwork weight's own name (LAYER.FIELD, as the report names it)
// comes before its layer's, as a const's name does before its op's.
TEST_F(ReportWarningsTest, NeuralNetworkWeightNamesComeBeforeLayerNames) {
  CompressionReport r = Compress(nn_model_, R"(
config_type: OpPalettizerConfig
op_name_configs:
  conv1: {nbits: 4, weight_threshold: 16}
  conv1.bias: null
  fc1.weights: {nbits: 2}
  fc1.weigths: {nbits: 2}
)");
  std::map<std::string, std::string> params;  // compressed rows
  for (const WeightReport& w : r.weights) {
    if (w.technique != "none" && w.skipped_reason.empty()) params[w.name] = w.params;
  }
  ASSERT_EQ(params.size(), 2u);
  EXPECT_THAT(params["conv1.weights"], HasSubstr("nbits=4"));
  EXPECT_THAT(params["fc1.weights"], HasSubstr("nbits=2"));
  EXPECT_THAT(r.warnings, ElementsAre(HasSubstr("op_name_configs[\"fc1.weigths\"]")));
}

TEST_F(ReportWarningsTest, BlobsThatNoOpReads) {
  // A package whose weight.bin holds a blob that no op refers to any more:
  // written with a spare const, whose op is then removed from the program.
  const std::string dir = scratch_.Join("orphan.mlpackage");
  testing::ProgramBuilder b(9);
  b.AddInput("x", format::ElementType::kFloat32, {1, 64});
  const std::string y = b.Linear("fc", "x", 64, 64, {1, 64}, format::ElementType::kFloat32, 1);
  b.Const("spare", testing::FloatTensor(format::ElementType::kFloat32, {64, 64}, testing::RandomWeights(4096, 2)));
  b.AddOutput(y, format::ElementType::kFloat32, {1, 64});
  ASSERT_TRUE(b.WritePackage(dir).ok());
  const std::string model_path = dir + "/Data/com.apple.CoreML/model.mlmodel";
  auto bytes = ReadFile(model_path, 1 << 20);
  ASSERT_TRUE(bytes.ok());
  auto model = format::ParseModelSpec(*bytes, model_path);
  ASSERT_TRUE(model.ok());
  auto* ops = model->mutable_mlprogram()->mutable_functions()->at("main").mutable_block_specializations()->begin()->second.mutable_operations();
  const int before = ops->size();
  for (int i = 0; i < ops->size(); ++i) {
    if (ops->Get(i).outputs_size() == 1 && ops->Get(i).outputs(0).name() == "spare") ops->DeleteSubrange(i--, 1);
  }
  ASSERT_EQ(ops->size(), before - 1);
  ASSERT_TRUE(WriteFileAtomically(model_path, format::SerializeModelSpec(*model)).ok());

  CompressionReport r = Compress(dir, "config_type: OpLinearQuantizerConfig\nglobal_config: {}\n");
  EXPECT_EQ(r.weights_compressed, 1);
  EXPECT_THAT(r.warnings, ElementsAre(AllOf(HasSubstr("weights/weight.bin holds 3 blobs but the program reads 2"),
                                            HasSubstr("not copied"))));

  // Nothing is said when every blob is read.
  CompressionReport clean = Compress(package_, "config_type: OpLinearQuantizerConfig\nglobal_config: {}\n");
  EXPECT_THAT(clean.warnings, IsEmpty());
}

}  // namespace
}  // namespace coremlz::engine
