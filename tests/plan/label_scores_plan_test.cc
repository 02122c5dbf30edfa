// Label outputs (the arg max of float scores) are checked and planned on
// their scores: which value is measured, that the plan's measurement equals
// an output check of the same model returning its scores as an output of its
// own, and that other integer outputs are refused by name.
#include "execute/label_scores.h"

#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "engine/compress_model.h"
#include "execute/output_check.h"
#include "execute/synthetic_inputs.h"
#include "format/tensor.h"
#include "gtest/gtest.h"
#include "plan/planner.h"
#include "tests/testing/model_builder.h"
#include "tests/testing/test_env.h"

namespace coremlz::plan {
namespace {

using format::ElementType;

format::Tensor Int32Scalar(int32_t v) {
  std::string bytes(4, '\0');
  for (int i = 0; i < 4; ++i) bytes[i] = static_cast<char>((static_cast<uint32_t>(v) >> (8 * i)) & 0xff);
  return *format::MakeTensor(ElementType::kInt32, {}, bytes);
}

enum class Tail { kArgmax, kArgmaxAndScores, kShapeOnly };

// x[1, 64] -> linear 64x128 -> relu -> linear 128x10 = logits, then the tail.
void WriteClassifier(const std::string& dir, Tail tail, const std::string& scores = "fc2", int axis = -1,
                     bool rank3 = false) {
  testing::ProgramBuilder b(7);
  b.AddInput("x", ElementType::kFloat32, {1, 64});
  std::string h = b.Linear("fc1", "x", 64, 128, {1, 64}, ElementType::kFloat32, 11);
  h = b.Op("relu", {{"x", h}}, "fc1_relu", ElementType::kFloat32, {1, 128});
  const std::string logits = b.Linear(scores, h, 128, 10, {1, 128}, ElementType::kFloat32, 13);
  if (tail == Tail::kShapeOnly) {
    b.AddOutput(b.Op("shape", {{"x", logits}}, "logits_shape", ElementType::kInt32, {2}), ElementType::kInt32, {2});
    ASSERT_TRUE(b.WritePackage(dir).ok());
    return;
  }
  const std::string axis_value = b.Const("axis", Int32Scalar(axis));
  // Over axis 0 (or with rank3) the scores are first made [1, 1, 10], not
  // shaped like class scores by their rank alone.
  std::string scored = logits;
  if (axis == 0 || rank3) {
    const std::string axes = b.Const("axes", *format::MakeTensor(ElementType::kInt32, {1}, std::string(4, '\0')));
    scored = b.Op("expand_dims", {{"x", logits}, {"axes", axes}}, "logits3", ElementType::kFloat32, {1, 1, 10});
  }
  const format::Shape label_shape = axis == 0 ? format::Shape{1, 10} : rank3 ? format::Shape{1, 1} : format::Shape{1};
  std::string label =
      b.Op("reduce_argmax", {{"x", scored}, {"axis", axis_value}}, "label", ElementType::kInt32, label_shape);
  b.AddOutput(label, ElementType::kInt32, label_shape);
  if (tail == Tail::kArgmaxAndScores) b.AddOutput(logits, ElementType::kFloat32, {1, 10});
  ASSERT_TRUE(b.WritePackage(dir).ok());
}

PlanOptions Options(PlanTarget::Kind kind, double value) {
  PlanOptions o;
  o.target = {kind, value};
  o.candidates = *ParseCandidates("palettize8,palettize4,palettize2,keep", 512);
  o.study.samples = 3;
  o.study.threads = 2;
  o.pareto_points = 4;
  return o;
}

namespace MIL = CoreML::Specification::MILSpec;
using execute::ScoresOfLabelOutputs;
using execute::WithExtraOutputs;

void AddOp(MIL::Block* block, const std::string& type, const std::string& x, const std::string& out) {
  MIL::Operation* op = block->add_operations();
  op->set_type(type);
  (*op->mutable_inputs())["x"].add_arguments()->set_name(x);
  op->add_outputs()->set_name(out);
}

TEST(LabelScoresTest, FindsTheScoresOfAnArgMaxThroughCasts) {
  MIL::Program program;
  MIL::Function& fn = (*program.mutable_functions())["main"];
  fn.set_opset("CoreML7");
  MIL::Block& block = (*fn.mutable_block_specializations())["CoreML7"];
  AddOp(&block, "softmax", "logits", "probs");
  AddOp(&block, "reduce_argmax", "probs", "label");
  AddOp(&block, "cast", "label", "label16");
  AddOp(&block, "reduce_argmin", "logits", "worst");
  AddOp(&block, "shape", "logits", "dims");
  AddOp(&block, "cast", "loop_b", "loop_a");  // a malformed cycle of casts
  AddOp(&block, "cast", "loop_a", "loop_b");
  for (const char* o : {"label16", "worst", "dims", "probs", "loop_a"}) block.add_outputs(o);

  auto scores = ScoresOfLabelOutputs(program, "main");
  ASSERT_TRUE(scores.ok()) << scores.status();
  const std::map<std::string, std::string> want = {{"label16", "probs"}, {"worst", "logits"}};
  EXPECT_EQ(*scores, want);
  EXPECT_EQ(ScoresOfLabelOutputs(program, "nope").status().code(), absl::StatusCode::kInvalidArgument);

  // The scores join the function's outputs once; the program is otherwise the same.
  auto extended = WithExtraOutputs(program, "main", *scores);
  ASSERT_TRUE(extended.ok()) << extended.status();
  const auto& outputs = extended->functions().at("main").block_specializations().at("CoreML7").outputs();
  EXPECT_EQ(std::vector<std::string>(outputs.begin(), outputs.end()),
            (std::vector<std::string>{"label16", "worst", "dims", "probs", "loop_a", "logits"}));
  EXPECT_EQ(extended->functions().at("main").block_specializations().at("CoreML7").operations_size(), 7);
}

// The plan's measured PSNR of a label output is the output check's PSNR of
// the scores, on a model that returns them, compressed with the same config.
TEST(LabelScoresTest, ALabelOutputIsPlannedOnItsScores) {
  testing::ScratchDir scratch;
  const std::string labels = scratch.Join("labels.mlpackage");
  const std::string with_scores = scratch.Join("scores.mlpackage");
  WriteClassifier(labels, Tail::kArgmax);
  WriteClassifier(with_scores, Tail::kArgmaxAndScores);

  auto plan = MakePlan(labels, Options(PlanTarget::Kind::kBits, 4.0));
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->measured_outputs, std::vector<std::string>{"scores:label"});
  EXPECT_LE(plan->measured.bits_per_weight, 4.0 + 1e-9);

