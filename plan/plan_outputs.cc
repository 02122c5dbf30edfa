#include "plan/plan_outputs.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/json_writer.h"
#include "engine/config_parse.h"
#include "yaml-cpp/yaml.h"

namespace coremlz::plan {
namespace {

// JSON has no infinity: an exact output (no error at all) is null.
void Db(JsonWriter& w, double db) {
  if (std::isfinite(db)) {
    w.Double(db);
  } else {
    w.Null();
  }
}

void Quantities(JsonWriter& w, const PlanQuantities& q, bool with_bytes) {
  w.BeginObject();
  if (with_bytes) {
    w.Key("model_bytes").Uint(q.model_bytes);
    w.Key("weight_bytes").Uint(q.weight_bytes);
    w.Key("bits_per_weight").Double(q.bits_per_weight);
  }
  w.Key("output_psnr_db");
  Db(w, q.psnr_db);
  w.EndObject();
}

// A point measured with decoded weights (a Pareto point, or either side of
// a uniform comparison): its predicted size, the predicted PSNR where there
// is one (NaN: not predicted) and the measured PSNR.
void Point(JsonWriter& w, const ParetoPoint& p) {
  w.BeginObject();
  w.Key("predicted_model_bytes").Uint(p.predicted.model_bytes);
  w.Key("weight_bytes").Uint(p.predicted.weight_bytes);
  w.Key("bits_per_weight").Double(p.predicted.bits_per_weight);
  if (!std::isnan(p.predicted.psnr_db)) {
    w.Key("predicted_output_psnr_db");
    Db(w, p.predicted.psnr_db);
  }
  w.Key("measured_output_psnr_db");
  Db(w, p.measured_psnr_db);
  w.EndObject();
}

std::string Xml(absl::string_view s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '&': out += "&amp;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

// One uniform comparison: both points, the gains and the alone range.
void Comparison(JsonWriter& w, const UniformComparison& u) {
  w.BeginObject();
  w.Key("candidate").String(u.candidate);
  w.Key("weights_kept").Int(u.weights_kept);
  w.Key("uniform");
  Point(w, u.uniform);
  w.Key("plan");
  Point(w, u.plan);
  w.Key("measured_gain_db");
  Db(w, UniformGainDb(u));
  if (const double g = PredictedUniformGainDb(u); !std::isnan(g)) {
    w.Key("predicted_gain_db");
    Db(w, g);
  }
  if (!std::isnan(u.alone_psnr_lo_db)) {
    w.Key("alone_output_psnr_db").BeginArray();
    Db(w, u.alone_psnr_lo_db);
    Db(w, u.alone_psnr_hi_db);
    w.EndArray();
  }
  w.EndObject();
}

}  // namespace

absl::StatusOr<std::string> PlanConfigYaml(const engine::CompressionConfig& config) {
  if (config.passes.size() != 1) return absl::InvalidArgumentError("a plan's config has exactly one pass");
  // The engine's writer emits the "passes" form; coremltools' own form is
  // that one pass on its own.
  try {
    YAML::Node passes = YAML::Load(engine::CompressionConfigToYaml(config));
    YAML::Emitter out;
    out.SetDoublePrecision(17);
    out << passes["passes"][0];
    return absl::StrCat("# coremlz plan: one config per weight (op_name_configs; null keeps a weight as it is)\n",
                        out.c_str(), "\n");
  } catch (const YAML::Exception& e) {
    return absl::InternalError(absl::StrCat("writing the plan's config: ", e.what()));
  }
}

std::string PlanReportJson(const PlanResult& plan) {
  JsonWriter w;
  w.BeginObject();
  w.Key("model").String(plan.model);
  w.Key("function").String(plan.function);
  w.Key("target").String(DescribeTarget(plan.target));
  w.Key("executor").String("coremlz reference CPU executor (float32), not Core ML");
  w.Key("samples").Int(plan.samples);
  w.Key("seed").Uint(plan.seed);
  w.Key("psnr_definition")
      .String("the lowest over outputs and samples of 10 log10(max(reference^2) / mse), as coremlz compare reports");
  w.Key("measured_outputs").BeginArray();
  for (const std::string& o : plan.measured_outputs) w.String(o);
  w.EndArray();
  w.Key("candidates").BeginArray();
  for (const std::string& c : plan.candidates) w.String(c);
  w.EndArray();
  w.Key("dropped_candidates").BeginArray();
  for (const std::string& c : plan.dropped_candidates) w.String(c);
  w.EndArray();
  w.Key("left_out_weights").BeginArray();
  for (const std::string& l : plan.left_out_weights) w.String(l);
  w.EndArray();
  w.Key("original_model_bytes").Uint(plan.original_model_bytes);
  w.Key("trials_run").Int(plan.trials_run);
  w.Key("trials_pruned").Int(plan.trials_pruned);
  w.Key("kept_activations").Bool(plan.kept_activations);
  w.Key("seconds").Double(plan.seconds);
  w.Key("phase_seconds").BeginObject();
  w.Key("study").Double(plan.study_seconds).Key("trials").Double(plan.trial_seconds);
  w.Key("compare").Double(plan.compare_seconds);
  w.Key("rounds").Double(plan.round_seconds).Key("pareto").Double(plan.pareto_seconds);
  w.EndObject();
  w.Key("predicted").BeginObject();
  w.Key("how").String("per-weight trials added as independent noise powers");
  w.Key("values");
  Quantities(w, plan.predicted, true);
  w.EndObject();
  w.Key("measured").BeginObject();
  w.Key("how").String("the plan compressed by the engine, sized on disk and run by the executor");
  w.Key("values");
  Quantities(w, plan.measured, true);
  w.EndObject();
  w.Key("rounds").BeginArray();
  for (const PlanRound& r : plan.rounds) {
    w.BeginObject().Key("goal").String(r.goal).Key("predicted");
    Quantities(w, r.predicted, true);
    w.Key("measured");
    Quantities(w, r.measured, true);
    w.Key("met").Bool(r.met).EndObject();
  }
  w.EndArray();
  w.Key("weights").BeginArray();
  for (const WeightPlan& wp : plan.weights) {
    w.BeginObject();
    w.Key("name").String(wp.name);
    w.Key("consumers").BeginArray();
    for (const std::string& c : wp.consumers) w.String(c);
    w.EndArray();
    w.Key("elements").Int(wp.elements);
    w.Key("bytes_before").Uint(wp.bytes_before);
    w.Key("chosen").String(wp.chosen >= 0 ? plan.candidates[wp.chosen] : "");
    w.Key("bytes").Uint(wp.chosen >= 0 ? wp.outcomes[wp.chosen].bytes : wp.bytes_before);
    w.Key("sensitivity").BeginArray();
    for (size_t c = 0; c < wp.outcomes.size(); ++c) {
      const CandidateOutcome& o = wp.outcomes[c];
      w.BeginObject().Key("candidate").String(plan.candidates[c]).Key("status").String(o.status);
      if (o.status.rfind("unavailable", 0) != 0) {
        w.Key("bytes").Uint(o.bytes).Key("weight_snr_db");
        Db(w, o.weight_snr_db);
      }
      if (o.measured) {
        w.Key("measured_output_psnr_db");
        Db(w, o.output_psnr_db);
        w.Key("mean_relative_noise").Double(o.mean_noise);
      }
      w.EndObject();
    }
    w.EndArray();
    w.EndObject();
  }
  w.EndArray();
  w.Key("pareto").BeginObject();
  w.Key("how").String(
      "the allocation's optimum at evenly spaced sizes; predicted: additive model; measured: the executor run with "
      "that point's decoded weights (the values its compressed model decodes to); model_bytes are predicted");
  w.Key("points").BeginArray();
  for (const ParetoPoint& p : plan.pareto) Point(w, p);
  w.EndArray();
  w.EndObject();
  w.Key("uniform").BeginObject();
  w.Key("how").String(
      "each compressing candidate on every planned weight it applies to (the rest kept), beside the allocation's "
      "optimum no larger than it (predicted bytes); both measured like the Pareto points; gain = plan - uniform, "
      "measured; predicted_gain_db: the same from the additive model (absent when a trial of the uniform one was "
      "pruned): what the exact allocation can gain under the measured sensitivities. alone_output_psnr_db: the "
      "lowest and highest output PSNR of one weight compressed alone by the candidate; weights alike in sensitivity "
      "leave the allocation little to gain");
  w.Key("comparisons").BeginArray();
  for (const UniformComparison& u : plan.uniform) Comparison(w, u);
  w.EndArray();
  w.EndObject();
  w.Key("readmitted").BeginObject();
  w.Key("how").String(
      "candidates whose trials weight SNR had pruned on some weights but which, applied uniformly, measured better "
      "than the allocation's optimum within their bytes: their pruned trials then ran and the allocation was solved "
      "again. evidence: that comparison, as measured before the re-admission");
  w.Key("candidates").BeginArray();
  for (const Readmission& r : plan.readmitted) {
    w.BeginObject().Key("candidate").String(r.evidence.candidate).Key("trials").Int(r.trials);
    w.Key("evidence");
    Comparison(w, r.evidence);
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
  w.EndObject();
  return w.str();
}

namespace {

double GainDb(double plan, double uniform) {
  // Both exact (nothing compressed) is no gain; an exact plan against a
  // lossy uniform is an unbounded one.
  if (std::isinf(plan) && std::isinf(uniform)) return 0;
  return plan - uniform;
}

}  // namespace

double UniformGainDb(const UniformComparison& u) { return GainDb(u.plan.measured_psnr_db, u.uniform.measured_psnr_db); }

double PredictedUniformGainDb(const UniformComparison& u) {
  return GainDb(u.plan.predicted.psnr_db, u.uniform.predicted.psnr_db);
}

std::string ParetoSvg(const PlanResult& plan) {
  const double width = 720, height = 440, left = 80, right = 30, top = 50, bottom = 60;
  // Infinite PSNR (nothing compressed) is drawn at the top of the axis.
  double x_lo = std::numeric_limits<double>::infinity(), x_hi = 0, y_lo = x_lo, y_hi = -x_lo;
  auto extend = [&](double bytes, double db) {
    x_lo = std::min(x_lo, bytes);
    x_hi = std::max(x_hi, bytes);
    if (std::isfinite(db)) {
      y_lo = std::min(y_lo, db);
      y_hi = std::max(y_hi, db);
    }
  };
  for (const ParetoPoint& p : plan.pareto) {
    extend(p.predicted.model_bytes, p.predicted.psnr_db);
    extend(p.predicted.model_bytes, p.measured_psnr_db);
  }
  for (const UniformComparison& u : plan.uniform) extend(u.uniform.predicted.model_bytes, u.uniform.measured_psnr_db);
  extend(plan.measured.model_bytes, plan.measured.psnr_db);
  if (plan.target.kind == PlanTarget::Kind::kMinPsnr) extend(x_lo, plan.target.value);
  if (!std::isfinite(y_lo)) y_lo = 0, y_hi = 100;
  if (y_hi - y_lo < 1) y_hi = y_lo + 1;
  const double pad = (y_hi - y_lo) * 0.08;
  y_lo -= pad;
  y_hi += pad;
  if (x_hi <= x_lo) x_hi = x_lo + 1;
  auto X = [&](double b) { return left + (b - x_lo) / (x_hi - x_lo) * (width - left - right); };
  auto Y = [&](double db) {
    if (!std::isfinite(db)) db = y_hi;
    return top + (y_hi - db) / (y_hi - y_lo) * (height - top - bottom);
  };
  std::string s = absl::StrFormat(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" "
      "font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
      width, height, width, height);
  absl::StrAppendFormat(&s, "<text x=\"%.0f\" y=\"24\" font-size=\"15\">%s: output PSNR vs model size</text>\n", left,
                        Xml(std::filesystem::path(plan.model).filename().string()));
  // Axes with ticks.
  absl::StrAppendFormat(&s, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"black\"/>\n", left,
                        height - bottom, width - right, height - bottom);
  absl::StrAppendFormat(&s, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"black\"/>\n", left, top, left,
                        height - bottom);
  for (int i = 0; i <= 5; ++i) {
    const double b = x_lo + (x_hi - x_lo) * i / 5, db = y_lo + (y_hi - y_lo) * i / 5;
    absl::StrAppendFormat(&s, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%.2f</text>\n", X(b),
                          height - bottom + 18, b / 1e6);
    absl::StrAppendFormat(&s, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%.1f</text>\n", left - 6, Y(db) + 4, db);
    absl::StrAppendFormat(&s, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n", left, Y(db),
                          width - right, Y(db));
  }
  absl::StrAppendFormat(&s, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">model size (MB = 10^6 bytes; predicted)</text>\n",
                        (left + width - right) / 2, height - 18);
  absl::StrAppendFormat(&s,
                        "<text transform=\"translate(20,%.1f) rotate(-90)\" text-anchor=\"middle\">output PSNR (dB, "
                        "worst output and sample)</text>\n",
                        (top + height - bottom) / 2);
  auto polyline = [&](bool measured, const char* color, const char* dash) {
    std::string pts;
    for (const ParetoPoint& p : plan.pareto) {
      absl::StrAppendFormat(&pts, "%.1f,%.1f ", X(p.predicted.model_bytes),
                            Y(measured ? p.measured_psnr_db : p.predicted.psnr_db));
    }
    absl::StrAppendFormat(&s, "<polyline points=\"%s\" fill=\"none\" stroke=\"%s\" stroke-width=\"2\" stroke-dasharray=\"%s\"/>\n",
                          pts, color, dash);
    for (const ParetoPoint& p : plan.pareto) {
      absl::StrAppendFormat(&s, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"/>\n", X(p.predicted.model_bytes),
                            Y(measured ? p.measured_psnr_db : p.predicted.psnr_db), color);
    }
  };
  polyline(false, "#999999", "5,4");
  polyline(true, "#1f5fbf", "none");
  if (plan.target.kind == PlanTarget::Kind::kMinPsnr) {
    absl::StrAppendFormat(&s, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#c33\" stroke-dasharray=\"2,3\"/>\n",
                          left, Y(plan.target.value), width - right, Y(plan.target.value));
  } else if (plan.target.kind == PlanTarget::Kind::kSize) {
    absl::StrAppendFormat(&s, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#c33\" stroke-dasharray=\"2,3\"/>\n",
                          X(plan.target.value), top, X(plan.target.value), height - bottom);
  }
  absl::StrAppendFormat(&s, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"6\" fill=\"none\" stroke=\"#c33\" stroke-width=\"2\"/>\n",
                        X(plan.measured.model_bytes), Y(plan.measured.psnr_db));
  // The uniform compressions: a cross each, named.
  for (const UniformComparison& u : plan.uniform) {
    const double x = X(u.uniform.predicted.model_bytes), y = Y(u.uniform.measured_psnr_db);
    absl::StrAppendFormat(&s,
                          "<path d=\"M%.1f %.1fl8 8m0 -8l-8 8\" stroke=\"#d9822b\" stroke-width=\"2\"/>"
                          "<text x=\"%.1f\" y=\"%.1f\" fill=\"#b5651d\" font-size=\"10\">%s</text>\n",
                          x - 4, y - 4, x + 6, y + 14, Xml(u.candidate));
  }
  // Legend.
  const double lx = width - right - 280, ly = top + 10;
  absl::StrAppendFormat(&s, "<line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\" stroke=\"#1f5fbf\" stroke-width=\"2\"/>"
                            "<text x=\"%.0f\" y=\"%.0f\">measured (executor, decoded weights)</text>\n",
                        lx, ly, lx + 24, ly, lx + 30, ly + 4);
  absl::StrAppendFormat(&s, "<line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\" stroke=\"#999\" stroke-width=\"2\" "
                            "stroke-dasharray=\"5,4\"/><text x=\"%.0f\" y=\"%.0f\">predicted (additive noise model)</text>\n",
                        lx, ly + 18, lx + 24, ly + 18, lx + 30, ly + 22);
  absl::StrAppendFormat(&s, "<circle cx=\"%.0f\" cy=\"%.0f\" r=\"6\" fill=\"none\" stroke=\"#c33\" stroke-width=\"2\"/>"
                            "<text x=\"%.0f\" y=\"%.0f\">the plan, compressed and measured</text>\n",
                        lx + 12, ly + 36, lx + 30, ly + 40);
  absl::StrAppendFormat(&s, "<path d=\"M%.0f %.0fl8 8m0 -8l-8 8\" stroke=\"#d9822b\" stroke-width=\"2\"/>"
                            "<text x=\"%.0f\" y=\"%.0f\">one candidate on every weight (measured)</text>\n",
                        lx + 8, ly + 50, lx + 30, ly + 58);
  absl::StrAppendFormat(&s, "<text x=\"%.0f\" y=\"%.0f\" fill=\"#c33\">target: %s</text>\n", lx + 30, ly + 76,
                        Xml(DescribeTarget(plan.target)));
  s += "</svg>\n";
  return s;
}

}  // namespace coremlz::plan
