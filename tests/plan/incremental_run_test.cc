// Trials recompute only what lies downstream of the weight they change: that
// must give exactly the outputs of running the model compressed that way.
#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
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
std::string LlmLike() { return testing::GoldenDir() + "/llm_like/llm_like_multifunction.mlpackage"; }
std::string MobileNet() { return testing::ModelsDir() + "/mobilenetv2_randinit/mobilenetv2_randinit.mlpackage"; }
// An echo canceller whose LSTM weights are read only inside while_loop bodies.
std::string Dtln() { return testing::ModelsDir() + "/dtln_aec_128_part1/DTLN_AEC_128_Part1.mlpackage"; }

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

// A full run from zeroed states, with each state's final value beside the
// outputs (as RunReplacing reports it).
std::map<std::string, Tensor> FullRun(const ProgramExecutor& ex, const std::map<std::string, Tensor>& inputs,
                                      execute::RunStats* stats = nullptr) {
  execute::Session session;
  auto out = ex.Run(inputs, &session, stats);
  EXPECT_TRUE(out.ok()) << out.status();
  if (!out.ok()) return {};
  for (const execute::InputDecl& d : ex.inputs()) {
    if (d.is_state) (*out)[std::string(ProgramExecutor::kStateOutputPrefix) + d.name] = *session.state(d.name);
  }
  return *std::move(out);
}

// The compressed function's results differ somewhere (else a trial would
// test nothing).
void ExpectDiffer(const std::map<std::string, Tensor>& a, const std::map<std::string, Tensor>& b) {
  bool differ = false;
  for (const auto& [name, t] : a) {
    auto it = b.find(name);
    differ = differ || it == b.end() || it->second.floats() != t.floats();
  }
  EXPECT_TRUE(differ);
}

void CheckModel(const std::string& model, const std::string& function = "") {
  testing::ScratchDir scratch;
  auto original = execute::LoadModel(model, function);
  ASSERT_TRUE(original.ok()) << original.status();
  const ProgramExecutor& ex = *original->program();
  std::vector<std::string> names;  // the compressible weights this function reads
  for (const std::string& n : CompressibleWeights(model, scratch.path())) {
    const int slot = ex.ConstantSlot(n);
    if (slot >= 0 && !ex.UsesOf(slot).empty()) names.push_back(n);
  }
  ASSERT_GE(names.size(), 3u);
  auto specs = execute::DescribeInputs(original->package->model(), ex);
  ASSERT_TRUE(specs.ok());
  const auto inputs = execute::SyntheticInputs(*specs, 7, 1);
  auto kept = ex.RunKeeping(inputs);
  auto bare = ex.RunKeeping(inputs, /*keep_intermediates=*/false);
  ASSERT_TRUE(kept.ok() && bare.ok());
  EXPECT_GT(kept->bytes, 0);
  EXPECT_EQ(bare->bytes, 0);

  // Nothing replaced: the original's outputs, running nothing when kept.
  const std::map<std::string, Tensor> full = FullRun(ex, inputs);
  execute::RunStats stats;
  auto same = ex.RunReplacing(*kept, {}, &stats);
  ASSERT_TRUE(same.ok());
  ExpectSameOutputs(full, *same);
  EXPECT_EQ(stats.ops_run, 0);

  // One weight early, one in the middle, the last; then all three at once.
  const std::vector<std::vector<std::string>> cases = {
      {names.front()}, {names[names.size() / 2]}, {names.back()}, {names.front(), names[names.size() / 2], names.back()}};
  int states_kept = 0, states_changed = 0;  // over the cases, for stateful functions
  int64_t full_ops = 0;
  ASSERT_FALSE(FullRun(ex, inputs, &stats).empty());
  full_ops = stats.ops_run;
  for (size_t k = 0; k < cases.size(); ++k) {
    const std::string path = CompressOnly(model, cases[k], scratch.Join("case" + std::to_string(k) + ".mlpackage"));
    auto compressed = execute::LoadModel(path, function);
    ASSERT_TRUE(compressed.ok()) << compressed.status();
    const std::map<std::string, Tensor> want = FullRun(*compressed->program(), inputs);
    ASSERT_FALSE(want.empty());
    ExpectDiffer(full, want);
    for (const auto& [name, t] : want) {
      if (name.rfind(ProgramExecutor::kStateOutputPrefix, 0) == 0) {
        (t.floats() == full.at(name).floats() ? states_kept : states_changed)++;
      }
    }
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
    ExpectSameOutputs(want, *got);
    if (k == 2) {
      EXPECT_LT(stats.ops_run, full_ops) << "the last weight's trial reran the whole model";
    }
    auto got_bare = ex.RunReplacing(*bare, replacements, &stats);
    ASSERT_TRUE(got_bare.ok());
    ExpectSameOutputs(want, *got_bare);
    EXPECT_EQ(stats.ops_run, full_ops);
  }
  if (ex.is_stateful()) {
    // Both ways a trial meets a state write: rerun (a weight before it) and
    // kept (a weight after it: the state is what the kept run wrote).
    EXPECT_GE(states_changed, 1);
    EXPECT_GE(states_kept, 1);
  }
}