  const std::string applied = scratch.Join("applied.mlpackage");
  auto report = engine::CompressModelPath(with_scores, applied, plan->config, engine::CompressOptions{},
                                          engine::WriteOptions{});
  ASSERT_TRUE(report.ok()) << report.status();
  execute::OutputCheckOptions check;
  check.samples = 3;
  auto checks = execute::CheckOutputs(with_scores, applied, check);
  ASSERT_TRUE(checks.ok()) << checks.status();
  bool found = false;
  for (const engine::OutputCheck& c : *checks) {
    if (c.name != "fc2") continue;
    found = true;
    EXPECT_DOUBLE_EQ(c.psnr_db, plan->measured.psnr_db);
  }
  EXPECT_TRUE(found);
  // The output check of the label model measures the same scores, named for the label.
  auto label_checks = execute::CheckOutputs(labels, scratch.Join("labels_applied.mlpackage"), check);
  EXPECT_FALSE(label_checks.ok()) << "no such model yet";
  ASSERT_TRUE(engine::CompressModelPath(labels, scratch.Join("labels_applied.mlpackage"), plan->config,
                                        engine::CompressOptions{}, engine::WriteOptions{})
                  .ok());
  label_checks = execute::CheckOutputs(labels, scratch.Join("labels_applied.mlpackage"), check);
  ASSERT_TRUE(label_checks.ok()) << label_checks.status();
  ASSERT_EQ(label_checks->size(), 1u);
  const engine::OutputCheck& scored = label_checks->at(0);
  EXPECT_EQ(scored.name, "scores:label");
  EXPECT_DOUBLE_EQ(scored.psnr_db, plan->measured.psnr_db);
  // The arg max is over the last axis, so the scores are class scores: the
  // same metrics as the twin's declared scores output, top-1 agreement being
  // how often the label stays.
  for (const engine::OutputCheck& c : *checks) {
    if (c.name != "fc2") continue;
    ASSERT_TRUE(c.class_scores);
    EXPECT_TRUE(scored.class_scores);
    EXPECT_DOUBLE_EQ(scored.top1_agreement, c.top1_agreement);
    EXPECT_DOUBLE_EQ(scored.top5_overlap, c.top5_overlap);
    EXPECT_DOUBLE_EQ(scored.kl_divergence, c.kl_divergence);
  }

