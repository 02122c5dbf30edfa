// The planner on a NeuralNetwork (.mlmodel): the target holds on the
// measured model, a trial's noise is what a full run of the model with that
// one weight compressed gives, the default candidates the format cannot hold
// are dropped with the reason, and the plan's YAML reproduces --apply's bytes
// through `coremlz compress --config`.
#include <cmath>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "engine/compress_model.h"
#include "execute/compare.h"
#include "execute/loaded_model.h"
#include "execute/output_check.h"
#include "execute/synthetic_inputs.h"
#include "format/manifest.h"
#include "format/package.h"
#include "gtest/gtest.h"
#include "plan/planner.h"
#include "tests/execute/nn_test_util.h"
#include "tests/testing/model_builder.h"
#include "tests/testing/process.h"
#include "tests/testing/test_env.h"

namespace coremlz::plan {
namespace {

constexpr int kSamples = 2;

std::string Slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

double WorstPsnr(const std::string& original, const std::string& compressed) {
  execute::OutputCheckOptions o;
  o.samples = kSamples;
  auto checks = execute::CheckOutputs(original, compressed, o);
  EXPECT_TRUE(checks.ok()) << checks.status();
  double worst = INFINITY;
  if (checks.ok()) {
    for (const auto& c : *checks) worst = std::min(worst, c.psnr_db);
  }
  return worst;
}

// Default candidates: the list an NN is offered, int4-block32 among them.
PlanOptions Options(PlanTarget::Kind kind, double value) {
  PlanOptions o;
  o.target = {kind, value};
  o.study.samples = kSamples;
  o.study.threads = 2;
  o.pareto_points = 4;
  return o;
}

class NnPlanTest : public ::testing::Test {
 protected:
  void SetUp() override {
    model_ = scratch_.Join("nn.mlmodel");
    ASSERT_TRUE(WriteFileAtomically(model_, format::SerializeModelSpec(
                                                testing::BuildRunnableNeuralNetworkModel(/*fp16=*/false, 7)))
                    .ok());
  }

  // The plan's config applied by the engine, as `compress --config` does.
  std::string Apply(const PlanResult& plan, const std::string& name) {
    const std::string out = scratch_.Join(name);
    auto report = engine::CompressModelPath(model_, out, plan.config, {}, {});
    EXPECT_TRUE(report.ok()) << report.status();
    return out;
  }

