// The HTML report: what it contains, that it is safe and self-contained, and
// - in headless Chromium, when installed - that it renders to a real page.
#include "clients/html_report.h"

#include <zlib.h>

#include <cstring>
#include <map>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "gtest/gtest.h"
#include "tests/testing/process.h"
#include "tests/testing/test_env.h"

namespace coremlz::cli {
namespace {

using coremlz::testing::BinaryPath;
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

TEST(HtmlReportTest, NamesAreEscapedAndNothingIsFetched) {
  const std::string html = RenderReportHtml(SampleReport(), {"a\"<b>.mlpackage", "", ""});
  EXPECT_EQ(html.find("<script"), std::string::npos);
  EXPECT_NE(html.find("conv_&lt;script&gt;alert(1)&lt;/script&gt;_weight"), std::string::npos);
  EXPECT_NE(html.find("a&quot;&lt;b&gt;.mlpackage"), std::string::npos);
  for (const char* external : {"http://", "https://", " src=", "<link", "@import", "url("}) {
    EXPECT_EQ(html.find(external), std::string::npos) << external;
  }
}

// Decodes an 8-bit RGB/RGBA, non-interlaced PNG (what Chromium writes) and
// returns how many distinct colours it has (a blank page has one or two) and
// the most frequent one (the page background, which proves the decoding).
int DistinctColors(const std::string& png, std::string* why, uint32_t* most_common) {
  if (png.size() < 33 || png.compare(1, 3, "PNG") != 0) return *why = "not a PNG", -1;
  auto be32 = [&](size_t p) {
    return (uint32_t{static_cast<uint8_t>(png[p])} << 24) | (uint32_t{static_cast<uint8_t>(png[p + 1])} << 16) |
           (uint32_t{static_cast<uint8_t>(png[p + 2])} << 8) | uint32_t{static_cast<uint8_t>(png[p + 3])};
  };
  const uint32_t width = be32(16), height = be32(20);
  const int depth = png[24], color = png[25], interlace = png[28];
  if (depth != 8 || (color != 2 && color != 6) || interlace != 0) return *why = "unexpected PNG format", -1;
  const size_t channels = color == 6 ? 4 : 3;
  std::string idat;
  for (size_t p = 8; p + 8 <= png.size();) {
    const uint32_t len = be32(p);
    if (p + 12 + len > png.size()) break;
    if (png.compare(p + 4, 4, "IDAT") == 0) idat.append(png, p + 8, len);
    p += 12 + len;
  }
  const size_t stride = width * channels;
  std::string raw((stride + 1) * height, '\0');
  uLongf raw_len = raw.size();
  if (uncompress(reinterpret_cast<Bytef*>(raw.data()), &raw_len, reinterpret_cast<const Bytef*>(idat.data()),
                 idat.size()) != Z_OK) {
    return *why = "inflate failed", -1;
  }
  // Undo the per-row filters (PNG spec: None, Sub, Up, Average, Paeth).
  std::vector<uint8_t> prev(stride, 0), cur(stride);
  std::map<uint32_t, uint64_t> colors;
  for (uint32_t y = 0; y < height; ++y) {
    const uint8_t filter = static_cast<uint8_t>(raw[y * (stride + 1)]);
    const auto* in = reinterpret_cast<const uint8_t*>(raw.data()) + y * (stride + 1) + 1;
    for (size_t x = 0; x < stride; ++x) {
      const int a = x >= channels ? cur[x - channels] : 0, b = prev[x], c = x >= channels ? prev[x - channels] : 0;
      int pred = 0;
      switch (filter) {
        case 1: pred = a; break;
        case 2: pred = b; break;
        case 3: pred = (a + b) / 2; break;
        case 4: {
          const int p = a + b - c, pa = std::abs(p - a), pb = std::abs(p - b), pc = std::abs(p - c);
          pred = (pa <= pb && pa <= pc) ? a : (pb <= pc ? b : c);
          break;
        }
        default: break;
      }
      cur[x] = static_cast<uint8_t>(in[x] + pred);
    }
    for (size_t x = 0; x < stride; x += channels) ++colors[(cur[x] << 16) | (cur[x + 1] << 8) | cur[x + 2]];
    prev.swap(cur);
  }
  uint64_t best = 0;
  for (const auto& [rgb, n] : colors) {
    if (n > best) best = n, *most_common = rgb;
  }
  return static_cast<int>(colors.size());
}

TEST(HtmlReportTest, RendersInHeadlessChromium) {
  std::string chromium;
  for (const char* p : {"/usr/bin/chromium", "/usr/bin/chromium-browser"}) {
    if (PathExists(p)) chromium = p;
  }
  if (chromium.empty()) GTEST_SKIP() << "chromium is not installed (scripts/install-deps.sh installs it)";
  ScratchDir scratch;
  const std::string model = scratch.Join("vad.mlpackage");
  coremlz::testing::CopyTree(SourceDir() + "/models/silero_vad/silero-vad-unified-v6.0.0.mlpackage", model);
  const std::string page = scratch.Join("report.html");
  auto run = RunProgram({BinaryPath("clients/coremlz"), "compress", model, "-o", scratch.Join("out.mlpackage"),
                         "--palettize", "4", "--quiet", "--html", page});
  ASSERT_EQ(run.exit_code, 0) << run.err;

  const std::vector<std::string> common = {chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                                           "--no-first-run", "--user-data-dir=" + scratch.Join("profile")};
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
