#include "clients/plan_html.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "clients/html_page.h"
#include "clients/render.h"
#include "plan/plan_outputs.h"

namespace coremlz::cli {
namespace {

// Output PSNR is against each output's peak: at 40 dB the error's rms is 1%
// of it, so that is where the colours turn green; 20 dB (10%) is red.
constexpr double kGoodOutputPsnrDb = 40;

// The candidate cells: a number over a small bar, the chosen one outlined.
constexpr char kPlanStyle[] = R"(
td.cand{white-space:nowrap;font-size:12px;text-align:right;border-left:1px solid #e8ecf1}
td.cand.chosen{outline:2px solid #1c2430;outline-offset:-2px;font-weight:600;background:#f1f4f8}
td.cand .off{color:#8a95a3}
.met{color:#2e7d32}.missed{color:#c62828}
.pareto svg{max-width:100%;height:auto;border:1px solid #dde3ea;border-radius:8px}
)";

// Output PSNR on a 0..80 dB scale (exact fills it).
std::string PsnrBar(double db) {
  constexpr double kWidth = 64, kMaxDb = 80;
  const double v = std::isinf(db) ? kMaxDb : std::clamp(std::isnan(db) ? 0.0 : db, 0.0, kMaxDb);
  return absl::StrFormat(
      "<svg class=\"bar\" width=\"%d\" height=\"8\" role=\"img\" aria-label=\"output PSNR %s\">"
      "<rect x=\"0\" y=\"1\" width=\"%d\" height=\"6\" fill=\"#eceff1\"/>"
      "<rect x=\"0\" y=\"1\" width=\"%.1f\" height=\"6\" fill=\"%s\"/></svg>",
      static_cast<int>(kWidth), HtmlEscape(HtmlDb(db)), static_cast<int>(kWidth), std::max(1.0, kWidth * v / kMaxDb),
      QualityColor(db, kGoodOutputPsnrDb));
}

// One candidate of one weight: its output PSNR when measured, else why not;
// the tooltip holds the status, bytes and weight SNR.
std::string CandidateCell(const plan::CandidateOutcome& o, const std::string& candidate, bool chosen) {
  const bool unavailable = absl::StartsWith(o.status, "unavailable");
  std::string tip = absl::StrCat(candidate, ": ", o.status);
  if (!unavailable) absl::StrAppend(&tip, ", ", HumanBytes(o.bytes), ", weight SNR ", HtmlDb(o.weight_snr_db));
  std::string body;
  if (o.measured) {
    body = absl::StrCat(HtmlEscape(HtmlDb(o.output_psnr_db)), "<br>", PsnrBar(o.output_psnr_db));
  } else {
    body = absl::StrCat("<span class=\"off\">", unavailable ? "n/a" : "pruned", "</span>");
  }
  return absl::StrCat("<td class=\"cand", chosen ? " chosen" : "", "\" title=\"", HtmlEscape(tip), "\">",
                      chosen ? "&#10003; " : "", body, "</td>");
}

std::string QuantityRow(absl::string_view label, absl::string_view how, const plan::PlanQuantities& q) {
  return absl::StrCat("<tr><td>", HtmlEscape(label), "</td><td class=\"num\">", HtmlEscape(HumanBytes(q.model_bytes)),
                      "</td><td class=\"num\">", HtmlEscape(HumanBytes(q.weight_bytes)), "</td><td class=\"num\">",
                      absl::StrFormat("%.3f", q.bits_per_weight), "</td><td class=\"num\">",
                      HtmlEscape(HtmlDb(q.psnr_db)), "</td><td><small>", HtmlEscape(how), "</small></td></tr>\n");
}

// A gain in dB: signed; "exact" for an exact plan against a lossy uniform
// compression; a dash when there is none.
std::string GainText(double db) {
  if (std::isnan(db)) return "&ndash;";
  return std::isfinite(db) ? absl::StrFormat("%+.2f dB", db) : "exact";
}

}  // namespace

std::string RenderPlanHtml(const plan::PlanResult& p, const std::string& config_yaml) {
  const std::string target = plan::DescribeTarget(p.target);
  const bool met = !p.rounds.empty() && p.rounds.back().met;
  std::string html = HtmlPageStart(absl::StrCat("coremlz plan: ", p.model), kPlanStyle);
  absl::StrAppend(&html, "<h1>coremlz plan</h1><div class=\"sub\">", HtmlEscape(p.model));
  if (!p.function.empty()) absl::StrAppend(&html, ", function ", HtmlEscape(p.function));
  absl::StrAppend(&html, "<br>target ", HtmlEscape(target), ": <b class=\"", met ? "met\">met" : "missed\">not met",
                  "</b> after ", p.rounds.size(), " round(s); ", p.samples,
                  p.samples == 1 ? " synthetic sample (seed " : " synthetic samples (seed ", p.seed, "), ", p.trials_run,
                  " trials, ", p.trials_pruned, " pruned by weight SNR</div>\n");
  absl::StrAppend(
      &html, "<div class=\"cards\">", HtmlCard("target", target), HtmlCard("target met", met ? "yes" : "no"),
      HtmlCard("model size (measured)",
               absl::StrCat(HumanBytes(p.original_model_bytes), " \u2192 ", HumanBytes(p.measured.model_bytes))),
      HtmlCard("bits per weight (measured)", absl::StrFormat("%.3f", p.measured.bits_per_weight)),
      HtmlCard("output PSNR, predicted", HtmlDb(p.predicted.psnr_db)),
      HtmlCard("output PSNR, measured", HtmlDb(p.measured.psnr_db)),
      HtmlCard("weights planned", absl::StrCat(p.weights.size())),
      HtmlCard("time", absl::StrFormat("%.1f s", p.seconds)),
      "</div>\n");

  absl::StrAppend(&html,
                  "<h2>Predicted and measured</h2><div class=\"sub\">Output PSNR is the lowest over outputs and "
                  "samples, as <code>coremlz compare</code> reports it",
                  p.measured_outputs.empty()
                      ? std::string()
                      : absl::StrCat(" (outputs: <code>", HtmlEscape(absl::StrJoin(p.measured_outputs, ", ")),
                                     "</code>; <code>state:NAME</code> is what a stateful function leaves in a state)"),
                  ". Measured: the model run by coremlz's reference CPU executor (float32), not by Core ML.</div>"
                  "<table><thead><tr><th></th><th>model size</th><th>planned weights</th><th>bits/weight</th>"
                  "<th>output PSNR</th><th>how</th></tr></thead><tbody>\n",
                  "<tr><td>original</td><td class=\"num\">", HtmlEscape(HumanBytes(p.original_model_bytes)),
                  "</td><td></td><td></td><td class=\"num\">exact</td><td></td></tr>\n",
                  QuantityRow("predicted", "per-weight trials added as independent noise powers", p.predicted),
                  QuantityRow("measured", "the plan compressed by the engine, sized on disk, run by the executor",
                              p.measured),
                  "</tbody></table>\n");
  if (p.rounds.size() > 1) {
    absl::StrAppend(&html, "<h2>Rounds</h2><table><thead><tr><th>goal</th><th>predicted</th><th>measured</th>"
                           "<th>target</th></tr></thead><tbody>\n");
    for (const plan::PlanRound& r : p.rounds) {
      absl::StrAppend(&html, "<tr><td>", HtmlEscape(r.goal), "</td><td class=\"num\">",
                      HtmlEscape(absl::StrCat(HumanBytes(r.predicted.model_bytes), ", ", HtmlDb(r.predicted.psnr_db))),
                      "</td><td class=\"num\">",
                      HtmlEscape(absl::StrCat(HumanBytes(r.measured.model_bytes), ", ", HtmlDb(r.measured.psnr_db))),
                      "</td><td class=\"", r.met ? "met\">met" : "missed\">missed", "</td></tr>\n");
    }
    absl::StrAppend(&html, "</tbody></table>\n");
  }

  // The plot is plan_outputs' own SVG, inline: one drawing for --pareto and here.
  absl::StrAppend(&html, "<h2>Pareto curve</h2><div class=\"pareto\">", plan::ParetoSvg(p), "</div>\n");

  if (!p.uniform.empty()) {
    absl::StrAppend(&html,
                    "<h2>Against uniform compression</h2><div class=\"sub\">Each candidate on every planned weight it "
                    "applies to (the rest kept), beside the allocation's optimum within the same bytes; both measured "
                    "by running the executor with the decoded weights. <em>Alone</em>: the output PSNR range of single "
                    "weights compressed by the candidate by themselves; weights alike in sensitivity leave the "
                    "allocation little to trade.</div>"
                    "<table><thead><tr><th>candidate</th><th>model size</th><th>uniform</th><th>plan</th>"
                    "<th>gain</th><th>predicted gain</th><th>alone</th></tr></thead><tbody>\n");
    for (const plan::UniformComparison& u : p.uniform) {
      const double gain = plan::UniformGainDb(u);
      absl::StrAppend(
          &html, "<tr><td><code>", HtmlEscape(u.candidate), "</code>",
          u.weights_kept ? absl::StrCat(" <small>(", u.weights_kept, " kept)</small>") : std::string(),
          "</td><td class=\"num\">", HtmlEscape(HumanBytes(u.uniform.predicted.model_bytes)), "</td><td class=\"num\">",
          HtmlEscape(HtmlDb(u.uniform.measured_psnr_db)), "</td><td class=\"num\">",
          HtmlEscape(HtmlDb(u.plan.measured_psnr_db)), "</td><td class=\"num\">",
          GainText(gain), "</td><td class=\"num\">", GainText(plan::PredictedUniformGainDb(u)),
          "</td><td class=\"num\">",
          std::isnan(u.alone_psnr_lo_db)
              ? std::string("&ndash;")
              : HtmlEscape(absl::StrCat(HtmlDb(u.alone_psnr_lo_db), " .. ", HtmlDb(u.alone_psnr_hi_db))),
          "</td></tr>\n");
    }
    absl::StrAppend(&html, "</tbody></table>\n");
  }
  for (const plan::Readmission& r : p.readmitted) {
    absl::StrAppend(&html, "<div class=\"sub\">Re-admitted <code>", HtmlEscape(r.evidence.candidate),
                    "</code>: weight SNR had pruned ", r.trials, " of its trials, but applied uniformly it measured ",
                    HtmlEscape(HtmlDb(r.evidence.uniform.measured_psnr_db)),
                    " where the allocation within its bytes measured ", HtmlEscape(HtmlDb(r.evidence.plan.measured_psnr_db)),
                    "; those trials ran and the plan was solved again.</div>\n");
  }

  std::vector<const plan::WeightPlan*> weights;
  uint64_t scale = 0;
  for (const plan::WeightPlan& w : p.weights) {
    weights.push_back(&w);
    scale = std::max(scale, w.bytes_before);
  }
  // Largest first, as in the compression report: that is where the size went.
  std::stable_sort(weights.begin(), weights.end(),
                   [](const auto* a, const auto* b) { return a->bytes_before > b->bytes_before; });
  absl::StrAppend(&html, "<h2>Weights (", weights.size(), ")</h2>",
                  "<div class=\"sub\">Per candidate: the measured output PSNR with that weight alone compressed; "
                  "&#10003; marks the plan's choice. Hover a cell for its bytes and weight SNR.</div>"
                  "<div class=\"legend\">size<span style=\"background:#b0bec5\"></span>before"
                  "<span style=\"background:#1e88e5\"></span>after &nbsp; output PSNR"
                  "<span style=\"background:#2e7d32\"></span>&ge;40 dB<span style=\"background:#7cb342\"></span>30-40"
                  "<span style=\"background:#f9a825\"></span>20-30"
                  "<span style=\"background:#c62828\"></span>&lt;20</div>\n"
                  "<table><thead><tr><th>weight</th><th>elements</th><th>chosen</th><th>size</th><th></th>");
  for (const std::string& c : p.candidates) absl::StrAppend(&html, "<th>", HtmlEscape(c), "</th>");
  absl::StrAppend(&html, "</tr></thead><tbody>\n");
  for (const plan::WeightPlan* w : weights) {
    const bool has_choice = w->chosen >= 0 && w->chosen < static_cast<int>(w->outcomes.size());
    const uint64_t after = has_choice ? w->outcomes[w->chosen].bytes : w->bytes_before;
    absl::StrAppend(&html, "<tr class=\"weight\"><td class=\"name\">", HtmlEscape(w->name), "</td><td class=\"num\">",
                    w->elements, "</td><td>", has_choice ? HtmlEscape(p.candidates[w->chosen]) : "-",
                    "</td><td class=\"num\" title=\"", w->bytes_before, " B \u2192 ", after, " B\">",
                    HtmlEscape(HumanBytes(w->bytes_before)), "<br>",
                    HtmlEscape(HumanBytes(after)), "</td><td>", SizeBars(w->bytes_before, after, scale), "</td>");
    for (size_t c = 0; c < w->outcomes.size() && c < p.candidates.size(); ++c) {
      absl::StrAppend(&html, CandidateCell(w->outcomes[c], p.candidates[c], static_cast<int>(c) == w->chosen));
    }
    absl::StrAppend(&html, "</tr>\n");
  }
  absl::StrAppend(&html, "</tbody></table>\n");
  if (!p.dropped_candidates.empty()) {
    absl::StrAppend(&html, "<div class=\"sub\">Not tried (the model's target cannot hold them): ",
                    HtmlEscape(absl::StrJoin(p.dropped_candidates, ", ")), "</div>\n");
  }
  if (!p.left_out_weights.empty()) {
    absl::StrAppend(&html, "<div class=\"sub\">Kept as they are (the executor cannot measure them): ",
                    HtmlEscape(absl::StrJoin(p.left_out_weights, "; ")), "</div>\n");
  }
  if (!config_yaml.empty()) absl::StrAppend(&html, "<h2>Config</h2><pre>", HtmlEscape(config_yaml), "</pre>\n");
  absl::StrAppend(&html, "<p class=\"sub\">Made by coremlz plan. Sizes are bytes on disk (MB = 10^6 bytes).</p>",
                  HtmlPageEnd());
  return html;
}

}  // namespace coremlz::cli
