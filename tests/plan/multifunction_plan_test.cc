// The planner on a package whose two functions read the same weights (the
// shape of multifunction LLM packages): the writer stores each shared weight
// once, so the predicted size must count it once, and either function may be
// planned. A stateful function (golden/llm_like: prefill and decode sharing a
// KV cache) is measured on its outputs and on what it leaves in its state.
#include <algorithm>
#include <cstdio>
#include <limits>
#include <filesystem>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "engine/compress_model.h"
#include "execute/compare.h"
#include "execute/loaded_model.h"
#include "execute/synthetic_inputs.h"
#include "format/package.h"
#include "gtest/gtest.h"
#include "plan/planner.h"
#include "tests/testing/test_env.h"

namespace coremlz::plan {
namespace {

namespace fs = std::filesystem;

std::string MobileNet() { return testing::ModelsDir() + "/mobilenetv2_randinit/mobilenetv2_randinit.mlpackage"; }

uint64_t TreeBytes(const std::string& dir) {
  uint64_t total = 0;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (e.is_regular_file()) total += e.file_size();
  }
  return total;
}

// `src` with its one function also published as "second": both functions'
// const ops read the same blobs of the one weight.bin, as in packages made
// by coremltools.utils.save_multifunction.
void WriteTwoFunctionCopy(const std::string& src, const std::string& dst) {
  testing::CopyTree(src, dst);
  auto pkg = format::MlPackage::Open(dst);
  ASSERT_TRUE(pkg.ok()) << pkg.status();
  CoreML::Specification::Model model = (*pkg)->model();
  auto* functions = model.mutable_mlprogram()->mutable_functions();
  ASSERT_EQ(functions->size(), 1u);
  const std::string first = functions->begin()->first;
  (*functions)["second"] = functions->begin()->second;
  auto* d = model.mutable_description();
  for (const std::string& name : {first, std::string("second")}) {
    auto* f = d->add_functions();
    f->set_name(name);
    *f->mutable_input() = d->input();
    *f->mutable_output() = d->output();
  }
  d->set_defaultfunctionname(first);
  if (model.specificationversion() < 9) model.set_specificationversion(9);
  const std::string spec = (*pkg)->PathOf((*pkg)->layout().model_path);
  ASSERT_TRUE(WriteFileAtomically(spec, format::SerializeModelSpec(model)).ok());
}

PlanOptions Options(double size, const std::string& function) {
  PlanOptions o;
  o.target = {PlanTarget::Kind::kSize, size};
  o.candidates = *ParseCandidates("int8,palettize4,keep", 2048);
  o.study.samples = 1;
  o.study.threads = 2;
  o.study.function = function;
  o.pareto_points = 2;
  return o;
}

TEST(MultifunctionPlanTest, PredictedBytesCountASharedWeightOnceAndEitherFunctionPlans) {
  testing::ScratchDir scratch;
  const std::string model = scratch.Join("two.mlpackage");
  WriteTwoFunctionCopy(MobileNet(), model);
  const double original = static_cast<double>(TreeBytes(model));
  size_t planned = 0;
  for (const std::string function : {"", "second"}) {
    SCOPED_TRACE(function);
    auto plan = MakePlan(model, Options(original * 0.4, function));
    ASSERT_TRUE(plan.ok()) << plan.status();
    const std::string applied = scratch.Join(absl::StrCat("applied", function, ".mlpackage"));
    auto report = engine::CompressModelPath(model, applied, plan->config, engine::CompressOptions{}, engine::WriteOptions{});
    ASSERT_TRUE(report.ok()) << report.status();
    const uint64_t on_disk = TreeBytes(applied);
    EXPECT_EQ(on_disk, plan->measured.model_bytes);
    EXPECT_LE(on_disk, original * 0.4) << "the shared weights are stored once";
    std::printf("[%s] planned weights %zu, predicted %llu bytes, applied %llu bytes (%+.3f%%), original %.0f\n",
                function.empty() ? "default" : function.c_str(), plan->weights.size(),
                static_cast<unsigned long long>(plan->predicted.model_bytes), static_cast<unsigned long long>(on_disk),
                100.0 * (static_cast<double>(plan->predicted.model_bytes) - on_disk) / on_disk, original);
    EXPECT_NEAR(static_cast<double>(plan->predicted.model_bytes), static_cast<double>(on_disk), 0.002 * on_disk);
    // The weights left as they are count too (at their original size).
    EXPECT_EQ(plan->predicted.weight_bytes, plan->measured.weight_bytes);
    // Every shared weight is the non-default function's as much as the default's.
    if (function.empty()) planned = plan->weights.size();
    EXPECT_EQ(plan->weights.size(), planned);
    EXPECT_GT(planned, 40u);
  }
}

// The lowest PSNR over the outputs and final states of `function`, original
// vs `compressed`, each sample run from zeroed states: computed here with
// full runs, independently of the planner's incremental ones.
double WorstPsnrByFullRuns(const std::string& original, const std::string& compressed, const std::string& function,
                           int samples, uint64_t seed, std::vector<std::string>* measured) {
  auto a = execute::LoadModel(original, function);
  auto b = execute::LoadModel(compressed, function);
  EXPECT_TRUE(a.ok() && b.ok());
  if (!a.ok() || !b.ok()) return 0;
  auto specs = execute::DescribeInputs(a->model(), *a->executor);
  EXPECT_TRUE(specs.ok());
  if (!specs.ok()) return 0;
  double worst = std::numeric_limits<double>::infinity();
  measured->clear();
  for (int i = 0; i < samples; ++i) {
    const auto inputs = execute::SyntheticInputs(*specs, seed, i);
    execute::Session sa, sb;
    auto ra = a->program()->Run(inputs, &sa);
    auto rb = b->program()->Run(inputs, &sb);
    EXPECT_TRUE(ra.ok() && rb.ok());
    if (!ra.ok() || !rb.ok()) return 0;
    for (const execute::InputDecl& d : a->program()->inputs()) {
      if (!d.is_state) continue;
      (*ra)[std::string("state:") + d.name] = *sa.state(d.name);
      (*rb)[std::string("state:") + d.name] = *sb.state(d.name);
    }
    for (const auto& [name, t] : *ra) {
      if (i == 0) measured->push_back(name);
      auto c = execute::CompareOutputs(t.floats(), rb->at(name).floats());
      EXPECT_TRUE(c.ok());
      if (c.ok()) worst = std::min(worst, c->psnr_db);
    }
  }
  return worst;
}

TEST(MultifunctionPlanTest, StatefulFunctionsPlanOnOutputsAndStates) {
  testing::ScratchDir scratch;
  const std::string model = testing::GoldenDir() + "/llm_like/llm_like_multifunction.mlpackage";
  for (const std::string function : {"prefill", "decode"}) {
    SCOPED_TRACE(function);
    PlanOptions o;
    o.target = {PlanTarget::Kind::kMinPsnr, 38};
    o.candidates = *ParseCandidates("palettize8,palettize4,palettize2,keep", 2048);
    o.study.samples = 2;
    o.study.threads = 2;
    o.study.function = function;
    o.pareto_points = 2;
    auto plan = MakePlan(model, o);
    ASSERT_TRUE(plan.ok()) << plan.status();
    EXPECT_EQ(plan->function, function);
    EXPECT_GE(plan->measured.psnr_db, 38);
    const std::string applied = scratch.Join(function + ".mlpackage");
    auto report = engine::CompressModelPath(model, applied, plan->config, engine::CompressOptions{}, engine::WriteOptions{});
    ASSERT_TRUE(report.ok()) << report.status();
    EXPECT_LT(TreeBytes(applied), TreeBytes(model));
    std::vector<std::string> measured;
    const double psnr = WorstPsnrByFullRuns(model, applied, function, o.study.samples, o.study.seed, &measured);
    EXPECT_EQ(plan->measured_outputs, measured);
    EXPECT_NE(std::find(measured.begin(), measured.end(), "state:cache"), measured.end());
    EXPECT_NEAR(plan->measured.psnr_db, psnr, 1e-6) << "the plan's measurement is that of full runs";
  }
}

}  // namespace
}  // namespace coremlz::plan