// Weights a while_loop's body reads (and nothing at top level): their uses
// are found inside the body, the candidate's decoded value is found at the
// same place, and replacing them reruns the loop - exactly a full run of the
// model compressed that way.
TEST(IncrementalRunTest, WeightsReadOnlyInsideLoopBodiesMatchFullRuns) {
  testing::ScratchDir scratch;
  auto original = execute::LoadModel(Dtln(), "");
  ASSERT_TRUE(original.ok()) << original.status();
  const ProgramExecutor& ex = *original->program();
  std::vector<std::string> body_only;
  for (const std::string& n : CompressibleWeights(Dtln(), scratch.path())) {
    const int slot = ex.ConstantSlot(n);
    if (slot < 0) continue;
    const auto uses = ex.UsesOf(slot);
    if (!uses.empty() && std::all_of(uses.begin(), uses.end(), [](const auto& u) { return !u.nested.empty(); })) {
      body_only.push_back(n);
    }
  }
  ASSERT_GE(body_only.size(), 2u) << "DTLN's LSTM kernels are read inside its loops";
  auto specs = execute::DescribeInputs(original->package->model(), ex);
  ASSERT_TRUE(specs.ok());
  const auto inputs = execute::SyntheticInputs(*specs, 3, 0);
  auto kept = ex.RunKeeping(inputs);
  ASSERT_TRUE(kept.ok()) << kept.status();
  const auto full = FullRun(ex, inputs);
  for (const std::vector<std::string>& names : {std::vector<std::string>{body_only.front()}, body_only}) {
    const std::string path = CompressOnly(Dtln(), names, scratch.Join(absl::StrCat("loop", names.size(), ".mlpackage")));
    auto compressed = execute::LoadModel(path, "");
    ASSERT_TRUE(compressed.ok()) << compressed.status();
    const auto want = FullRun(*compressed->program(), inputs);
    ExpectDiffer(full, want);
    std::vector<ProgramExecutor::Replacement> replacements;
    for (const std::string& n : names) {
      const int slot = ex.ConstantSlot(n);
      const auto uses = ex.UsesOf(slot);
      auto decoded = compressed->program()->ConstantAt(uses[0]);
      ASSERT_NE(decoded, nullptr) << n;
      EXPECT_EQ(decoded->shape(), ex.ConstantAt(uses[0])->shape()) << n;
      replacements.push_back({slot, decoded});
    }
    auto got = ex.RunReplacing(*kept, replacements);
    ASSERT_TRUE(got.ok()) << got.status();
    ExpectSameOutputs(want, *got);
  }
}

TEST(IncrementalRunTest, TransformerTrialsMatchFullRunsOfTheCompressedModel) { CheckModel(Transformer()); }
TEST(IncrementalRunTest, MobileNetTrialsMatchFullRunsOfTheCompressedModel) { CheckModel(MobileNet()); }
// Stateful functions: prefill writes the KV cache from the tokens; decode
// reads it, then writes it. A weight before a state write changes the state;
// one after it leaves the state as the kept run wrote it - both must come out
// exactly as a full run of the compressed function from zeroed states.
TEST(IncrementalRunTest, StatefulPrefillTrialsMatchFullRuns) { CheckModel(LlmLike(), "prefill"); }
TEST(IncrementalRunTest, StatefulDecodeTrialsMatchFullRuns) { CheckModel(LlmLike(), "decode"); }

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
