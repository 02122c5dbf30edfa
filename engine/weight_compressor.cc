#include "engine/weight_compressor.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "compress/reduce.h"
#include "engine/config_names.h"
#include "engine/param_tensors.h"
#include "engine/weight_technique.h"
#include "format/fp16.h"

namespace coremlz::engine {
using compress::Precision;
using format::ElementType;

Precision PrecisionOf(ElementType t) { return t == ElementType::kFloat16 ? Precision::kFloat16 : Precision::kFloat32; }

absl::Status Unsupported(const WeightTask& task, Target target, absl::string_view what, absl::string_view needs) {
  return absl::FailedPreconditionError(absl::StrCat(
      "weight \"", task.name, "\": ", what, " needs ", needs, " (specification version 9) but the model targets ",
      TargetName(target), "; re-convert the model with minimum_deployment_target=", needs, " or choose another technique"));
}

WeightResult Skip(std::string reason) {
  WeightResult r;
  r.technique = "none";
  r.skipped_reason = std::move(reason);
  return r;
}

namespace {

// An fp32 weight stored as fp16 and widened back at load time.
WeightResult CastToFp16(const WeightTask& task, std::vector<float> values) {
  WeightResult r;
  r.technique = "fp16";
  OpSpec op;
  op.type = "constexpr_cast";
  op.name = task.name + "_fp16";
  op.params_as_attributes = true;
  std::vector<float> rounded = std::move(values);
  format::RoundToHalf(absl::MakeSpan(rounded));
  op.params.push_back({"source_val", MakeFloatTensor(ElementType::kFloat16, task.shape, rounded)});
  ParamSpec dtype;
  dtype.name = "output_dtype";
  dtype.string_value = "fp32";
  op.params.push_back(dtype);
  op.outputs.push_back({op.name, ElementType::kFloat32, task.shape});
  r.final_output = op.name;
  SetOps(&r, std::move(op));
  r.reconstructed = std::move(rounded);
  return r;
}

}  // namespace

compress::PaletteMode ToPaletteMode(PalettizerConfig::Mode mode) {
  using M = PalettizerConfig::Mode;
  switch (mode) {
    case M::kKMeans: return compress::PaletteMode::kKMeans;
    case M::kUniform: return compress::PaletteMode::kUniform;
    case M::kUnique: return compress::PaletteMode::kUnique;
    case M::kCustom: return compress::PaletteMode::kCustom;
  }
  return compress::PaletteMode::kCustom;
}

absl::StatusOr<WeightResult> CompressWeight(const WeightTask& task, std::vector<float> values, Target target,
                                            compress::CancelCheck* cancel, const compress::ParallelFor* parallel) {
  if (!compress::AllFinite(values)) {
    // Core ML tools skip such weights with a warning; a silent skip would
    // hide a broken model, so say so in the report.
    return Skip("weight contains NaN or infinity");
  }
  const OpConfig& primary = task.primary;
  std::string params = DescribeParams(primary);
  WeightResult r;

  if (std::holds_alternative<ThresholdPrunerConfig>(primary) || std::holds_alternative<MagnitudePrunerConfig>(primary)) {
    std::vector<float> pruned = values;
    ASSIGN_OR_RETURN(std::string reason, Prune(task, primary, &pruned, cancel));
    if (!reason.empty()) return Skip(reason);
    Sparse sparse = SparseOf(pruned);
    if (task.joint) {
      if (!HasIos18Ops(target)) return Unsupported(task, target, "joint compression");
      const std::string joint_params = DescribeParams(*task.joint);
      // Nothing left to compress further (Core ML tools leave such weights pruned only).
      const bool quantize = std::holds_alternative<LinearQuantizerConfig>(*task.joint);
      if (!(quantize && sparse.nonzero.size() < 10) && !sparse.nonzero.empty()) {
        if (quantize) {
          ASSIGN_OR_RETURN(r, Quantize(task, pruned, std::get<LinearQuantizerConfig>(*task.joint), target, &sparse, cancel));
        } else if (auto* pc = std::get_if<PalettizerConfig>(&*task.joint)) {
          ASSIGN_OR_RETURN(r, Palettize(task, pruned, *pc, target, &sparse, cancel, parallel));
        } else {
          return absl::InvalidArgumentError("joint compression after pruning must palettize or linear_quantize");
        }
        if (r.skipped_reason.empty()) {
          r.params = absl::StrCat(params, "; ", joint_params, r.params.empty() ? "" : " ", r.params);
          return r;
        }
        // The follower does not apply: keep the pruning alone.
      }
    }
    r = WeightResult();
    r.technique = "prune";
    r.params = params;
    SetOps(&r, SparseToDense(task, target, sparse));
    r.final_output = r.ops[0].name;
    // The kept values and a zero are every value there is: the report's
    // distinct count reads those (half the elements at 50 % sparsity).
    const bool pruned_some = sparse.nonzero.size() < pruned.size();
    r.value_set = std::move(sparse.nonzero);
    if (pruned_some) r.value_set->push_back(0.0f);
    r.reconstructed = std::move(pruned);
    for (float& v : r.reconstructed) v = v == 0.0f ? 0.0f : v;  // the dense op fills +0.0
    return r;
  }
  if (task.joint) {
    return absl::InvalidArgumentError(absl::StrCat("weight \"", task.name,
                                                   "\": joint compression is supported as pruning followed by "
                                                   "palettization or linear quantization"));
  }
  if (auto* q = std::get_if<LinearQuantizerConfig>(&primary)) {
    ASSIGN_OR_RETURN(r, Quantize(task, std::move(values), *q, target, nullptr, cancel));
  } else if (auto* p = std::get_if<PalettizerConfig>(&primary)) {
    ASSIGN_OR_RETURN(r, Palettize(task, std::move(values), *p, target, nullptr, cancel, parallel));
  } else {  // fp16
    if (task.dtype == ElementType::kFloat16) return Skip("already fp16");
    r = CastToFp16(task, std::move(values));
  }
  if (r.skipped_reason.empty()) r.params = r.params.empty() ? params : absl::StrCat(params, " ", r.params);
  return r;
}

absl::Status CheckDecodedFinite(const std::string& weight, absl::string_view technique, const OpConfig& config,
                                absl::string_view source, const OpConfig* joint, absl::string_view joint_source,
                                bool fp16_weight, absl::Span<const float> decoded) {
  if (compress::AllFinite(decoded)) return absl::OkStatus();
  size_t bad = 0, first = 0;
  for (size_t i = decoded.size(); i-- > 0;) {
    if (!std::isfinite(decoded[i])) {
      ++bad;
      first = i;
    }
  }
  auto describe = [](const OpConfig& c, absl::string_view where) {
    return absl::StrCat(ConfigTypeName(c), " (", DescribeParams(c), ") from ", where.empty() ? "the config" : where);
  };
  std::string configs = describe(config, source);
  if (joint != nullptr) absl::StrAppend(&configs, " followed by ", describe(*joint, joint_source));
  auto is_custom = [](const OpConfig* c) {
    const auto* p = c == nullptr ? nullptr : std::get_if<PalettizerConfig>(c);
    return p != nullptr && p->mode == PalettizerConfig::Mode::kCustom;
  };
  const bool custom = is_custom(&config) || is_custom(joint);
  std::string why;
  if (custom) {
    why = fp16_weight ? " (a \"lut\" entry beyond the fp16 range, +-65504, becomes infinity in an fp16 palette)" : "";
  } else if (std::holds_alternative<Fp16Config>(config)) {
    why = " (values beyond the fp16 range, +-65504, become infinity)";
  } else if (fp16_weight) {
    why = " (a scale or palette entry of this fp16 weight overflows the fp16 range, +-65504)";
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "weight \"", weight, "\": ", technique, " with ", configs, " would decode to ", bad, " of ", decoded.size(),
      " values that are NaN or infinite (the first at element ", first, " is ", decoded[first],
      ") although the weight is finite", why, "; the model was not written. Leave this weight uncompressed (a null entry for it in op_name_configs) "
      "or choose another config"));
}

}  // namespace coremlz::engine