  // A floor holds on the measured scores.
  auto floored = MakePlan(labels, Options(PlanTarget::Kind::kMinPsnr, plan->measured.psnr_db + 5));
  ASSERT_TRUE(floored.ok()) << floored.status();
  EXPECT_GE(floored->measured.psnr_db, plan->measured.psnr_db + 5);
}

TEST(LabelScoresTest, AnotherIntegerOutputIsRefusedByName) {
  testing::ScratchDir scratch;
  const std::string dir = scratch.Join("shape.mlpackage");
  WriteClassifier(dir, Tail::kShapeOnly);
  auto plan = MakePlan(dir, Options(PlanTarget::Kind::kBits, 4.0));
  ASSERT_FALSE(plan.ok());
  EXPECT_EQ(plan.status().code(), absl::StatusCode::kUnimplemented);
  EXPECT_TRUE(absl::StrContains(plan.status().message(), "'logits_shape' is int32")) << plan.status();
}

// Two models whose arg max reads differently named scores cannot be compared
// on them: the error names the label output and the value.
TEST(LabelScoresTest, ScoresThatDoNotLineUpAreNamedInTheError) {
  testing::ScratchDir scratch;
  WriteClassifier(scratch.Join("a.mlpackage"), Tail::kArgmax);
  WriteClassifier(scratch.Join("b.mlpackage"), Tail::kArgmax, "head");
  execute::OutputCheckOptions check;
  auto checks = execute::CheckOutputs(scratch.Join("a.mlpackage"), scratch.Join("b.mlpackage"), check);
  ASSERT_FALSE(checks.ok());
  EXPECT_EQ(checks.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(checks.status().message(), "the scores of label (the value 'fc2'"))
      << checks.status();
}

// An arg max over another axis than the last: the scores are compared as a
// signal, without class-score metrics (the rows would not be its classes).
TEST(LabelScoresTest, AnArgMaxOverAnotherAxisGetsNoClassMetrics) {
  testing::ScratchDir scratch;
  const std::string model = scratch.Join("axis0.mlpackage");
  WriteClassifier(model, Tail::kArgmax, "fc2", /*axis=*/0);
  engine::CompressionConfig config;
  config.passes.push_back({});
  engine::PalettizerConfig p;
  p.nbits = 2;
  config.passes[0].config.global = p;
  ASSERT_TRUE(engine::CompressModelPath(model, scratch.Join("c.mlpackage"), config, engine::CompressOptions{},
                                        engine::WriteOptions{})
                  .ok());
  execute::OutputCheckOptions check;
  auto checks = execute::CheckOutputs(model, scratch.Join("c.mlpackage"), check);
  ASSERT_TRUE(checks.ok()) << checks.status();
  ASSERT_EQ(checks->size(), 1u);
  EXPECT_EQ(checks->at(0).name, "scores:label");
  EXPECT_FALSE(checks->at(0).class_scores);
  EXPECT_LT(checks->at(0).psnr_db, 100.0) << "2-bit palettes change the scores";
}

// Scores of rank 3 whose last axis the arg max takes: class scores, found by
// checking the labels; top-1 agreement is the share of labels that stay, as
// counted here from the two models' own label outputs.
TEST(LabelScoresTest, LastAxisScoresOfAnyRankGetClassMetrics) {
  testing::ScratchDir scratch;
  const std::string model = scratch.Join("rank3.mlpackage");
  WriteClassifier(model, Tail::kArgmax, "fc2", -1, /*rank3=*/true);
  engine::CompressionConfig config;
  config.passes.push_back({});
  engine::PalettizerConfig p;
  p.nbits = 1;
  config.passes[0].config.global = p;
  const std::string compressed = scratch.Join("c.mlpackage");
  ASSERT_TRUE(engine::CompressModelPath(model, compressed, config, engine::CompressOptions{}, engine::WriteOptions{}).ok());
  execute::OutputCheckOptions check;
  check.samples = 16;
  auto checks = execute::CheckOutputs(model, compressed, check);
  ASSERT_TRUE(checks.ok()) << checks.status();
  ASSERT_EQ(checks->size(), 1u);
  EXPECT_TRUE(checks->at(0).class_scores);

  auto a = execute::LoadModel(model, "");
  auto b = execute::LoadModel(compressed, "");
  ASSERT_TRUE(a.ok() && b.ok());
  auto specs = execute::DescribeInputs(a->model(), *a->executor);
  ASSERT_TRUE(specs.ok());
  int same = 0;
  for (int i = 0; i < check.samples; ++i) {
    const auto inputs = execute::SyntheticInputs(*specs, check.seed, i);
    auto ra = a->executor->Run(inputs);
    auto rb = b->executor->Run(inputs);
    ASSERT_TRUE(ra.ok() && rb.ok());
    same += ra->at("label").ints()[0] == rb->at("label").ints()[0];
  }
  EXPECT_LT(same, check.samples) << "1-bit palettes move some labels (else this tests nothing)";
  EXPECT_GT(same, 0);
  EXPECT_NEAR(checks->at(0).top1_agreement, static_cast<double>(same) / check.samples, 1e-12);
}

}  // namespace
}  // namespace coremlz::plan
