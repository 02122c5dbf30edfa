// `coremlz plan --html`: the page holds the plan (target, predicted and
// measured PSNR, every candidate per weight, the Pareto plot, the config),
// escapes what the model names, fetches nothing, refuses unsafe paths and -
// in headless Chromium, when installed - renders to a real page.
#include "clients/plan_html.h"

#include <cmath>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "gtest/gtest.h"
#include "tests/clients/headless_chromium.h"
#include "tests/testing/process.h"
#include "tests/testing/test_env.h"

namespace coremlz::cli {
namespace {

using coremlz::testing::BinaryPath;
using coremlz::testing::DistinctColors;
using coremlz::testing::FindChromium;
using coremlz::testing::GoldenDir;
using coremlz::testing::HeadlessChromium;
using coremlz::testing::RunProgram;
using coremlz::testing::ScratchDir;

size_t Count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t p = text.find(what); p != std::string::npos; p = text.find(what, p + 1)) ++n;
  return n;
}

void ExpectSelfContained(const std::string& html) {
  EXPECT_TRUE(absl::StartsWith(html, "<!DOCTYPE html>"));
  EXPECT_EQ(html.find("<script"), std::string::npos);
  // The inline SVG names its namespace (an identifier, never fetched); nothing
  // is loaded from anywhere.
  for (const char* external : {"src=", "href=", "<link", "@import", "url(", "<img", "<iframe"}) {
    EXPECT_EQ(html.find(external), std::string::npos) << external;
  }
}

// A plan as the planner makes it, with names no page should trust.
plan::PlanResult SamplePlan() {
  plan::PlanResult p;
  p.model = "models/a&b<i>.mlpackage";
  p.target = {plan::PlanTarget::Kind::kMinPsnr, 35};
  p.candidates = {"palettize4", "int8", "keep"};
  p.samples = 2;
  p.original_model_bytes = 300000;
  p.measured_outputs = {"logits<b>", "state:cache"};
  for (int i = 0; i < 2; ++i) {
    plan::WeightPlan w;
    w.name = i == 0 ? "conv_<script>alert(1)</script>_weight&x" : "linear_weight";
    w.elements = 65536;
    w.bytes_before = 131072;
    plan::CandidateOutcome pal{"measured", 32768, 18.0, true, i == 0 ? 22.0 : 48.0, 0.001};
    plan::CandidateOutcome q8{"measured", 65536, 40.0, true, 61.0, 0.0001};
    plan::CandidateOutcome keep{"pruned: int8 is smaller and closer", 131072, INFINITY, false, 0, 0};
    w.outcomes = {pal, q8, keep};
    w.chosen = i == 0 ? 1 : 0;
    p.weights.push_back(w);
  }
  plan::PlanRound round;
  round.goal = "predicted mean-noise PSNR >= 35.00 dB";
  round.predicted = {110000, 98304, 6.0, 36.5};
  round.measured = {110500, 98304, 6.0, 35.8};
  round.met = true;
  p.rounds = {round};
  p.predicted = round.predicted;
  p.measured = round.measured;
  p.pareto = {{{100000, 65536, 4.0, 21.0}, 21.5}, {{140000, 131072, 8.0, 47.0}, 46.0}};
  plan::UniformComparison u;
  u.candidate = "palettize<4>";
  u.weights_kept = 1;
  u.uniform = {{100000, 65536, 4.0, 19.0}, 18.25};
  u.plan = {{99990, 65536, 4.0, 22.0}, 23.5};
  u.alone_psnr_lo_db = 22.0;
  u.alone_psnr_hi_db = 48.0;
  plan::UniformComparison pruned = u;
  pruned.candidate = "int8";
  pruned.uniform.predicted.psnr_db = NAN;  // a trial of it was pruned: no prediction
  pruned.alone_psnr_lo_db = pruned.alone_psnr_hi_db = NAN;
  p.uniform = {u, pruned};
  plan::Readmission again;
  again.evidence = pruned;
  again.evidence.candidate = "int<8>";
  again.evidence.uniform.measured_psnr_db = 30.5;
  again.evidence.plan.measured_psnr_db = 29.5;
  again.trials = 3;
  p.readmitted = {again};
  return p;
}

