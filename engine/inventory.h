// A model's weights inventory, like coremltools' get_weights_metadata: every
// weight tensor with the op that holds it, who reads it, its shape, storage
// and size, plus sparsity and distinct values of its (decompressed) values.
#ifndef COREMLZ_ENGINE_INVENTORY_H_
#define COREMLZ_ENGINE_INVENTORY_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/job_control.h"
#include "format/package.h"
#include "format/tensor.h"

namespace coremlz::engine {

struct InventoryEntry {
  std::string name;
  // ML Program function(s), comma-separated when the functions of a
  // multifunction package share the weight ("" for NeuralNetwork layers).
  std::string function;
  std::string op_type;   // "const", "constexpr_lut_to_dense", or the NN storage ("fp32", "lut", ...)
  std::vector<std::string> consumers;
  format::Shape shape;   // of the dense weight
  std::string dtype;     // of the dense weight
  std::string storage;   // how it is stored: "fp16", "indices:uint4 lut:fp16", ...
  uint64_t bytes = 0;    // stored bytes
  double share = 0;      // of all weight bytes
  // Of the dense values; absent for ops whose outputs only feed other
  // constexpr ops (e.g. constexpr_lut_to_sparse) and with statistics off.
  bool has_statistics = false;
  double sparsity = 0;   // fraction of zeros in the dense values
  uint64_t distinct_values = 0;
};

struct FeatureInfo {
  std::string name;
  std::string type;  // "fp16[1, 3, 224, 224]", "image 224x224 RGB", ...
};

struct Inventory {
  std::string path;
  std::string kind;  // "mlprogram" or "neuralnetwork"
  int spec_version = 0;
  std::string opset;  // ML Programs: the main function's opset
  std::vector<FeatureInfo> inputs, outputs;
  std::vector<InventoryEntry> weights;
  uint64_t weight_bytes = 0;  // sum over entries
  uint64_t model_bytes = 0;   // all files
};

struct InspectOptions {
  uint64_t min_elements = 10;  // smaller tensors are parameters, not weights
  bool statistics = true;      // sparsity and distinct values (reads every weight)
  uint64_t max_manifest_bytes = format::kDefaultMaxManifestBytes;
  // Progress per weight and cancellation between weights (optional).
  JobControl* control = nullptr;
};

// `path`: an .mlpackage directory or an .mlmodel file.
absl::StatusOr<Inventory> InspectModel(const std::string& path, const InspectOptions& options = {});

}  // namespace coremlz::engine

#endif  // COREMLZ_ENGINE_INVENTORY_H_
