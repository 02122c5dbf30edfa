// Compresses one ML Program weight: runs the configured technique(s) on its
// values and describes the constexpr op(s) Core ML tools would emit for the
// deployment target, plus the dense values those ops decompress to.
#ifndef COREMLZ_ENGINE_WEIGHT_COMPRESSOR_H_
#define COREMLZ_ENGINE_WEIGHT_COMPRESSOR_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "compress/palettize.h"
#include "engine/config.h"
#include "engine/op_spec.h"
#include "engine/target.h"
#include "format/tensor.h"

namespace coremlz::engine {

struct ConsumerInfo {
  std::string op_type;  // "conv", "linear", ...
  std::string op_name;
  std::string input;    // which input the weight feeds ("weight", "y", ...)
  int64_t conv_groups = 1;
};

struct WeightTask {
  std::string name;  // the const op's output name
  std::string function;
  format::ElementType dtype = format::ElementType::kFloat16;
  format::Shape shape;
  std::vector<ConsumerInfo> consumers;
  int out_axis = -1;  // output / input channel axes from the consumers
  int in_axis = -1;   // (normalised; -1 when the consumers disagree)
  // The compressing config, and an optional joint follower that compresses
  // the first one's result (prune, then palettize or quantize).
  OpConfig primary;
  std::optional<OpConfig> joint;
  // Where each came from in the config, for messages: "global_config",
  // "op_name_configs[\"conv1_weight\"] (pass 2)", ...
  std::string primary_source;
  std::string joint_source;
};

struct WeightResult {
  std::vector<OpSpec> ops;  // empty when skipped
  std::string final_output;  // what the consumers now read
  std::vector<float> reconstructed;  // dense values the ops decompress to
  // When the technique knows them (engine/coded_values.h): every value of
  // `reconstructed` and no other, repeats allowed, usually far fewer.
  std::optional<std::vector<float>> value_set;
  std::string technique;
  std::string params;
  std::string skipped_reason;  // the technique does not apply to this tensor
};

// Errors: the target cannot express the requested compression
// (FailedPrecondition, naming the weight and what is needed), or invalid
// weights (NaN/Inf: InvalidArgument).
// The palettizer config's mode as the palettization kernel's.
compress::PaletteMode ToPaletteMode(PalettizerConfig::Mode mode);

// `cancel` (optional) is polled inside the kernels; a cancelled weight
// returns CANCELLED. `parallel` (optional): how a kernel may split this one
// weight's independent pieces (grouped palettes) over idle threads; the
// result is the same without it.
absl::StatusOr<WeightResult> CompressWeight(const WeightTask& task, std::vector<float> values, Target target,
                                            compress::CancelCheck* cancel = nullptr,
                                            const compress::ParallelFor* parallel = nullptr);

// INVALID_ARGUMENT when `decoded`, what the new ops of `task` decompress to,
// holds NaN or infinity (the input was finite: non-finite weights are
// skipped): naming the weight, the config and its key. `technique` is the
// report's ("palettize", "prune+linear_quantize", ...).
absl::Status CheckDecodedFinite(const std::string& weight, absl::string_view technique, const OpConfig& config,
                                absl::string_view source, const OpConfig* joint, absl::string_view joint_source,
                                bool fp16_weight, absl::Span<const float> decoded);

}  // namespace coremlz::engine

#endif  // COREMLZ_ENGINE_WEIGHT_COMPRESSOR_H_