  testing::ScratchDir scratch_;
  std::string model_;
};

TEST_F(NnPlanTest, BitsTargetHoldsOnTheMeasuredModel) {
  auto plan = MakePlan(model_, Options(PlanTarget::Kind::kBits, 4));
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_LE(plan->measured.bits_per_weight, 4.0);
  EXPECT_EQ(plan->function, "main");
  // conv1.weights and fc1.weights; the rest are below the weight threshold.
  ASSERT_EQ(plan->weights.size(), 2u);
  EXPECT_EQ(plan->weights[0].name, "conv1.weights");
  EXPECT_EQ(plan->weights[1].name, "fc1.weights");
  EXPECT_TRUE(plan->left_out_weights.empty());
  bool dropped_block = false;
  for (const std::string& d : plan->dropped_candidates) {
    dropped_block = dropped_block || (absl::StartsWith(d, "int4-block32: ") && absl::StrContains(d, "per_block"));
  }
  EXPECT_TRUE(dropped_block) << "the NN format has no per-block scales: int4-block32 is dropped, with the reason";
  for (const std::string& c : plan->candidates) EXPECT_NE(c, "int4-block32");
  // The config keys the weights as the report names them, and the engine
  // applies each to that weight alone.
  ASSERT_EQ(plan->config.passes.size(), 1u);
  EXPECT_EQ(plan->config.passes[0].config.op_name_configs.count("conv1.weights"), 1u);
  EXPECT_EQ(plan->config.passes[0].config.op_name_configs.count("fc1.weights"), 1u);
  // What the plan says it measured is what the applied model measures.
  const std::string applied = Apply(*plan, "applied.mlmodel");
  EXPECT_DOUBLE_EQ(WorstPsnr(model_, applied), plan->measured.psnr_db);
  EXPECT_EQ(Slurp(applied).size(), plan->measured.model_bytes);
  EXPECT_LT(plan->measured.model_bytes, Slurp(model_).size());
  EXPECT_FALSE(plan->pareto.empty());
  std::printf("[nn] --bits 4: %.3f bits per weight, %.2f dB measured (%.2f predicted), %llu bytes\n",
              plan->measured.bits_per_weight, plan->measured.psnr_db, plan->predicted.psnr_db,
              static_cast<unsigned long long>(plan->measured.model_bytes));
}

TEST_F(NnPlanTest, MinPsnrHoldsOnTheMeasuredModel) {
  // A floor above uniform 4-bit palettization's PSNR, so that the plan has
  // to choose.
  engine::CompressionConfig uniform;
  uniform.passes.push_back({});
  engine::PalettizerConfig p4;
  p4.nbits = 4;
  uniform.passes[0].config.global = p4;
  const std::string u4 = scratch_.Join("u4.mlmodel");
  ASSERT_TRUE(engine::CompressModelPath(model_, u4, uniform, {}, {}).ok());
  const double floor = WorstPsnr(model_, u4) + 3;
  auto plan = MakePlan(model_, Options(PlanTarget::Kind::kMinPsnr, floor));
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_GE(plan->measured.psnr_db, floor);
  const std::string applied = Apply(*plan, "floored.mlmodel");
  EXPECT_GE(WorstPsnr(model_, applied), floor);
  EXPECT_LT(Slurp(applied).size(), Slurp(model_).size());
  std::printf("[nn] --min-psnr %.2f: measured %.2f dB at %llu bytes (uniform 4-bit %llu bytes)\n", floor,
              plan->measured.psnr_db, static_cast<unsigned long long>(plan->measured.model_bytes),
              static_cast<unsigned long long>(Slurp(u4).size()));
}

// Each trial's noise, per sample and output, is exactly what full runs of
// the original and of the model with only that weight compressed give.
TEST_F(NnPlanTest, TrialNoiseEqualsAFullRunMeasurement) {
  const PlanOptions options = Options(PlanTarget::Kind::kBits, 4);
  testing::ScratchDir work;
  auto study = StudyForPlan(model_, options, work.path());
  ASSERT_TRUE(study.ok()) << study.status();
  const ModelStudy& s = **study;
  auto original = execute::LoadModel(model_, "");
  ASSERT_TRUE(original.ok()) << original.status();
  auto specs = execute::DescribeInputs(original->model(), *original->executor);
  ASSERT_TRUE(specs.ok());
  int checked = 0;
  for (size_t w = 0; w < s.weights().size(); ++w) {
    for (size_t c = 0; c < s.candidates().size(); ++c) {
      const Candidate& cand = s.candidates()[c];
      if (!cand.config || !s.weights()[w].options[c].available) continue;
      SCOPED_TRACE(s.weights()[w].name + " " + cand.name);
      auto trial = s.Run({static_cast<int>(w), static_cast<int>(c)});
      ASSERT_TRUE(trial.ok()) << trial.status();
      // The weight alone, by its name, through the engine.
      engine::CompressionConfig config;
      config.passes.push_back({});
      config.passes[0].config.op_name_configs[s.weights()[w].name] = cand.config;
      const std::string path = scratch_.Join("one-" + std::to_string(w) + "-" + cand.name + ".mlmodel");
      auto report = engine::CompressModelPath(model_, path, config, {}, {});
      ASSERT_TRUE(report.ok()) << report.status();
      int compressed = 0;
      for (const engine::WeightReport& row : report->weights) {
        if (row.technique == "none" || !row.skipped_reason.empty()) continue;
        ++compressed;
        EXPECT_EQ(row.name, s.weights()[w].name);
        EXPECT_EQ(row.bytes_after, trial->bytes);
      }
      EXPECT_EQ(compressed, 1);
      auto one = execute::LoadModel(path, "");
      ASSERT_TRUE(one.ok()) << one.status();
      ASSERT_EQ(trial->noise.size(), kSamples * s.output_names().size());
      for (int i = 0; i < kSamples; ++i) {
        const auto inputs = execute::SyntheticInputs(*specs, options.study.seed, i);
        auto want = original->executor->Run(inputs);
        auto got = one->executor->Run(inputs);
        ASSERT_TRUE(want.ok() && got.ok());
        for (size_t k = 0; k < s.output_names().size(); ++k) {
          const std::string& name = s.output_names()[k];
          auto cmp = execute::CompareOutputs(want->at(name).floats(), got->at(name).floats());
          ASSERT_TRUE(cmp.ok());
          EXPECT_EQ(trial->noise[i * s.output_names().size() + k], PsnrToNoise(cmp->psnr_db)) << name << " sample " << i;
        }
      }
      ++checked;
    }
  }
  EXPECT_GE(checked, 8);
}

// The same network wrapped in an .mlpackage, as Xcode keeps .mlmodel
// files: the same plan, applied as a package.
TEST_F(NnPlanTest, PackagedNetworkGetsTheSamePlan) {
  const std::string pkg = scratch_.Join("Wrapped.mlpackage");
  format::Manifest m;
  m.items = {{"1A2B3C4D-0000-4000-8000-000000000003", "com.apple.CoreML", "CoreML Model Specification",
              "Wrapped.mlmodel", "com.apple.CoreML/Wrapped.mlmodel"}};
  m.root_model_identifier = m.items[0].identifier;
  ASSERT_TRUE(MakeDirectories(pkg + "/Data/com.apple.CoreML").ok());
  ASSERT_TRUE(WriteFileAtomically(pkg + "/Manifest.json", m.Serialize()).ok());
  ASSERT_TRUE(WriteFileAtomically(pkg + "/Data/com.apple.CoreML/Wrapped.mlmodel", Slurp(model_)).ok());
  auto bare = MakePlan(model_, Options(PlanTarget::Kind::kBits, 4));
  auto wrapped = MakePlan(pkg, Options(PlanTarget::Kind::kBits, 4));
  ASSERT_TRUE(bare.ok()) << bare.status();
  ASSERT_TRUE(wrapped.ok()) << wrapped.status();
  ASSERT_EQ(bare->weights.size(), wrapped->weights.size());
  for (size_t w = 0; w < bare->weights.size(); ++w) EXPECT_EQ(bare->weights[w].chosen, wrapped->weights[w].chosen);
  EXPECT_EQ(bare->measured.psnr_db, wrapped->measured.psnr_db);
  EXPECT_EQ(bare->measured.bits_per_weight, wrapped->measured.bits_per_weight);
  const std::string applied = scratch_.Join("applied.mlpackage");
  ASSERT_TRUE(engine::CompressModelPath(pkg, applied, wrapped->config, {}, {}).ok());
  EXPECT_TRUE(IsDirectory(applied));
  EXPECT_DOUBLE_EQ(WorstPsnr(pkg, applied), wrapped->measured.psnr_db);
}

TEST_F(NnPlanTest, ConfigRoundTripsToTheBytesOfApply) {
  const std::string cli = testing::BinaryPath("clients/coremlz");
  auto p = testing::RunProgram({cli, "plan", model_, "--bits", "4", "--samples", "2", "--config",
                                scratch_.Join("plan.yaml"), "--report", scratch_.Join("plan.json"), "--apply",
                                scratch_.Join("applied.mlmodel")},
                               absl::Seconds(300));
  ASSERT_EQ(p.exit_code, 0) << p.out << p.err;
  auto c = testing::RunProgram({cli, "compress", model_, "-o", scratch_.Join("from-config.mlmodel"), "--config",
                                scratch_.Join("plan.yaml"), "--quiet"},
                               absl::Seconds(300));
  ASSERT_EQ(c.exit_code, 0) << c.err;
  const std::string applied = Slurp(scratch_.Join("applied.mlmodel"));
  EXPECT_FALSE(applied.empty());
  EXPECT_EQ(applied, Slurp(scratch_.Join("from-config.mlmodel")));
  const std::string yaml = Slurp(scratch_.Join("plan.yaml"));
  EXPECT_TRUE(absl::StrContains(yaml, "conv1.weights")) << yaml;
  EXPECT_TRUE(absl::StrContains(yaml, "fc1.weights")) << yaml;
  const std::string json = Slurp(scratch_.Join("plan.json"));
  EXPECT_TRUE(absl::StrContains(json, "\"left_out_weights\"")) << json;
  EXPECT_TRUE(absl::StrContains(json, "int4-block32: ")) << json;
}

// A NeuralNetworkClassifier: its label output is the arg max of its
// probabilities, so the plan measures the probabilities and leaves the label
// (a string) alone instead of refusing the model.
TEST_F(NnPlanTest, AClassifierIsPlannedOnItsProbabilities) {
  namespace spec = CoreML::Specification;
  spec::Model net = testing::BuildRunnableNeuralNetworkModel(/*fp16=*/false, 9);
  spec::Model c = net;
  c.clear_neuralnetwork();
  auto* classifier = c.mutable_neuralnetworkclassifier();
  *classifier->mutable_layers() = net.neuralnetwork().layers();
  execute::testing::AddLayer(classifier, "softmax", {"output"}, "probs", 175, execute::testing::Wire());
  for (int i = 0; i < 64; ++i) classifier->mutable_stringclasslabels()->add_vector(absl::StrCat("class", i));
  c.mutable_description()->clear_output();
  auto* label = c.mutable_description()->add_output();
  label->set_name("label");
  label->mutable_type()->mutable_stringtype();
  auto* probs = c.mutable_description()->add_output();
  probs->set_name("probs");
  probs->mutable_type()->mutable_dictionarytype()->mutable_stringkeytype();
  c.mutable_description()->set_predictedfeaturename("label");
  c.mutable_description()->set_predictedprobabilitiesname("probs");
  const std::string model = scratch_.Join("classifier.mlmodel");
  ASSERT_TRUE(WriteFileAtomically(model, format::SerializeModelSpec(c)).ok());

  auto plan = MakePlan(model, Options(PlanTarget::Kind::kBits, 4.0));
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->measured_outputs, std::vector<std::string>{"probs"});
  EXPECT_LE(plan->measured.bits_per_weight, 4.0 + 1e-9);
  EXPECT_TRUE(std::isfinite(plan->measured.psnr_db));
}

// An argMax layer's output (floats holding indices, as NeuralNetwork blobs
// are) is a label: the output check and the plan measure the scores it
// reads, named "scores:label", never the indices themselves.
TEST_F(NnPlanTest, AnArgMaxOutputIsMeasuredOnItsScores) {
  namespace spec = CoreML::Specification;
  spec::Model m = testing::BuildRunnableNeuralNetworkModel(/*fp16=*/false, 11);
  execute::testing::AddLayer(m.mutable_neuralnetwork(), "argmax", {"output"}, "label", 1025,
                             execute::testing::Wire().Varint(1, static_cast<uint64_t>(int64_t{-1})));
  m.mutable_description()->mutable_output(0)->set_name("label");
  const std::string model = scratch_.Join("argmax.mlmodel");
  ASSERT_TRUE(WriteFileAtomically(model, format::SerializeModelSpec(m)).ok());

  auto plan = MakePlan(model, Options(PlanTarget::Kind::kBits, 4.0));
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->measured_outputs, std::vector<std::string>{"scores:label"});
  const std::string applied = scratch_.Join("argmax_applied.mlmodel");
  ASSERT_TRUE(engine::CompressModelPath(model, applied, plan->config, {}, {}).ok());
  execute::OutputCheckOptions check;
  check.samples = kSamples;
  auto checks = execute::CheckOutputs(model, applied, check);
  ASSERT_TRUE(checks.ok()) << checks.status();
  ASSERT_EQ(checks->size(), 1u);
  EXPECT_EQ(checks->at(0).name, "scores:label");
  EXPECT_DOUBLE_EQ(checks->at(0).psnr_db, plan->measured.psnr_db);
}

}  // namespace
}  // namespace coremlz::plan
