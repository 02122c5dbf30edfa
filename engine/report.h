// What a compression job did, weight by weight, and in total. Filled by the
// compressors; rendered by the CLI (table, JSON) and the service (protobuf).
#ifndef COREMLZ_ENGINE_REPORT_H_
#define COREMLZ_ENGINE_REPORT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "compress/metrics.h"
#include "format/tensor.h"

namespace coremlz::engine {

struct WeightReport {
  std::string name;      // the original weight (const op output or layer.field)
  std::string function;  // ML Program function, or "" for NeuralNetwork layers
  std::string op_type;   // what now produces it: "constexpr_lut_to_dense", "const", "float16Value", ...
  std::vector<std::string> consumers;  // "conv.weight", ...
  format::Shape shape;
  std::string dtype;      // of the original weight
  std::string technique;  // "palettize", "linear_quantize", "prune", "prune+palettize", "fp16", or "none"
  std::string params;
  uint64_t bytes_before = 0;
  uint64_t bytes_after = 0;
  compress::ErrorMetrics error;  // vs the original values
  double sparsity = 0;            // of the reconstructed values
  uint64_t distinct_values = 0;   // of the reconstructed values
  std::string skipped_reason;     // set when the weight was left as it was
};

struct CompressionReport {
  std::string model_kind;  // "mlprogram" or "neuralnetwork"
  int spec_version_before = 0;
  int spec_version_after = 0;
  std::string target;      // "iOS16", ...
  std::vector<WeightReport> weights;
  uint64_t weight_bytes_before = 0;  // all weight data, compressed or not
  uint64_t weight_bytes_after = 0;
  uint64_t fp16_bytes = 0;           // the same weights stored as fp16
  uint64_t model_bytes_before = 0;   // every file of the model
  uint64_t model_bytes_after = 0;
  int weights_compressed = 0;
  int weights_skipped = 0;
  double seconds = 0;
  std::vector<std::string> warnings;
  // On-device validation (through a server's runner pool): one JSON object
  // per result, and whether any did not pass.
  std::vector<std::string> validation_json;
  std::vector<std::string> validation_lines;  // human summary
  bool validation_failed = false;

  double RatioVsOriginal() const {
    return weight_bytes_after ? static_cast<double>(weight_bytes_before) / weight_bytes_after : 0;
  }
  double RatioVsFp16() const { return weight_bytes_after ? static_cast<double>(fp16_bytes) / weight_bytes_after : 0; }
};

}  // namespace coremlz::engine

#endif  // COREMLZ_ENGINE_REPORT_H_
