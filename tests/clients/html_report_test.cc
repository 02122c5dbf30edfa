// The HTML report: what it contains, that it is safe and self-contained, and
// - in headless Chromium, when installed - that it renders to a real page.
#include "clients/html_report.h"

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
using coremlz::testing::HeadlessChromium;
using coremlz::testing::RunProgram;
using coremlz::testing::ScratchDir;
using coremlz::testing::SourceDir;

engine::CompressionReport SampleReport() {
  engine::CompressionReport r;
  r.model_kind = "mlprogram";
  r.spec_version_before = r.spec_version_after = 7;
  r.target = "iOS16";
  r.weight_bytes_before = 4 << 20;
  r.weight_bytes_after = 1 << 20;
  r.fp16_bytes = 4 << 20;
  r.model_bytes_before = (4 << 20) + 1000;
  r.model_bytes_after = (1 << 20) + 1000;
  r.weights_compressed = 2;
  r.weights_skipped = 1;
  for (int i = 0; i < 2; ++i) {
    engine::WeightReport w;
    w.name = i == 0 ? "conv_<script>alert(1)</script>_weight" : "linear_weight";
    w.technique = "palettize";
    w.params = "mode=kmeans nbits=4";
    w.shape = {64, 64};
    w.bytes_before = 8192;
    w.bytes_after = 2048;
    w.error.snr_db = i == 0 ? 8.5 : 35.0;
    w.error.psnr_db = 40;
    r.weights.push_back(w);
  }
  engine::WeightReport skipped;
  skipped.name = "tiny_bias";
  skipped.technique = "none";
  skipped.skipped_reason = "16 elements <= weight_threshold 2048";
  r.weights.push_back(skipped);
  r.warnings.push_back("op_name_configs key \"conv1_weigth\" matches no weight & no op");
  return r;
}

TEST(HtmlReportTest, HoldsTotalsWeightsWarningsAndConfig) {
  const std::string html = RenderReportHtml(SampleReport(), {"in.mlpackage", "out.mlpackage", "global_config:\n  nbits: 4\n"});
  EXPECT_TRUE(absl::StartsWith(html, "<!DOCTYPE html>"));
  EXPECT_NE(html.find("4.00x"), std::string::npos) << "ratio vs original";
  EXPECT_NE(html.find("linear_weight"), std::string::npos);
  EXPECT_NE(html.find("tiny_bias"), std::string::npos);
  EXPECT_NE(html.find("16 elements &lt;= weight_threshold 2048"), std::string::npos);
  EXPECT_NE(html.find("conv1_weigth&quot; matches no weight &amp; no op"), std::string::npos);
  EXPECT_NE(html.find("nbits: 4"), std::string::npos);
  // One row per compressed weight, each with its two bars.
  size_t rows = 0;
  for (size_t p = html.find("<tr class=\"weight\">"); p != std::string::npos; p = html.find("<tr class=\"weight\">", p + 1)) ++rows;
  EXPECT_EQ(rows, 2u);
  // A damaged weight is drawn red, a good one green.
  EXPECT_NE(html.find("#c62828"), std::string::npos);
  EXPECT_NE(html.find("#2e7d32"), std::string::npos);
}

// A multifunction package's weights name the functions that read them; a
// single-function model's page has no such column.
TEST(HtmlReportTest, MultifunctionWeightsNameTheirFunctions) {
  engine::CompressionReport r = SampleReport();
  EXPECT_EQ(RenderReportHtml(r, {"in.mlpackage", "", ""}).find("<th>functions</th>"), std::string::npos);
  r.weights[0].function = "decode";
  r.weights[0].functions = {"decode", "prefill"};
  r.weights[1].function = "prefill";
  r.weights[1].functions = {"prefill"};
  for (int i = 0; i < 6; ++i) r.weights[2].functions.push_back(absl::StrCat("f", i));
  const std::string html = RenderReportHtml(r, {"in.mlpackage", "", ""});
  EXPECT_NE(html.find("<th>functions</th>"), std::string::npos);
  EXPECT_NE(html.find(">decode, prefill</td>"), std::string::npos) << html;
  EXPECT_NE(html.find(">prefill</td>"), std::string::npos);
  // Many functions: a few named, the rest counted, all in the tooltip.
  EXPECT_NE(html.find(">f0, f1, f2, f3, +2 more</td>"), std::string::npos) << html;
  EXPECT_NE(html.find("title=\"f0, f1, f2, f3, f4, f5\""), std::string::npos);
}

TEST(HtmlReportTest, NamesAreEscapedAndNothingIsFetched) {
  const std::string html = RenderReportHtml(SampleReport(), {"a\"<b>.mlpackage", "", ""});
  EXPECT_EQ(html.find("<script"), std::string::npos);
  EXPECT_NE(html.find("conv_&lt;script&gt;alert(1)&lt;/script&gt;_weight"), std::string::npos);
  EXPECT_NE(html.find("a&quot;&lt;b&gt;.mlpackage"), std::string::npos);
  for (const char* external : {"http://", "https://", " src=", "<link", "@import", "url("}) {
    EXPECT_EQ(html.find(external), std::string::npos) << external;
  }
}

TEST(HtmlReportTest, RendersInHeadlessChromium) {
  const std::string chromium = FindChromium();
  if (chromium.empty()) GTEST_SKIP() << "chromium is not installed (scripts/install-deps.sh installs it)";
  ScratchDir scratch;
  const std::string model = scratch.Join("vad.mlpackage");
  coremlz::testing::CopyTree(SourceDir() + "/models/silero_vad/silero-vad-unified-v6.0.0.mlpackage", model);
  const std::string page = scratch.Join("report.html");
  auto run = RunProgram({BinaryPath("clients/coremlz"), "compress", model, "-o", scratch.Join("out.mlpackage"),
                         "--palettize", "4", "--quiet", "--html", page});
  ASSERT_EQ(run.exit_code, 0) << run.err;

  const std::vector<std::string> common = HeadlessChromium(chromium, scratch.Join("profile"));
  // The DOM as the browser parsed it.
  std::vector<std::string> dump = common;
  dump.push_back("--dump-dom");
  dump.push_back("file://" + page);
  auto dom = RunProgram(dump, absl::Seconds(90));
  ASSERT_EQ(dom.exit_code, 0) << dom.err;
  for (const char* text : {"coremlz compression report", "Compressed weights (7)", "concat_1", "5.55x", "nbits: 4"}) {
    EXPECT_NE(dom.out.find(text), std::string::npos) << text;
  }
  // And what a person sees: a screenshot that is not blank.
  std::vector<std::string> shot = common;
  shot.push_back("--window-size=1280,1000");
  shot.push_back("--screenshot=" + scratch.Join("shot.png"));
  shot.push_back("file://" + page);
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
