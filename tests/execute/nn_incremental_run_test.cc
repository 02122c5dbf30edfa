// NeuralNetwork incremental runs (NnExecutor::RunKeeping / RunReplacing):
// replacing weights with another model's values gives exactly that model's
// full run, rerunning only the layers at and after the first one replaced.
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "execute/nn_executor.h"
#include "execute/synthetic_inputs.h"
#include "gtest/gtest.h"
#include "tests/testing/model_builder.h"

namespace coremlz::execute {
namespace {

namespace Spec = CoreML::Specification;

// Every value of `wp` moved a little, as a compressed weight would be.
void Perturb(Spec::WeightParams* wp, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-0.05f, 0.05f);
  for (int i = 0; i < wp->floatvalue_size(); ++i) wp->set_floatvalue(i, wp->floatvalue(i) + u(rng));
}

std::map<std::string, Tensor> FullRun(const NnExecutor& ex, const std::map<std::string, Tensor>& inputs,
                                      RunStats* stats = nullptr) {
  auto out = ex.Run(inputs, stats);
  EXPECT_TRUE(out.ok()) << out.status();
  return out.ok() ? *std::move(out) : std::map<std::string, Tensor>{};
}

void ExpectSame(const std::map<std::string, Tensor>& want, const std::map<std::string, Tensor>& got) {
  ASSERT_EQ(want.size(), got.size());
  for (const auto& [name, t] : want) {
    ASSERT_TRUE(got.count(name)) << name;
    EXPECT_EQ(t.shape(), got.at(name).shape()) << name;
    EXPECT_EQ(t.floats(), got.at(name).floats()) << name << ": not bit for bit";
  }
}

class NnIncrementalRunTest : public ::testing::Test {
 protected:
  void SetUp() override {
    model_ = coremlz::testing::BuildRunnableNeuralNetworkModel(/*fp16=*/false, 5);
    auto ex = NnExecutor::Load(model_);
    ASSERT_TRUE(ex.ok()) << ex.status();
    original_ = *std::move(ex);
    auto specs = DescribeInputs(model_, *original_);
    ASSERT_TRUE(specs.ok()) << specs.status();
    inputs_ = SyntheticInputs(*specs, 3, 0);
  }

  // The model with the named layers' fields perturbed, loaded.
  std::unique_ptr<NnExecutor> Changed(const std::vector<std::string>& weights) {
    Spec::Model m = model_;
    for (auto& layer : *m.mutable_neuralnetwork()->mutable_layers()) {
      for (const std::string& w : weights) {
        if (w == layer.name() + ".weights" && layer.has_convolution()) Perturb(layer.mutable_convolution()->mutable_weights(), 1);
        if (w == layer.name() + ".bias" && layer.has_convolution()) Perturb(layer.mutable_convolution()->mutable_bias(), 2);
        if (w == layer.name() + ".mean" && layer.has_batchnorm()) Perturb(layer.mutable_batchnorm()->mutable_mean(), 3);
        if (w == layer.name() + ".weights" && layer.has_innerproduct()) Perturb(layer.mutable_innerproduct()->mutable_weights(), 4);
      }
    }
    auto ex = NnExecutor::Load(m);
    EXPECT_TRUE(ex.ok()) << ex.status();
    return ex.ok() ? *std::move(ex) : nullptr;
  }

