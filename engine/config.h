// Compression configuration, mirroring coremltools.optimize.coreml so its
// users recognise it: one OptimizationConfig per pass, with a global config,
// per-op-type and per-op-name configs (an absent value - YAML null - means
// "leave these weights alone"), each one of four op config kinds with
// coremltools' parameter names and defaults.
//
// coremlz runs a list of passes; a second pass with joint_compression set
// compresses the output of the first (prune, then palettize or quantize the
// surviving values), like calling coremltools twice with
// joint_compression=True.
#ifndef COREMLZ_ENGINE_CONFIG_H_
#define COREMLZ_ENGINE_CONFIG_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "absl/status/status.h"

namespace coremlz::engine {

enum class Granularity { kPerTensor, kPerChannel, kPerGroupedChannel, kPerBlock };

struct LinearQuantizerConfig {
  bool symmetric = true;  // mode: "linear_symmetric" (default) or "linear"
  int bits = 8;           // dtype: int8 (default), uint8, int4, uint4
  bool is_signed = true;
  Granularity granularity = Granularity::kPerChannel;
  // block_size: one int (the input-channel axis; 0 = whole axis) or one
  // value per weight axis.
  std::vector<int64_t> block_size = {32};
  bool block_size_per_axis = false;
  int64_t weight_threshold = 2048;
};

struct PalettizerConfig {
  enum class Mode { kKMeans, kUniform, kUnique, kCustom };
  Mode mode = Mode::kKMeans;
  std::optional<int> nbits;  // required for kmeans/uniform; forbidden for unique/custom
  Granularity granularity = Granularity::kPerTensor;
  int64_t group_size = 32;
  std::optional<int> channel_axis;
  int cluster_dim = 1;
  bool enable_per_channel_scale = false;
  // mode "custom": the palette (coremltools takes a Python lut_function; a
  // service takes the table itself): 2^n entries (x cluster_dim).
  std::vector<float> lut;
  int num_kmeans_workers = 1;
  int64_t weight_threshold = 2048;
};

struct ThresholdPrunerConfig {
  double threshold = 1e-12;
  double minimum_sparsity_percentile = 0.5;
  int64_t weight_threshold = 2048;
};

struct MagnitudePrunerConfig {
  std::optional<double> target_sparsity;
  std::optional<int> block_size;
  std::optional<std::pair<int, int>> n_m_ratio;
  std::optional<int> dim;  // defaults: 0 for block sparsity, 1 for n:m
  int64_t weight_threshold = 2048;
};

// A fp32 -> fp16 storage conversion (coremlz's own; no coremltools class).
struct Fp16Config {
  int64_t weight_threshold = 0;
};

using OpConfig = std::variant<LinearQuantizerConfig, PalettizerConfig, ThresholdPrunerConfig,
                              MagnitudePrunerConfig, Fp16Config>;

// "linear_quantize", "palettize", "prune", "fp16". (The names of config
// values and classes are in engine/config_names.h.)
std::string TechniqueName(const OpConfig& config);
int64_t WeightThreshold(const OpConfig& config);
// One line of parameters for reports: "nbits=4 mode=kmeans granularity=per_tensor".
std::string DescribeParams(const OpConfig& config);
// A canonical text of every field: equal keys mean equal configs.
std::string ConfigKey(const OpConfig& config);
// Checks coremltools' validation rules; messages name the offending field.
absl::Status Validate(const OpConfig& config);

struct OptimizationConfig {
  // nullopt: no global config (or null) -> weights not matched elsewhere are kept.
  std::optional<OpConfig> global;
  std::map<std::string, std::optional<OpConfig>> op_type_configs;
  std::map<std::string, std::optional<OpConfig>> op_name_configs;
};

struct CompressionPass {
  OptimizationConfig config;
  bool joint_compression = false;
};

struct CompressionConfig {
  std::vector<CompressionPass> passes;
};

absl::Status Validate(const CompressionConfig& config);

}  // namespace coremlz::engine

#endif  // COREMLZ_ENGINE_CONFIG_H_
