#include "engine/neural_network_compressor.h"

#include <cmath>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "compress/metrics.h"
#include "compress/palettize.h"
#include "engine/config_usage.h"
#include "format/fp16.h"
#include "format/neural_network_weights.h"
#include "format/nn_bit_packing.h"

namespace coremlz::engine {
namespace spec = CoreML::Specification;
using format::NeuralNetworkWeight;
using format::WeightStorage;

namespace {

// `source` says where the config came from, for messages. As for an ML
// Program, the weight's own name ("layer.field", as the report names it)
// comes first, then the name of the layer that reads it, its type, the
// global config: the planner sets weights one by one.
std::optional<OpConfig> ResolveLayer(const OptimizationConfig& oc, const NeuralNetworkWeight& w, size_t pass,
                                     size_t passes, ConfigUsage* usage, std::string* source) {
  const std::string pass_note = passes > 1 ? absl::StrCat(" (pass ", pass + 1, ")") : "";
  const std::string weight = w.layer + "." + w.field;
  if (auto it = oc.op_name_configs.find(weight); it != oc.op_name_configs.end()) {
    usage->MatchedName(pass, weight);
    *source = absl::StrCat("op_name_configs[\"", weight, "\"]", pass_note);
    return it->second;
  }
  if (auto it = oc.op_name_configs.find(w.layer); it != oc.op_name_configs.end()) {
    usage->MatchedName(pass, w.layer);
    *source = absl::StrCat("op_name_configs[\"", w.layer, "\"]", pass_note);
    return it->second;
  }
  if (auto it = oc.op_type_configs.find(w.layer_type); it != oc.op_type_configs.end()) {
    usage->MatchedType(pass, w.layer_type);
    *source = absl::StrCat("op_type_configs[\"", w.layer_type, "\"]", pass_note);
    return it->second;
  }
  *source = absl::StrCat("global_config", pass_note);
  return oc.global;
}

void ClearValues(spec::WeightParams* wp) {
  wp->clear_floatvalue();
  wp->clear_float16value();
  wp->clear_rawvalue();
  wp->clear_int8rawvalue();
  wp->clear_quantization();
}

// n-bit unsigned codes with w = scale * q + bias, per output channel or per
// tensor, computed in double as Core ML tools do.
absl::Status LinearQuantizeLayer(const NeuralNetworkWeight& w, const std::vector<float>& values,
                                 const LinearQuantizerConfig& c) {
  if (c.granularity == Granularity::kPerBlock) {
    // Per-block scales are iOS18 ML Program ops: not expressible here.
    return absl::FailedPreconditionError(absl::StrCat("layer \"", w.layer, "\": NeuralNetwork weights support "
                                                      "per_tensor or per_channel quantization, not per_block"));
  }
  const bool per_channel = c.granularity == Granularity::kPerChannel && w.shape.size() >= 2;
  const int64_t channels = per_channel ? w.shape[w.output_axis] : 1;
  int64_t inner = 1;
  for (size_t a = w.output_axis + 1; a < w.shape.size(); ++a) inner *= w.shape[a];
  auto channel_of = [&](size_t i) { return per_channel ? static_cast<int64_t>((i / inner) % channels) : 0; };
  const int levels = (1 << c.bits) - 1;
  std::vector<double> lo(channels, INFINITY), hi(channels, -INFINITY);
  for (size_t i = 0; i < values.size(); ++i) {
    const int64_t ch = channel_of(i);
    lo[ch] = std::min<double>(lo[ch], values[i]);
    hi[ch] = std::max<double>(hi[ch], values[i]);
  }
  std::vector<float> scale(channels), bias(channels);
  const double half = static_cast<double>(1 << (c.bits - 1));
  for (int64_t ch = 0; ch < channels; ++ch) {
    if (c.symmetric) {
      // Codes 1..2^n-1 around 2^(n-1): w = scale * (q - 2^(n-1)).
      const double r = std::max(std::fabs(lo[ch]), std::fabs(hi[ch]));
      scale[ch] = static_cast<float>(r / (half - 1));
      bias[ch] = static_cast<float>(-half * scale[ch]);
    } else {
      scale[ch] = static_cast<float>((hi[ch] - lo[ch]) / levels);
      bias[ch] = static_cast<float>(lo[ch]);
    }
  }
  std::vector<uint8_t> codes(values.size());
  for (size_t i = 0; i < values.size(); ++i) {
    const int64_t ch = channel_of(i);
    double q = 0;
    if (scale[ch] > 0) q = std::nearbyint((static_cast<double>(values[i]) - bias[ch]) / scale[ch]);
    codes[i] = static_cast<uint8_t>(std::clamp(q, 0.0, static_cast<double>(levels)));
  }
  spec::WeightParams* wp = w.params;
  ClearValues(wp);
  wp->set_rawvalue(format::PackNeuralNetworkCodes(codes, c.bits));
  wp->mutable_quantization()->set_numberofbits(c.bits);
  auto* lq = wp->mutable_quantization()->mutable_linearquantization();
  for (int64_t ch = 0; ch < channels; ++ch) {
    lq->add_scale(scale[ch]);
    lq->add_bias(bias[ch]);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> PalettizeLayer(const NeuralNetworkWeight& w, const std::vector<float>& values,
                                           const PalettizerConfig& c, compress::CancelCheck* cancel) {
  if (c.granularity != Granularity::kPerTensor || c.cluster_dim != 1 || c.enable_per_channel_scale) {
    return absl::FailedPreconditionError(absl::StrCat("layer \"", w.layer, "\": NeuralNetwork look-up tables are per "
                                                      "tensor, scalar and unscaled; use an ML Program for grouped, vector "
                                                      "or scaled palettes"));
  }
  compress::PalettizeOptions o;
  o.mode = ToPaletteMode(c.mode);
  o.bits = c.nbits.value_or(0);
  o.custom_palette = c.lut;
  o.precision = compress::Precision::kFloat32;  // the table is stored as fp32
  o.cancel = cancel;
  const format::Shape flat = {static_cast<int64_t>(values.size())};
  auto p = compress::Palettize(values, flat, o);
  if (p.status().code() == absl::StatusCode::kFailedPrecondition) return std::string(p.status().message());
  if (!p.ok()) return p.status();
  spec::WeightParams* wp = w.params;
  ClearValues(wp);
  wp->set_rawvalue(format::PackNeuralNetworkCodes(p->indices, p->bits));
  wp->mutable_quantization()->set_numberofbits(p->bits);
  auto* lut = wp->mutable_quantization()->mutable_lookuptablequantization();
  for (float v : p->lut) lut->add_floatvalue(v);
  return std::string();
}

}  // namespace

absl::StatusOr<CompressionReport> CompressNeuralNetwork(spec::Model* model, const CompressionConfig& config,
                                                        const CompressOptions& options, JobControl* control) {
  RETURN_IF_ERROR(Validate(config));
  ConfigUsage usage;
  if (!format::HasNeuralNetwork(*model)) return absl::InvalidArgumentError("the model is not a NeuralNetwork");
  CompressionReport report;
  report.model_kind = "neuralnetwork";
  report.spec_version_before = model->specificationversion();
  report.target = absl::StrCat("spec", model->specificationversion());
  ASSIGN_OR_RETURN(std::vector<NeuralNetworkWeight> weights, format::ListNeuralNetworkWeights(model));
  int min_spec = model->specificationversion();
  int done = 0;
  for (const NeuralNetworkWeight& w : weights) report.weight_bytes_before += w.stored_bytes;
  for (NeuralNetworkWeight& w : weights) {
    if (control && control->Cancelled()) return control->StopStatus();
    if (control) {
      Progress p;
      p.weights_done = done++;
      p.weights_total = static_cast<int>(weights.size());
      p.current = w.layer + "." + w.field;
      control->OnProgress(p);
    }
    if (w.element_count < 10) continue;
    WeightReport row;
    row.name = w.layer + "." + w.field;
    row.op_type = std::string(format::WeightStorageName(w.storage));
    row.consumers = {w.layer_type + "." + w.field};
    row.shape = w.shape;
    row.dtype = std::string(format::WeightStorageName(w.storage));
    row.technique = "none";
    row.bytes_before = w.stored_bytes;
    row.bytes_after = w.stored_bytes;
    std::optional<OpConfig> cfg;
    std::string source;
    for (size_t p = 0; p < config.passes.size(); ++p) {
      if (config.passes[p].joint_compression && cfg) {
        return absl::FailedPreconditionError("joint compression needs an ML Program (iOS18)");
      }
      // Every pass is consulted so that its keys count as used.
      std::string from;
      std::optional<OpConfig> here = ResolveLayer(config.passes[p].config, w, p, config.passes.size(), &usage, &from);
      if (!cfg) {
        cfg = std::move(here);
        source = from;
      }
    }
    auto finish_skip = [&](std::string reason) {
      row.skipped_reason = std::move(reason);
      ++report.weights_skipped;
      report.weights.push_back(row);
    };
    if (!cfg) {
      finish_skip("no config applies (null or unset)");
      continue;
    }
    if (w.storage != WeightStorage::kFloat32 && w.storage != WeightStorage::kFloat16) {
      finish_skip(absl::StrCat("already stored as ", format::WeightStorageName(w.storage)));
      continue;
    }
    const int64_t threshold = WeightThreshold(*cfg);
    if (static_cast<int64_t>(w.element_count) <= threshold) {
      finish_skip(absl::StrCat(w.element_count, " elements <= weight_threshold ", threshold));
      continue;
    }
    ASSIGN_OR_RETURN(std::vector<float> values, format::DecodeWeightParams(w));
    bool finite = true;
    for (float v : values) finite &= std::isfinite(v);
    if (!finite) {
      finish_skip("weight contains NaN or infinity");
      continue;
    }
    row.technique = TechniqueName(*cfg);
    row.params = DescribeParams(*cfg);
    if (std::holds_alternative<ThresholdPrunerConfig>(*cfg) || std::holds_alternative<MagnitudePrunerConfig>(*cfg)) {
      return absl::FailedPreconditionError(absl::StrCat("layer \"", w.layer, "\": pruning needs an ML Program; the "
                                                        "NeuralNetwork format has no sparse weights"));
    }
    if (std::holds_alternative<Fp16Config>(*cfg)) {
      if (w.storage == WeightStorage::kFloat16) {
        finish_skip("already fp16");
        continue;
      }
      std::string half(values.size() * 2, '\0');
      for (size_t i = 0; i < values.size(); ++i) {
        const uint16_t h = format::FloatToHalf(values[i]);
        half[2 * i] = static_cast<char>(h & 0xff);
        half[2 * i + 1] = static_cast<char>(h >> 8);
      }
      ClearValues(w.params);
      w.params->set_float16value(half);
      min_spec = std::max(min_spec, 2);
    } else if (auto* q = std::get_if<LinearQuantizerConfig>(&*cfg)) {
      RETURN_IF_ERROR(LinearQuantizeLayer(w, values, *q));
      min_spec = std::max(min_spec, 3);
    } else if (auto* p = std::get_if<PalettizerConfig>(&*cfg)) {
      compress::CancelCheck cancel;
      if (control) cancel = control->KernelCheck();
      absl::StatusOr<std::string> palettized = PalettizeLayer(w, values, *p, &cancel);
      if (!palettized.ok() && cancel.cancelled() && control) return control->StopStatus();
      ASSIGN_OR_RETURN(std::string reason, std::move(palettized));
      if (!reason.empty()) {
        finish_skip(reason);
        continue;
      }
      min_spec = std::max(min_spec, 3);
    }
    // Re-read the new storage through the format layer: the report states
    // what the bytes decode to.
    ASSIGN_OR_RETURN(std::vector<format::NeuralNetworkWeight> relisted, format::ListNeuralNetworkWeights(model));
    const NeuralNetworkWeight* now = nullptr;
    for (const auto& r : relisted) {
      if (r.params == w.params) now = &r;
    }
    if (now == nullptr) return absl::InternalError("lost track of a rewritten weight");
    ASSIGN_OR_RETURN(std::vector<float> decoded, format::DecodeWeightParams(*now));
    RETURN_IF_ERROR(CheckDecodedFinite(row.name, row.technique, *cfg, source, nullptr, "",
                                       w.storage == WeightStorage::kFloat16, decoded));
    row.op_type = std::string(format::WeightStorageName(now->storage));
    row.bytes_after = now->stored_bytes;
    row.error = compress::CompareTensors(values, decoded);
    row.sparsity = compress::Sparsity(decoded);
    row.distinct_values = compress::DistinctCount(decoded);
    ++report.weights_compressed;
    report.weights.push_back(row);
  }
  (void)options;
  model->set_specificationversion(min_spec);
  report.spec_version_after = min_spec;
  ASSIGN_OR_RETURN(std::vector<NeuralNetworkWeight> after, format::ListNeuralNetworkWeights(model));
  for (const NeuralNetworkWeight& w : after) report.weight_bytes_after += w.stored_bytes;
  for (std::string& warning : usage.Warnings(config, report)) report.warnings.push_back(std::move(warning));
  return report;
}

}  // namespace coremlz::engine