  Spec::Model model_;
  std::unique_ptr<NnExecutor> original_;
  std::map<std::string, Tensor> inputs_;
};

TEST_F(NnIncrementalRunTest, ReplacedWeightsGiveTheFullRunOfTheChangedModel) {
  const NnExecutor& ex = *original_;
  auto kept = ex.RunKeeping(inputs_);
  auto bare = ex.RunKeeping(inputs_, /*keep_intermediates=*/false);
  ASSERT_TRUE(kept.ok()) << kept.status();
  ASSERT_TRUE(bare.ok()) << bare.status();
  EXPECT_GT((*kept)->bytes, 0);
  EXPECT_EQ((*bare)->bytes, 0);
  const std::map<std::string, Tensor> full = FullRun(ex, inputs_);
  RunStats stats;
  auto same = ex.RunReplacing(**kept, {}, &stats);
  ASSERT_TRUE(same.ok()) << same.status();
  ExpectSame(full, *same);
  EXPECT_EQ(stats.ops_run, 0);

  // conv1 -> bn1 -> fc1: a weight of layer k reruns layers k.. only.
  struct Case {
    std::vector<std::string> weights;
    int64_t layers_run;
  };
  const std::vector<Case> cases = {{{"conv1.weights"}, 3},
                                   {{"conv1.bias"}, 3},
                                   {{"bn1.mean"}, 2},
                                   {{"fc1.weights"}, 1},
                                   {{"conv1.weights", "fc1.weights"}, 3},
                                   {{"conv1.weights", "conv1.bias"}, 3}};
  for (const Case& c : cases) {
    SCOPED_TRACE(c.weights[0]);
    std::unique_ptr<NnExecutor> changed = Changed(c.weights);
    ASSERT_NE(changed, nullptr);
    const std::map<std::string, Tensor> want = FullRun(*changed, inputs_);
    EXPECT_NE(want.at("output").floats(), full.at("output").floats()) << "the change changes nothing";
    std::vector<ModelExecutor::WeightReplacement> replacements;
    for (const std::string& w : c.weights) {
      auto slot = ex.WeightSlot(w);
      ASSERT_TRUE(slot.ok()) << slot.status();
      ASSERT_GE(*slot, 0);
      auto value = ex.WeightValue(*slot, *changed);
      ASSERT_NE(value, nullptr);
      EXPECT_NE(value->floats(), ex.WeightValue(*slot)->floats());
      replacements.push_back({*slot, value});
    }
    auto got = ex.RunReplacing(**kept, replacements, &stats);
    ASSERT_TRUE(got.ok()) << got.status();
    ExpectSame(want, *got);
    EXPECT_EQ(stats.ops_run, c.layers_run);
    auto got_bare = ex.RunReplacing(**bare, replacements, &stats);
    ASSERT_TRUE(got_bare.ok()) << got_bare.status();
    ExpectSame(want, *got_bare);
    EXPECT_EQ(stats.ops_run, 3);
    // The kept run is untouched by a trial: nothing replaced is the original again.
    auto again = ex.RunReplacing(**kept, {});
    ASSERT_TRUE(again.ok());
    ExpectSame(full, *again);
  }
}

TEST_F(NnIncrementalRunTest, WeightsAreNamedAsTheReportNamesThem) {
  const NnExecutor& ex = *original_;
  for (const char* w : {"conv1.weights", "conv1.bias", "bn1.gamma", "bn1.beta", "bn1.mean", "bn1.variance",
                        "fc1.weights", "fc1.bias"}) {
    auto slot = ex.WeightSlot(w);
    ASSERT_TRUE(slot.ok()) << w << ": " << slot.status();
    ASSERT_NE(ex.WeightValue(*slot), nullptr) << w;
  }
  EXPECT_EQ(ex.WeightValue(*ex.WeightSlot("fc1.weights"))->size(), 64 * 32 * 8 * 8);
  for (const char* w : {"conv1", "fc1.weight", "nope.weights"}) {
    EXPECT_EQ(ex.WeightSlot(w).status().code(), absl::StatusCode::kFailedPrecondition) << w;
  }
}

TEST_F(NnIncrementalRunTest, ReplacementMustMatchTheWeight) {
  const NnExecutor& ex = *original_;
  auto kept = ex.RunKeeping(inputs_);
  ASSERT_TRUE(kept.ok());
  auto wrong = std::make_shared<const Tensor>(Tensor::Float({3}, {1, 2, 3}));
  EXPECT_EQ(ex.RunReplacing(**kept, {{-1, wrong}}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ex.RunReplacing(**kept, {{*ex.WeightSlot("conv1.weights"), wrong}}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ex.RunReplacing(**kept, {{*ex.WeightSlot("conv1.weights"), nullptr}}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace coremlz::execute
