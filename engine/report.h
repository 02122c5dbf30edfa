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
  // Every function that reads this weight (multifunction packages list a
  // shared weight once); function is the first. Empty for NeuralNetworks.
  std::vector<std::string> functions;
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

// What compression did to one of the model's outputs, measured by running the
// original and the compressed model on the same inputs (the reference CPU
// executor; filled above the engine, which never runs models).
struct OutputCheck {
  std::string name;
  double psnr_db = 0;       // worst over the samples, against the original's peak; +inf when identical
  double snr_db = 0;        // mean over the samples
  double cosine = 0;        // worst over the samples
  double max_abs_error = 0;
  bool class_scores = false;  // the output is shaped like class scores; then:
  double top1_agreement = 0, top5_overlap = 0, kl_divergence = 0;
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
  // Output fidelity (`--check N`): the samples run, how, and per output; or
  // why the model could not be run (then no numbers - never a guess).
  int check_samples = 0;
  std::string check_executor;
  std::vector<OutputCheck> output_checks;
  std::string check_error;
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
