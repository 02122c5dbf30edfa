// The weights of a legacy NeuralNetwork model (.mlmodel): every WeightParams
// held by a layer, with the tensor shape the layer implies and how the values
// are stored.
#ifndef COREMLZ_FORMAT_NEURAL_NETWORK_WEIGHTS_H_
#define COREMLZ_FORMAT_NEURAL_NETWORK_WEIGHTS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "coreml/model.pb.h"
#include "format/tensor.h"

namespace coremlz::format {

enum class WeightStorage {
  kEmpty,            // no values (e.g. a layer without bias)
  kFloat32,          // floatValue
  kFloat16,          // float16Value, little-endian halves
  kLinearQuantized,  // rawValue, n-bit codes, w = scale * q + bias
  kLookupTable,      // rawValue, n-bit indices into a 2^n-entry table
  kInt8,             // int8RawValue (int8 matmul layers)
  kRawUnquantized,   // rawValue without quantization parameters
};
absl::string_view WeightStorageName(WeightStorage storage);

struct NeuralNetworkWeight {
  std::string layer;       // layer name (path-qualified inside branches/loops)
  std::string layer_type;  // "convolution", "innerProduct", ...
  std::string field;       // "weights", "bias", "gamma", ...
  CoreML::Specification::WeightParams* params = nullptr;
  Shape shape;             // as the layer defines it
  int output_axis = 0;     // axis of output channels (for per-channel quantization)
  WeightStorage storage = WeightStorage::kEmpty;
  int bits = 32;           // storage bits per element
  uint64_t element_count = 0;
  uint64_t stored_bytes = 0;
};

// Lists weights of every layer in the model's neural network (plain,
// classifier or regressor, including nested branch/loop networks). Storage
// is validated: byte counts must agree with the shape and bit width.
absl::StatusOr<std::vector<NeuralNetworkWeight>> ListNeuralNetworkWeights(
    CoreML::Specification::Model* model);

// Dense float values of one weight, decoded from whatever storage it uses.
absl::StatusOr<std::vector<float>> DecodeWeightParams(const NeuralNetworkWeight& weight);

// True if the model holds a NeuralNetwork (of any flavour).
bool HasNeuralNetwork(const CoreML::Specification::Model& model);

}  // namespace coremlz::format

#endif  // COREMLZ_FORMAT_NEURAL_NETWORK_WEIGHTS_H_
