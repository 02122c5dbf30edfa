#include "clients/html_report.h"

#include <algorithm>
#include <cmath>
#include <set>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "clients/html_page.h"
#include "clients/render.h"

namespace coremlz::cli {
namespace {

// Weight reconstruction SNR: below ~10 dB a weight is badly damaged, above
// ~30 dB the error is small relative to the weight's own energy.
constexpr double kGoodWeightSnrDb = 30;

// SNR on a 0..60 dB scale (exact reconstructions fill it).
std::string QualityBar(double snr_db) {
  constexpr double kWidth = 160, kMaxDb = 60;
  const double v = std::isinf(snr_db) ? kMaxDb : std::clamp(std::isnan(snr_db) ? 0.0 : snr_db, 0.0, kMaxDb);
  return absl::StrFormat(
      "<svg class=\"bar\" width=\"%d\" height=\"14\" role=\"img\" aria-label=\"SNR %s\">"
      "<rect x=\"0\" y=\"2\" width=\"%d\" height=\"10\" fill=\"#eceff1\"/>"
      "<rect x=\"0\" y=\"2\" width=\"%.1f\" height=\"10\" fill=\"%s\"/></svg>",
      static_cast<int>(kWidth), HtmlEscape(HtmlDb(snr_db)), static_cast<int>(kWidth), std::max(1.0, kWidth * v / kMaxDb),
      QualityColor(snr_db, kGoodWeightSnrDb));
}

std::string Shape(const format::Shape& s) { return absl::StrCat("[", absl::StrJoin(s, "x"), "]"); }

// The functions reading a weight of a multifunction package: a few names,
// then how many more (all of them in the cell's tooltip).
std::string FunctionsCell(const engine::WeightReport& w) {
  constexpr size_t kShown = 4;
  const std::vector<std::string> functions = FunctionsOf(w);
  std::vector<std::string> shown(functions.begin(), functions.begin() + std::min(kShown, functions.size()));
  std::string text = absl::StrJoin(shown, ", ");
  if (functions.size() > kShown) absl::StrAppend(&text, ", +", functions.size() - kShown, " more");
  return absl::StrCat("<td class=\"functions\" title=\"", HtmlEscape(absl::StrJoin(functions, ", ")), "\">",
                      HtmlEscape(text), "</td>");
}

}  // namespace

std::string RenderReportHtml(const engine::CompressionReport& r, const HtmlReportContext& context) {
  std::string html = HtmlPageStart(absl::StrCat("coremlz report: ", context.model));
  absl::StrAppend(&html, "<h1>coremlz compression report</h1><div class=\"sub\">", HtmlEscape(context.model));
  if (!context.output.empty()) absl::StrAppend(&html, " &rarr; ", HtmlEscape(context.output));
  absl::StrAppend(&html, "<br>", HtmlEscape(r.model_kind), ", specification version ", r.spec_version_before);
  if (r.spec_version_after != r.spec_version_before) absl::StrAppend(&html, " &rarr; ", r.spec_version_after);
  if (!r.target.empty()) absl::StrAppend(&html, ", target ", HtmlEscape(r.target));
  absl::StrAppend(&html, "</div>\n<div class=\"cards\">",
                  HtmlCard("weights", absl::StrCat(HumanBytes(r.weight_bytes_before), " \u2192 ", HumanBytes(r.weight_bytes_after))),
                  HtmlCard("ratio vs original", absl::StrFormat("%.2fx", r.RatioVsOriginal())),
                  HtmlCard("ratio vs fp16", absl::StrFormat("%.2fx", r.RatioVsFp16())),
                  HtmlCard("model", absl::StrCat(HumanBytes(r.model_bytes_before), " \u2192 ", HumanBytes(r.model_bytes_after))),
                  HtmlCard("weights compressed", absl::StrCat(r.weights_compressed, " of ", r.weights.size())),
                  HtmlCard("time", absl::StrFormat("%.2f s", r.seconds)), "</div>\n");

  if (!r.warnings.empty()) {
    absl::StrAppend(&html, "<h2>Warnings</h2><div class=\"warn\"><ul>");
    for (const std::string& w : r.warnings) absl::StrAppend(&html, "<li>", HtmlEscape(w), "</li>");
    absl::StrAppend(&html, "</ul></div>\n");
  }
  if (r.check_samples > 0) {
    absl::StrAppend(&html, "<h2>Outputs</h2><div class=\"sub\">", r.check_samples, " synthetic samples, ",
                    HtmlEscape(r.check_executor), "</div>");
    if (!r.check_error.empty()) {
      absl::StrAppend(&html, "<div class=\"warn\">not run: ", HtmlEscape(r.check_error), "</div>\n");
    } else {
      absl::StrAppend(&html, "<table><thead><tr><th>output</th><th>PSNR</th><th></th><th>SNR</th><th>cosine</th>"
                             "<th>top-1</th><th>top-5</th></tr></thead><tbody>\n");
      for (const engine::OutputCheck& c : r.output_checks) {
        absl::StrAppend(&html, "<tr class=\"output\"><td class=\"name\">", HtmlEscape(c.name), "</td><td class=\"num\">",
                        HtmlEscape(HtmlDb(c.psnr_db)), "</td><td>", QualityBar(c.psnr_db), "</td><td class=\"num\">",
                        HtmlEscape(HtmlDb(c.snr_db)), "</td><td class=\"num\">", absl::StrFormat("%.6f", c.cosine),
                        "</td><td class=\"num\">",
                        c.class_scores ? absl::StrFormat("%.1f%%", 100 * c.top1_agreement) : "-", "</td><td class=\"num\">",
                        c.class_scores ? absl::StrFormat("%.1f%%", 100 * c.top5_overlap) : "-", "</td></tr>\n");
      }
      absl::StrAppend(&html, "</tbody></table>\n");
    }
  }
  if (!r.validation_lines.empty()) {
    absl::StrAppend(&html, "<h2>Validation</h2><ul>");
    for (const std::string& v : r.validation_lines) absl::StrAppend(&html, "<li>", HtmlEscape(v), "</li>");
    absl::StrAppend(&html, "</ul>\n");
  }

  // A functions column only where there is more than one function.
  std::set<std::string> all_functions;
  for (const auto& w : r.weights) {
    for (const std::string& f : FunctionsOf(w)) all_functions.insert(f);
  }
  const bool with_functions = all_functions.size() > 1;
  const std::string functions_th = with_functions ? "<th>functions</th>" : "";
  std::vector<const engine::WeightReport*> compressed, left;
  uint64_t scale = 0;
  for (const auto& w : r.weights) {
    const bool done = w.skipped_reason.empty() && w.technique != "none";
    (done ? compressed : left).push_back(&w);
    if (done) scale = std::max(scale, w.bytes_before);
  }
  // Largest first: that is where the size went.
  std::stable_sort(compressed.begin(), compressed.end(),
                   [](const auto* a, const auto* b) { return a->bytes_before > b->bytes_before; });
  absl::StrAppend(&html, "<h2>Compressed weights (", compressed.size(), ")</h2>",
                  "<div class=\"legend\">size<span style=\"background:#b0bec5\"></span>before"
                  "<span style=\"background:#1e88e5\"></span>after &nbsp; SNR"
                  "<span style=\"background:#2e7d32\"></span>&ge;30 dB<span style=\"background:#7cb342\"></span>20-30"
                  "<span style=\"background:#f9a825\"></span>10-20<span style=\"background:#c62828\"></span>&lt;10</div>\n"
                  "<table><thead><tr><th>weight</th>", functions_th, "<th>technique</th><th>shape</th><th>size</th><th></th>"
                  "<th>ratio</th><th>SNR</th><th></th><th>PSNR</th><th>max abs error</th></tr></thead><tbody>\n");
  for (const auto* w : compressed) {
    const double ratio = w->bytes_after ? static_cast<double>(w->bytes_before) / w->bytes_after : 0;
    absl::StrAppend(&html, "<tr class=\"weight\"><td class=\"name\">", HtmlEscape(w->name), "</td>",
                    with_functions ? FunctionsCell(*w) : "", "<td title=\"",
                    HtmlEscape(w->params), "\">", HtmlEscape(w->technique), "<br><small>", HtmlEscape(w->params),
                    "</small></td><td>", Shape(w->shape), "</td><td class=\"num\">", HtmlEscape(HumanBytes(w->bytes_before)),
                    "<br>", HtmlEscape(HumanBytes(w->bytes_after)), "</td><td>", SizeBars(w->bytes_before, w->bytes_after, scale),
                    "</td><td class=\"num\">", absl::StrFormat("%.2fx", ratio), "</td><td class=\"num\">",
                    HtmlEscape(HtmlDb(w->error.snr_db)), "</td><td>", QualityBar(w->error.snr_db), "</td><td class=\"num\">",
                    HtmlEscape(HtmlDb(w->error.psnr_db)), "</td><td class=\"num\">",
                    absl::StrFormat("%.3g", w->error.max_abs_error), "</td></tr>\n");
  }
  absl::StrAppend(&html, "</tbody></table>\n");

  if (!left.empty()) {
    absl::StrAppend(&html, "<h2>Left as they were (", left.size(), ")</h2><details><summary>show</summary><table><thead>"
                           "<tr><th>weight</th>", functions_th, "<th>shape</th><th>size</th><th>reason</th></tr></thead><tbody>\n");
    for (const auto* w : left) {
      absl::StrAppend(&html, "<tr><td class=\"name\">", HtmlEscape(w->name), "</td>", with_functions ? FunctionsCell(*w) : "",
                      "<td>", Shape(w->shape),
                      "</td><td class=\"num\">", HtmlEscape(HumanBytes(w->bytes_before)), "</td><td>",
                      HtmlEscape(w->skipped_reason.empty() ? std::string("not selected") : w->skipped_reason),
                      "</td></tr>\n");
    }
    absl::StrAppend(&html, "</tbody></table></details>\n");
  }
  if (!context.config_yaml.empty()) {
    absl::StrAppend(&html, "<h2>Config</h2><pre>", HtmlEscape(context.config_yaml), "</pre>\n");
  }
  absl::StrAppend(&html, "<p class=\"sub\">Made by coremlz. SNR and PSNR are of each weight's decompressed values "
                         "against the original weight.</p>", HtmlPageEnd());
  return html;
}

}  // namespace coremlz::cli
