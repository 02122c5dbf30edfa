// The planner on real models: against uniform 4-bit palettization at the
// same size, with a PSNR floor, through the CLI (its config must reproduce
// --apply byte for byte), and bad targets.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "engine/compress_model.h"
#include "execute/output_check.h"
#include "gtest/gtest.h"
#include "plan/planner.h"
#include "tests/testing/process.h"
#include "tests/testing/test_env.h"

namespace coremlz::plan {
namespace {

namespace fs = std::filesystem;
using testing::BinaryPath;
using testing::RunProgram;

std::string Cli() { return BinaryPath("clients/coremlz"); }
std::string Transformer() {
  return testing::ModelsDir() + "/transformer_encoder_randinit/transformer_encoder_randinit.mlpackage";
}
std::string MobileNet() { return testing::ModelsDir() + "/mobilenetv2_randinit/mobilenetv2_randinit.mlpackage"; }
// A segmenter whose only output is an arg max: planned on its scores.
std::string Mosaic() { return testing::ModelsDir() + "/mosaic_mlcommons/Mosaic.mlpackage"; }

// Few candidates and samples keep the test short without weakening it: the
// plan may still spend bits where the outputs need them.
constexpr char kCandidates[] = "palettize8,palettize6,palettize4,palettize2,keep";
constexpr int kSamples = 2;

uint64_t TreeBytes(const std::string& dir) {
  uint64_t total = 0;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (e.is_regular_file()) total += e.file_size();
  }
  return total;
}

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
  for (const auto& c : *checks) worst = std::min(worst, c.psnr_db);
  return worst;
}

PlanOptions Options(PlanTarget::Kind kind, double value) {
  PlanOptions o;
  o.target = {kind, value};
  o.candidates = *ParseCandidates(kCandidates, 2048);
  o.study.samples = kSamples;
  o.study.threads = 2;
  o.pareto_points = 6;
  return o;
}