TEST(PlanHtmlTest, HoldsTargetPsnrsCandidatesAndConfig) {
  const std::string html = RenderPlanHtml(SamplePlan(), "config_type: OpPalettizerConfig\n");
  ExpectSelfContained(html);
  EXPECT_NE(html.find("output PSNR &gt;= 35"), std::string::npos) << "the target";
  EXPECT_NE(html.find("class=\"met\">met"), std::string::npos);
  EXPECT_NE(html.find("output PSNR, predicted"), std::string::npos);
  EXPECT_NE(html.find("36.5 dB"), std::string::npos) << "predicted";
  EXPECT_NE(html.find("35.8 dB"), std::string::npos) << "measured";
  EXPECT_NE(html.find("reference CPU executor"), std::string::npos);
  EXPECT_NE(html.find("not by Core ML"), std::string::npos);
  EXPECT_NE(html.find("(outputs: <code>logits&lt;b&gt;, state:cache</code>"), std::string::npos)
      << "what the PSNR covers, escaped";
  EXPECT_NE(html.find("<svg xmlns="), std::string::npos) << "the Pareto plot, inline";
  EXPECT_NE(html.find("config_type: OpPalettizerConfig"), std::string::npos);
  // One row per weight, one cell per candidate, one chosen per row.
  EXPECT_EQ(Count(html, "<tr class=\"weight\">"), 2u);
  EXPECT_EQ(Count(html, "<td class=\"cand"), 6u);
  EXPECT_EQ(Count(html, "<td class=\"cand chosen\""), 2u);
  EXPECT_EQ(Count(html, ">pruned<"), 2u);
  EXPECT_NE(html.find("61.0 dB"), std::string::npos);
  // The uniform comparison: the measured gain (23.5 - 18.25), the predicted
  // one (22 - 19), and dashes where there is no prediction or trial.
  EXPECT_NE(html.find("Against uniform compression"), std::string::npos);
  EXPECT_NE(html.find("<code>palettize&lt;4&gt;</code> <small>(1 kept)</small>"), std::string::npos);
  EXPECT_EQ(Count(html, "+5.25 dB"), 2u) << "each row's measured gain";
  EXPECT_EQ(Count(html, "+3.00 dB"), 1u) << "the predicted gain, only where predicted";
  EXPECT_NE(html.find("22.0 dB .. 48.0 dB"), std::string::npos) << "alone range";
  EXPECT_EQ(Count(html, "&ndash;"), 2u) << "int8: no prediction, no trial";
  // A re-admission names the candidate (escaped) and its evidence.
  EXPECT_NE(html.find("Re-admitted <code>int&lt;8&gt;</code>: weight SNR had pruned 3 of its trials"),
            std::string::npos);
  EXPECT_NE(html.find("measured 30.5 dB where the allocation within its bytes measured 29.5 dB"), std::string::npos);
  // A damaged output is drawn red, a good one green.
  EXPECT_NE(html.find("#c62828"), std::string::npos);
  EXPECT_NE(html.find("#2e7d32"), std::string::npos);
}

TEST(PlanHtmlTest, ModelControlledNamesAreEscaped) {
  const std::string html = RenderPlanHtml(SamplePlan(), "op_name_configs:\n  \"<b>\": null\n");
  EXPECT_EQ(html.find("<script"), std::string::npos);
  EXPECT_EQ(html.find("<i>"), std::string::npos);
  EXPECT_NE(html.find("conv_&lt;script&gt;alert(1)&lt;/script&gt;_weight&amp;x"), std::string::npos);
  EXPECT_NE(html.find("models/a&amp;b&lt;i&gt;.mlpackage"), std::string::npos);
  EXPECT_NE(html.find("&quot;&lt;b&gt;&quot;: null"), std::string::npos);
}

