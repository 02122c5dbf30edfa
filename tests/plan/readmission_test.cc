// Weight-SNR pruning checked against measurements: a candidate pruned on
// weight SNR whose uniform application measures better than the plan within
// its bytes is re-admitted (its pruned trials run, the allocation is solved
// again); where the measurements agree with the pruning, nothing reruns.
//
// The model (testing::WriteSplitScalePackage) makes per-tensor palettes and
// per-channel scales disagree: half of the first weight's output channels
// are 1000x smaller than the rest and are scaled back up before the next
// layer. One 8-bit palette for the whole tensor has the higher weight SNR
// (and is smaller), but it cannot resolve the small channels, which
// per-channel int8 keeps to 8 bits.
#include <cmath>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "gtest/gtest.h"
#include "plan/plan_outputs.h"
#include "plan/planner.h"
#include "tests/testing/model_builder.h"
#include "tests/testing/test_env.h"

namespace coremlz::plan {
namespace {

PlanOptions Options() {
  PlanOptions o;
  o.target = {PlanTarget::Kind::kBits, 8.5};
  o.candidates = *ParseCandidates("palettize8,palettize4,int8,keep", 2048);
  o.study.samples = 2;
  o.study.threads = 2;
  o.pareto_points = 3;
  return o;
}

const UniformComparison* ComparisonOf(const PlanResult& p, const std::string& candidate) {
  for (const UniformComparison& u : p.uniform) {
    if (u.candidate == candidate) return &u;
  }
  return nullptr;
}

int CandidateIndex(const PlanResult& p, const std::string& name) {
  for (size_t c = 0; c < p.candidates.size(); ++c) {
    if (p.candidates[c] == name) return static_cast<int>(c);
  }
  return -1;
}

TEST(ReadmissionTest, APruningTheOutputsRefuteIsUndone) {
  testing::ScratchDir scratch;
  const std::string model = scratch.Join("split.mlpackage");
  ASSERT_TRUE(testing::WriteSplitScalePackage(model, 1e-3f).ok());
  absl::StatusOr<PlanResult> plan = MakePlan(model, Options());
  ASSERT_TRUE(plan.ok()) << plan.status();
  const int int8 = CandidateIndex(*plan, "int8");
  const int pal8 = CandidateIndex(*plan, "palettize8");
  ASSERT_GE(int8, 0);
  ASSERT_EQ(plan->weights.size(), 2u);
  const WeightPlan& fc1 = plan->weights[0].name == "fc1_weight" ? plan->weights[0] : plan->weights[1];
  ASSERT_EQ(fc1.name, "fc1_weight");

  // The premise: on weight SNR and bytes the palette beats int8 here.
  EXPECT_LT(fc1.outcomes[pal8].bytes, fc1.outcomes[int8].bytes);
  EXPECT_GT(fc1.outcomes[pal8].weight_snr_db, fc1.outcomes[int8].weight_snr_db);

  // The measurement refuted the pruning: int8 was re-admitted with the
  // evidence, and every one of its trials now ran.
  ASSERT_EQ(plan->readmitted.size(), 1u);
  const Readmission& r = plan->readmitted[0];
  EXPECT_EQ(r.evidence.candidate, "int8");
  EXPECT_EQ(r.evidence.candidate_index, int8);
  EXPECT_GE(r.trials, 1);
  EXPECT_GT(r.evidence.uniform.measured_psnr_db, r.evidence.plan.measured_psnr_db);
  int readmitted = 0;
  for (const WeightPlan& w : plan->weights) {
    EXPECT_TRUE(w.outcomes[int8].measured) << w.name << ": " << w.outcomes[int8].status;
    readmitted += w.outcomes[int8].status == "measured (re-admitted)" ? 1 : 0;
  }
  EXPECT_EQ(readmitted, r.trials);
  // Trials are moved from pruned to run, none lost or counted twice.
  EXPECT_EQ(plan->trials_run + plan->trials_pruned, 2 * 3);  // two weights, three compressing candidates

  // After it, the plan within int8's bytes is no worse than int8 everywhere,
  // and the uniform int8 comparison now has a prediction (no trial pruned).
  const UniformComparison* u = ComparisonOf(*plan, "int8");
  ASSERT_NE(u, nullptr);
  EXPECT_GE(u->plan.measured_psnr_db, u->uniform.measured_psnr_db);
  EXPECT_FALSE(std::isnan(u->uniform.predicted.psnr_db));
  // At 8.5 bits the plan takes int8 for the weight the palette cannot hold.
  EXPECT_EQ(fc1.chosen, int8);
  EXPECT_GE(plan->measured.psnr_db, r.evidence.uniform.measured_psnr_db - 1e-9);

  // The report says so.
  const std::string json = PlanReportJson(*plan);
  EXPECT_TRUE(absl::StrContains(json, "\"readmitted\"")) << json;
  EXPECT_TRUE(absl::StrContains(json, "measured (re-admitted)")) << json;
}

TEST(ReadmissionTest, APruningTheOutputsConfirmStands) {
  testing::ScratchDir scratch;
  const std::string model = scratch.Join("even.mlpackage");
  // Every channel alike, and rows long enough that their maxima cost int8
  // more weight SNR than one palette loses: pruned, and rightly.
  ASSERT_TRUE(testing::WriteSplitScalePackage(model, 1.0f, 1024).ok());
  absl::StatusOr<PlanResult> plan = MakePlan(model, Options());
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_TRUE(plan->readmitted.empty());
  EXPECT_GT(plan->trials_pruned, 0);
  const UniformComparison* u = ComparisonOf(*plan, "int8");
  ASSERT_NE(u, nullptr);
  EXPECT_LE(u->uniform.measured_psnr_db, u->plan.measured_psnr_db);
  for (const WeightPlan& w : plan->weights) {
    for (const CandidateOutcome& o : w.outcomes) EXPECT_NE(o.status, "measured (re-admitted)") << w.name;
  }
}

}  // namespace
}  // namespace coremlz::plan
