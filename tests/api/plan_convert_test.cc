// A plan travels to a client as a proto and back field for field: the
// report rendered from the round trip is the report rendered from the plan,
// and indices a client would follow are checked against what was sent.
#include "api/plan_convert.h"

#include <cmath>
#include <string>

#include "gtest/gtest.h"
#include "plan/plan_outputs.h"

namespace coremlz::api {
namespace {

plan::PlanResult SamplePlan() {
  plan::PlanResult p;
  p.model = "m.mlpackage";
  p.target = {plan::PlanTarget::Kind::kBits, 4.5};
  p.candidates = {"palettize4", "int8", "keep"};
  p.samples = 2;
  p.trials_run = 5;
  p.trials_pruned = 1;
  plan::WeightPlan w;
  w.name = "w";
  w.elements = 4096;
  w.bytes_before = 8192;
  w.outcomes = {{"measured", 2048, 20.0, true, 30.0, 1e-3},
                {"measured (re-admitted)", 4100, 44.0, true, 50.0, 1e-5},
                {"keep", 8192, INFINITY, true, INFINITY, 0}};
  w.chosen = 1;
  p.weights = {w};
  p.predicted = {9000, 4100, 8.0, 49.5};
  p.measured = {9010, 4100, 8.0, 50.0};
  plan::UniformComparison u;
  u.candidate = "int8";
  u.candidate_index = 1;
  u.uniform = {{9010, 4100, 8.0, NAN}, 50.0};
  u.plan = {{9000, 4096, 8.0, 49.0}, 48.5};
  u.alone_psnr_lo_db = u.alone_psnr_hi_db = NAN;
  p.uniform = {u};
  p.readmitted = {{u, 3}};
  p.compare_seconds = 0.25;
  return p;
}

TEST(PlanConvertTest, ComparisonsAndReadmissionsRoundTrip) {
  const plan::PlanResult plan = SamplePlan();
  absl::StatusOr<plan::PlanResult> back = FromProto(ToProto(plan));
  ASSERT_TRUE(back.ok()) << back.status();
  ASSERT_EQ(back->readmitted.size(), 1u);
  EXPECT_EQ(back->readmitted[0].trials, 3);
  EXPECT_EQ(back->readmitted[0].evidence.candidate_index, 1);
  EXPECT_EQ(back->uniform[0].candidate_index, 1);
  EXPECT_EQ(back->compare_seconds, 0.25);
  EXPECT_EQ(plan::PlanReportJson(*back), plan::PlanReportJson(plan));
}

TEST(PlanConvertTest, AComparisonOfAnUnknownCandidateIsRefused) {
  for (int index : {-1, 3}) {
    v1::PlanResult proto = ToProto(SamplePlan());
    proto.mutable_readmitted(0)->mutable_evidence()->set_candidate_index(index);
    absl::StatusOr<plan::PlanResult> back = FromProto(proto);
    EXPECT_EQ(back.status().code(), absl::StatusCode::kInvalidArgument) << index;
    proto = ToProto(SamplePlan());
    proto.mutable_uniform(0)->set_candidate_index(index);
    EXPECT_EQ(FromProto(proto).status().code(), absl::StatusCode::kInvalidArgument) << index;
  }
}

}  // namespace
}  // namespace coremlz::api
