// What a plan is written as: the config (coremltools' OptimizationConfig in
// YAML: one config_type, no global config, op_name_configs keyed by each
// planned weight's const op, null for "keep"), the JSON plan report, and the
// Pareto plot as a self-contained SVG.
#ifndef COREMLZ_PLAN_PLAN_OUTPUTS_H_
#define COREMLZ_PLAN_PLAN_OUTPUTS_H_

#include <string>

#include "absl/status/statusor.h"
#include "engine/config.h"
#include "plan/planner.h"

namespace coremlz::plan {

// A single-pass config in coremltools' from_yaml shape; `coremlz compress
// --config` reads it back to the same config.
absl::StatusOr<std::string> PlanConfigYaml(const engine::CompressionConfig& config);

// The plan report. Every PSNR says whether it was predicted (trials and the
// additive model) or measured (a compressed model, or decoded weights, run by
// the reference executor).
std::string PlanReportJson(const PlanResult& plan);

// What the plan gains over `u`'s uniform compression, measured, in dB
// (+infinity when the plan is exact and the uniform one is not).
double UniformGainDb(const UniformComparison& u);
// The same gain predicted by the additive model: what the exact allocation
// can gain under the measured per-weight sensitivities. NaN when the
// uniform compression has no prediction (a trial of it was pruned).
double PredictedUniformGainDb(const UniformComparison& u);

// Output PSNR against model size: the Pareto curve (predicted and measured,
// drawn apart), the uniform compressions (measured), the plan's measured
// point and the target.
std::string ParetoSvg(const PlanResult& plan);

}  // namespace coremlz::plan

#endif  // COREMLZ_PLAN_PLAN_OUTPUTS_H_
