// What compression did to a model's outputs: the original and the compressed
// model run by the reference executor on the same seeded synthetic inputs,
// each output compared (PSNR against the original's peak, SNR, cosine, max
// abs error; top-1/top-5 agreement and softmax KL for class scores). The one
// definition used by `coremlz compare`, `compress --check`, the service's
// Summary and the host runner.
#ifndef COREMLZ_EXECUTE_OUTPUT_CHECK_H_
#define COREMLZ_EXECUTE_OUTPUT_CHECK_H_

#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/report.h"

namespace coremlz::execute {

// How the numbers were made, for every place that shows them.
inline constexpr char kExecutorLabel[] = "coremlz reference CPU executor (float32), not Core ML";

struct OutputCheckOptions {
  int samples = 4;
  uint64_t seed = 0;
  std::string function;                  // "" : the model's default
  std::function<bool()> cancelled;       // polled between runs
};

// Loads both models (ML Program packages, NeuralNetwork .mlmodel files or
// packages) and compares every output. UNIMPLEMENTED when a model cannot be
// run here (an op or layer the executor lacks).
absl::StatusOr<std::vector<engine::OutputCheck>> CheckOutputs(const std::string& original, const std::string& compressed,
                                                              const OutputCheckOptions& options);

// Runs the check and records it in `report` (numbers, or why there are none).
void AddOutputCheck(const std::string& original, const std::string& compressed, const OutputCheckOptions& options,
                    engine::CompressionReport* report);

}  // namespace coremlz::execute

#endif  // COREMLZ_EXECUTE_OUTPUT_CHECK_H_
