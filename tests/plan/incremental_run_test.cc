// Trials recompute only what lies downstream of the weight they change: that
// must give exactly the outputs of running the model compressed that way.
#include <map>
#include <string>
#include <vector>

#include "engine/compress_model.h"
#include "execute/loaded_model.h"
#include "execute/synthetic_inputs.h"
#include "gtest/gtest.h"
#include "plan/model_study.h"
#include "plan/trial.h"
#include "tests/testing/test_env.h"

namespace coremlz::plan {
namespace {

using execute::ProgramExecutor;
using execute::Tensor;

std::string Transformer() {
  return testing::ModelsDir() + "/transformer_encoder_randinit/transformer_encoder_randinit.mlpackage";
}
std::string MobileNet() { return testing::ModelsDir() + "/mobilenetv2_randinit/mobilenetv2_randinit.mlpackage"; }

engine::OpConfig Palettize(int bits) {
  engine::PalettizerConfig p;
  p.nbits = bits;
  return p;
}

// The model with only `names` palettized, written under `dir`.
std::string CompressOnly(const std::string& model, const std::vector<std::string>& names, const std::string& out) {
  engine::CompressionConfig config;
  config.passes.push_back({});
  for (const std::string& n : names) config.passes[0].config.op_name_configs[n] = Palettize(2 + 2 * static_cast<int>(n.size() % 3));
  auto report = engine::CompressModelPath(model, out, config, engine::CompressOptions{}, engine::WriteOptions{});
  EXPECT_TRUE(report.ok()) << report.status();
  return out;
}

std::vector<std::string> CompressibleWeights(const std::string& model, const std::string& dir) {
  engine::CompressionConfig config;
  config.passes.push_back({});
  config.passes[0].config.global = Palettize(2);
  auto report = engine::CompressModelPath(model, dir + "/all.mlpackage", config, engine::CompressOptions{},
                                          engine::WriteOptions{});
  EXPECT_TRUE(report.ok()) << report.status();
  std::vector<std::string> names;
  for (const auto& row : report->weights) {
    if (row.technique != "none") names.push_back(row.name);
  }
  return names;
}

void ExpectSameOutputs(const std::map<std::string, Tensor>& want, const std::map<std::string, Tensor>& got) {
  ASSERT_EQ(want.size(), got.size());
  for (const auto& [name, t] : want) {
    ASSERT_TRUE(got.count(name)) << name;
    const Tensor& g = got.at(name);
    ASSERT_EQ(t.shape(), g.shape()) << name;
    const auto a = t.floats(), b = g.floats();
    ASSERT_EQ(a.size(), b.size());
    for (size_t i = 0; i < a.size(); ++i) ASSERT_EQ(a[i], b[i]) << name << "[" << i << "]";  // bit for bit
  }
}

void CheckModel(const std::string& model) {
  testing::ScratchDir scratch;
  const std::vector<std::string> names = CompressibleWeights(model, scratch.path());
  ASSERT_GE(names.size(), 3u);
  auto original = execute::LoadModel(model, "");
  ASSERT_TRUE(original.ok()) << original.status();
  const ProgramExecutor& ex = *original->program();
  auto specs = execute::DescribeInputs(original->package->model(), ex);
  ASSERT_TRUE(specs.ok());
  const auto inputs = execute::SyntheticInputs(*specs, 7, 1);
  auto kept = ex.RunKeeping(inputs);
  auto bare = ex.RunKeeping(inputs, /*keep_intermediates=*/false);
  ASSERT_TRUE(kept.ok() && bare.ok());
  EXPECT_GT(kept->bytes, 0);
  EXPECT_EQ(bare->bytes, 0);

  // Nothing replaced: the original's outputs, running nothing when kept.
  auto full = ex.Run(inputs);
  ASSERT_TRUE(full.ok());
  execute::RunStats stats;
  auto same = ex.RunReplacing(*kept, {}, &stats);
  ASSERT_TRUE(same.ok());
  ExpectSameOutputs(*full, *same);
  EXPECT_EQ(stats.ops_run, 0);

  // One weight early, one in the middle, the last; then all three at once.
  const std::vector<std::vector<std::string>> cases = {
      {names.front()}, {names[names.size() / 2]}, {names.back()}, {names.front(), names[names.size() / 2], names.back()}};
  int64_t full_ops = 0;
  ASSERT_TRUE(ex.Run(inputs, &stats).ok());
  full_ops = stats.ops_run;
  for (size_t k = 0; k < cases.size(); ++k) {
    const std::string path = CompressOnly(model, cases[k], scratch.Join("case" + std::to_string(k) + ".mlpackage"));
    auto compressed = execute::LoadModel(path, "");
    ASSERT_TRUE(compressed.ok()) << compressed.status();
    auto want = compressed->executor->Run(inputs);
    ASSERT_TRUE(want.ok()) << want.status();
    std::vector<ProgramExecutor::Replacement> replacements;
    for (const std::string& n : cases[k]) {
      const int slot = ex.ConstantSlot(n);
      ASSERT_GE(slot, 0) << n;
      const auto uses = ex.UsesOf(slot);
      ASSERT_FALSE(uses.empty());
      auto decoded = compressed->program()->ConstantAt(uses[0]);
      ASSERT_NE(decoded, nullptr);
      replacements.push_back({slot, decoded});
    }
    auto got = ex.RunReplacing(*kept, replacements, &stats);
    ASSERT_TRUE(got.ok()) << got.status();
    ExpectSameOutputs(*want, *got);
    if (k == 2) EXPECT_LT(stats.ops_run, full_ops) << "the last weight's trial reran the whole model";
    auto got_bare = ex.RunReplacing(*bare, replacements, &stats);
    ASSERT_TRUE(got_bare.ok());
    ExpectSameOutputs(*want, *got_bare);
    EXPECT_EQ(stats.ops_run, full_ops);
  }
}

TEST(IncrementalRunTest, TransformerTrialsMatchFullRunsOfTheCompressedModel) { CheckModel(Transformer()); }
TEST(IncrementalRunTest, MobileNetTrialsMatchFullRunsOfTheCompressedModel) { CheckModel(MobileNet()); }

TEST(IncrementalRunTest, ReplacementMustMatchTheConstant) {
  testing::ScratchDir scratch;
  const std::vector<std::string> names = CompressibleWeights(Transformer(), scratch.path());
  ASSERT_FALSE(names.empty());
  auto original = execute::LoadModel(Transformer(), "");
  ASSERT_TRUE(original.ok());
  const ProgramExecutor& ex = *original->program();
  auto specs = execute::DescribeInputs(original->package->model(), ex);
  ASSERT_TRUE(specs.ok());
  auto kept = ex.RunKeeping(execute::SyntheticInputs(*specs, 0, 0));
  ASSERT_TRUE(kept.ok());
  auto wrong = std::make_shared<const Tensor>(Tensor::Float({3}, {1, 2, 3}));
  EXPECT_EQ(ex.RunReplacing(*kept, {{-1, wrong}}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ex.RunReplacing(*kept, {{ex.ConstantSlot(names[0]), wrong}}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ex.ConstantSlot("no such value"), -1);
}

TEST(TrialsTest, ResultsDoNotDependOnTheThreadCount) {
  testing::ScratchDir scratch;
  auto candidates = ParseCandidates("palettize4,palettize2,keep", 2048);
  ASSERT_TRUE(candidates.ok());
  StudyOptions options;
  options.samples = 2;
  auto study = ModelStudy::Create(Transformer(), *candidates, options, scratch.path());
  ASSERT_TRUE(study.ok()) << study.status();
  std::vector<Trial> trials;
  for (int w = 0; w < static_cast<int>((*study)->weights().size()); ++w) {
    for (int c = 0; c < 2; ++c) trials.push_back({w, c});
  }
  auto one = RunTrials(**study, trials, 1);
  auto three = RunTrials(**study, trials, 3);
  ASSERT_TRUE(one.ok() && three.ok());
  ASSERT_EQ(one->size(), trials.size());
  for (size_t i = 0; i < trials.size(); ++i) {
    EXPECT_EQ((*one)[i].bytes, (*three)[i].bytes);
    EXPECT_EQ((*one)[i].noise, (*three)[i].noise);
    EXPECT_GT((*one)[i].bytes, 0u);
    EXPECT_EQ((*one)[i].noise.size(), 2 * (*study)->output_names().size());
  }
}

}  // namespace
}  // namespace coremlz::plan