void BeatsUniform4Bit(const std::string& model, const char* label) {
  testing::ScratchDir scratch;
  const std::string uniform = scratch.Join("u4.mlpackage");
  auto c = RunProgram({Cli(), "compress", model, "-o", uniform, "--palettize", "4", "--quiet"}, absl::Seconds(300));
  ASSERT_EQ(c.exit_code, 0) << c.err;
  const uint64_t size = TreeBytes(uniform);
  const double uniform_psnr = WorstPsnr(model, uniform);

  auto plan = MakePlan(model, Options(PlanTarget::Kind::kSize, static_cast<double>(size)));
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_LE(plan->measured.model_bytes, size);
  EXPECT_GE(plan->measured.psnr_db, uniform_psnr);
  std::printf("[%s] at uniform 4-bit's size (%llu bytes): uniform 4-bit %.2f dB, plan %.2f dB measured "
              "(%.2f predicted), gain %+.2f dB, %d trials, %.1f s\n",
              label, static_cast<unsigned long long>(size), uniform_psnr, plan->measured.psnr_db, plan->predicted.psnr_db,
              plan->measured.psnr_db - uniform_psnr, plan->trials_run, plan->seconds);
  // The report's measurement is what `compare` measures on the applied plan.
  const std::string applied = scratch.Join("plan.mlpackage");
  auto report = engine::CompressModelPath(model, applied, plan->config, engine::CompressOptions{}, engine::WriteOptions{});
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(TreeBytes(applied), plan->measured.model_bytes);
  EXPECT_DOUBLE_EQ(WorstPsnr(model, applied), plan->measured.psnr_db);
  EXPECT_FALSE(plan->pareto.empty());

  // The report's own comparison with uniform 4-bit measures the same model
  // the CLI wrote (decoded weights substituted, here a file decoded), and
  // its plan is no larger than it.
  const UniformComparison* u4 = nullptr;
  for (const UniformComparison& u : plan->uniform) {
    if (u.candidate == "palettize4") u4 = &u;
    EXPECT_LE(u.plan.predicted.model_bytes, u.uniform.predicted.model_bytes) << u.candidate;
    if (!std::isnan(u.uniform.predicted.psnr_db)) {
      EXPECT_GE(u.plan.predicted.psnr_db, u.uniform.predicted.psnr_db - 0.05) << u.candidate << ": near the optimum";
    }
  }
  EXPECT_EQ(plan->uniform.size(), 4u) << "one per compressing candidate";
  ASSERT_NE(u4, nullptr);
  EXPECT_NEAR(u4->uniform.measured_psnr_db, uniform_psnr, 1e-6);
  EXPECT_LE(u4->uniform.predicted.model_bytes, size);
  EXPECT_GE(u4->uniform.predicted.model_bytes, size - size / 100) << "container overhead is estimated, not guessed";
  EXPECT_EQ(u4->weights_kept, 0);
  EXPECT_LE(u4->alone_psnr_lo_db, u4->alone_psnr_hi_db);
  std::printf("[%s] the report: uniform 4-bit %.2f dB, plan %.2f dB within its bytes (gain %+.2f measured, %+.2f "
              "predicted; alone %.2f..%.2f dB)\n",
              label, u4->uniform.measured_psnr_db, u4->plan.measured_psnr_db,
              u4->plan.measured_psnr_db - u4->uniform.measured_psnr_db,
              u4->plan.predicted.psnr_db - u4->uniform.predicted.psnr_db, u4->alone_psnr_lo_db, u4->alone_psnr_hi_db);

  // A floor: 6 dB above uniform 4-bit, reached by spending more bytes.
  const double floor = uniform_psnr + 6;
  auto floored = MakePlan(model, Options(PlanTarget::Kind::kMinPsnr, floor));
  ASSERT_TRUE(floored.ok()) << floored.status();
  EXPECT_GE(floored->measured.psnr_db, floor);
  EXPECT_LT(floored->measured.model_bytes, TreeBytes(model));
  std::printf("[%s] --min-psnr %.2f: measured %.2f dB at %llu bytes in %d round(s)\n", label, floor,
              floored->measured.psnr_db, static_cast<unsigned long long>(floored->measured.model_bytes),
              static_cast<int>(floored->rounds.size()));
}

TEST(PlanEndToEndTest, MobileNetV2BeatsUniform4BitAtItsSize) { BeatsUniform4Bit(MobileNet(), "MobileNetV2"); }
TEST(PlanEndToEndTest, TransformerBeatsUniform4BitAtItsSize) { BeatsUniform4Bit(Transformer(), "transformer"); }
TEST(PlanEndToEndTest, MosaicBeatsUniform4BitAtItsSize) { BeatsUniform4Bit(Mosaic(), "Mosaic"); }