// The golden iOS18 model: a conv and a linear weight, small enough for a
// one-sample plan in seconds.
std::string GoldenModel() { return GoldenDir() + "/ios18_original.mlpackage"; }
std::vector<std::string> PlanArgs(const std::string& html) {
  return {BinaryPath("clients/coremlz"), "plan", GoldenModel(), "--bits", "6", "--candidates",
          "palettize8,palettize4,palettize2,keep", "--samples", "1", "--threads", "2", "--html", html};
}

TEST(PlanHtmlTest, RefusesToWriteOverTheModel) {
  ScratchDir scratch;
  const std::string model = scratch.Join("in.mlpackage");
  coremlz::testing::CopyTree(GoldenModel(), model);
  std::vector<std::string> argv = PlanArgs(model);
  argv[2] = model;
  auto run = RunProgram(argv);
  EXPECT_NE(run.exit_code, 0);
  EXPECT_TRUE(PathExists(model + "/Manifest.json")) << "the input is untouched";
  argv = PlanArgs(scratch.Join("out.mlpackage/page.html"));
  argv[2] = model;
  argv.insert(argv.end(), {"--apply", scratch.Join("out.mlpackage")});
  run = RunProgram(argv);
  EXPECT_NE(run.exit_code, 0) << "the page may not go inside the applied model";
  EXPECT_FALSE(PathExists(scratch.Join("out.mlpackage")));
}

TEST(PlanHtmlTest, PlanCommandWritesAPageThatRenders) {
  ScratchDir scratch;
  const std::string page = scratch.Join("plan.html");
  auto run = RunProgram(PlanArgs(page), absl::Seconds(120));
  ASSERT_EQ(run.exit_code, 0) << run.out << run.err;
  auto html = ReadFile(page, 16 << 20);
  ASSERT_TRUE(html.ok()) << html.status();
  ExpectSelfContained(*html);
  for (const char* text : {"6 bits per weight", "conv_weight", "fc_weight", "palettize2", "output PSNR, measured",
                           "op_name_configs"}) {
    EXPECT_NE(html->find(text), std::string::npos) << text;
  }
  EXPECT_EQ(Count(*html, "<tr class=\"weight\">"), 2u);

  const std::string chromium = FindChromium();
  if (chromium.empty()) GTEST_SKIP() << "chromium is not installed (scripts/install-deps.sh installs it)";
  const std::vector<std::string> common = HeadlessChromium(chromium, scratch.Join("profile"));
  std::vector<std::string> dump = common;
  dump.insert(dump.end(), {"--dump-dom", "file://" + page});
  auto dom = RunProgram(dump, absl::Seconds(90));
  ASSERT_EQ(dom.exit_code, 0) << dom.err;
  for (const char* text : {"coremlz plan", "Pareto curve", "conv_weight", "output PSNR vs model size"}) {
    EXPECT_NE(dom.out.find(text), std::string::npos) << text;
  }
  std::vector<std::string> shot = common;
  shot.insert(shot.end(), {"--window-size=1280,1000", "--screenshot=" + scratch.Join("shot.png"), "file://" + page});
  auto taken = RunProgram(shot, absl::Seconds(90));
  ASSERT_EQ(taken.exit_code, 0) << taken.err;
  auto png = ReadFile(scratch.Join("shot.png"), 64 << 20);
  ASSERT_TRUE(png.ok()) << png.status();
  std::string why;
  uint32_t background = 0;
  const int colors = DistinctColors(*png, &why, &background);
  ASSERT_GE(colors, 0) << why;
  EXPECT_EQ(background, 0xffffffu) << "the page's white background dominates";
  EXPECT_GT(colors, 20) << "the screenshot is (nearly) blank";
}

}  // namespace
}  // namespace coremlz::cli