TEST(PlanEndToEndTest, ConfigRoundTripsToTheBytesOfApply) {
  testing::ScratchDir scratch;
  const std::string model = Transformer();
  auto p = RunProgram({Cli(), "plan", model, "--bits", "4.5", "--candidates", kCandidates, "--samples", "2",
                       "--config", scratch.Join("plan.yaml"), "--report", scratch.Join("plan.json"), "--pareto",
                       scratch.Join("pareto.svg"), "--apply", scratch.Join("applied.mlpackage")},
                      absl::Seconds(600));
  ASSERT_EQ(p.exit_code, 0) << p.out << p.err;
  EXPECT_TRUE(absl::StrContains(p.out, "measured")) << p.out;
  auto c = RunProgram({Cli(), "compress", model, "-o", scratch.Join("from-config.mlpackage"), "--config",
                       scratch.Join("plan.yaml"), "--quiet"},
                      absl::Seconds(300));
  ASSERT_EQ(c.exit_code, 0) << c.err;
  // Every file, byte for byte.
  std::vector<std::string> files;
  for (const auto& e : fs::recursive_directory_iterator(scratch.Join("applied.mlpackage"))) {
    if (e.is_regular_file()) files.push_back(fs::relative(e.path(), scratch.Join("applied.mlpackage")).string());
  }
  ASSERT_FALSE(files.empty());
  for (const std::string& f : files) {
    EXPECT_EQ(Slurp(scratch.Join("applied.mlpackage/" + f)), Slurp(scratch.Join("from-config.mlpackage/" + f))) << f;
  }
  EXPECT_EQ(TreeBytes(scratch.Join("applied.mlpackage")), TreeBytes(scratch.Join("from-config.mlpackage")));
  const std::string yaml = Slurp(scratch.Join("plan.yaml"));
  EXPECT_TRUE(absl::StrContains(yaml, "op_name_configs")) << yaml;
  EXPECT_TRUE(absl::StrContains(yaml, "config_type")) << yaml;
  const std::string json = Slurp(scratch.Join("plan.json"));
  for (const char* key : {"\"predicted\"", "\"measured\"", "\"sensitivity\"", "\"pareto\"", "\"chosen\""}) {
    EXPECT_TRUE(absl::StrContains(json, key)) << key;
  }
  const std::string svg = Slurp(scratch.Join("pareto.svg"));
  EXPECT_TRUE(absl::StartsWith(svg, "<svg")) << svg.substr(0, 100);
  EXPECT_TRUE(absl::StrContains(svg, "model size")) << "x axis label";
  EXPECT_TRUE(absl::StrContains(svg, "output PSNR")) << "y axis label";
}

// A stateful function through the CLI: planned, and the table says its
// state is measured beside its output.
TEST(PlanEndToEndTest, AStatefulFunctionIsPlannedOnItsOutputsAndState) {
  testing::ScratchDir scratch;
  const std::string model = testing::GoldenDir() + "/llm_like/llm_like_multifunction.mlpackage";
  auto p = RunProgram({Cli(), "plan", model, "--function", "prefill", "--bits", "5", "--samples", "2", "--report",
                       scratch.Join("plan.json")},
                      absl::Seconds(600));
  ASSERT_EQ(p.exit_code, 0) << p.out << p.err;
  EXPECT_TRUE(absl::StrContains(p.out, "(output PSNR: the worst over the samples of logits, state:cache)")) << p.out;
  const std::string report = Slurp(scratch.Join("plan.json"));
  EXPECT_TRUE(absl::StrContains(report, R"("function": "prefill")")) << report.substr(0, 400);
  EXPECT_TRUE(absl::StrContains(report, "state:cache")) << report.substr(0, 400);
}

TEST(PlanEndToEndTest, BadTargetsAreInvalidInput) {
  testing::ScratchDir scratch;
  const std::string model = Transformer();
  const std::vector<std::vector<std::string>> bad = {
      {"--size", "0"},         {"--size", "-5"},     {"--size", "1G"},  // above the original
      {"--size", "1K"},                                                  // below the smallest
      {"--bits", "0"},         {"--bits", "-2"},     {"--bits", "0.5"},  // below 2-bit palettization
      {"--bits", "40"},        {"--min-psnr", "-3"}, {"--min-psnr", "0"},
  };
  for (const auto& target : bad) {
    std::vector<std::string> argv = {Cli(), "plan", model, "--candidates", "palettize2,keep", "--samples", "1"};
    argv.insert(argv.end(), target.begin(), target.end());
    auto r = RunProgram(argv, absl::Seconds(300));
    EXPECT_EQ(r.exit_code, 2) << target[0] << " " << target[1] << ": " << r.err;
    EXPECT_FALSE(r.err.empty());
    EXPECT_EQ(r.out.find("trials"), std::string::npos) << "no plan is made";
  }
  auto none = RunProgram({Cli(), "plan", model});
  EXPECT_EQ(none.exit_code, 1) << none.err;
  auto two = RunProgram({Cli(), "plan", model, "--size", "1M", "--bits", "4"});
  EXPECT_EQ(two.exit_code, 1) << two.err;
}

}  // namespace
}  // namespace coremlz::plan
