// Building NeuralNetwork layer parameters and tiny networks for the NN
// executor tests: parameters are written in wire form by field number, as
// Core ML's NeuralNetwork.proto numbers them.
#ifndef COREMLZ_TESTS_EXECUTE_NN_TEST_UTIL_H_
#define COREMLZ_TESTS_EXECUTE_NN_TEST_UTIL_H_

#include <cstring>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "coreml/model.pb.h"
#include "execute/nn_layer.h"
#include "google/protobuf/unknown_field_set.h"

namespace coremlz::execute::testing {

// A float tensor of `shape` with values uniform in [-1, 1) from `rng`.
inline Tensor Random(std::mt19937& rng, Shape shape) {
  std::uniform_real_distribution<float> u(-1, 1);
  std::vector<float> v(NumElements(shape));
  for (float& x : v) x = u(rng);
  return Tensor::Float(std::move(shape), std::move(v));
}

class Wire {
 public:
  Wire& Varint(int field, uint64_t v) {
    google::protobuf::UnknownFieldSet f;
    f.AddVarint(field, v);
    return Append(f);
  }
  Wire& Float(int field, float v) {
    uint32_t bits;
    std::memcpy(&bits, &v, 4);
    google::protobuf::UnknownFieldSet f;
    f.AddFixed32(field, bits);
    return Append(f);
  }
  // Repeated integers, unpacked (readers take both forms).
  Wire& Ints(int field, const std::vector<int64_t>& v) {
    for (int64_t x : v) Varint(field, static_cast<uint64_t>(x));
    return *this;
  }
  Wire& Message(int field, const Wire& m) { return Bytes(field, m.str()); }
  Wire& Bytes(int field, const std::string& b) {
    google::protobuf::UnknownFieldSet f;
    f.AddLengthDelimited(field, b);
    return Append(f);
  }
  const std::string& str() const { return bytes_; }

 private:
  // Serialized fields concatenate into a message.
  Wire& Append(const google::protobuf::UnknownFieldSet& f) {
    std::string s;
    f.SerializeToString(&s);
    bytes_ += s;
    return *this;
  }
  std::string bytes_;
};

// Runs one layer kernel: builds it from `params` and `weights` (flat, by
// field) for a layer of `output_count` outputs and applies it to `inputs`.
inline absl::StatusOr<std::vector<Tensor>> RunLayerOutputs(
    const std::string& type, const Wire& params, const std::vector<Tensor>& inputs,
    const std::map<std::string, std::vector<float>>& weights = {}, int output_count = 1) {
  NnLayerSpec spec;
  spec.name = "test_layer";
  spec.type = type;
  absl::StatusOr<WireMessage> p = WireMessage::Parse(params.str());
  if (!p.ok()) return p.status();
  spec.params = *std::move(p);
  spec.input_count = static_cast<int>(inputs.size());
  spec.output_count = output_count;
  for (const auto& [field, v] : weights) {
    spec.weights[field] = Tensor::Float({static_cast<int64_t>(v.size())}, v);
  }
  auto builder = NnLayerBuilders().find(type);
  if (builder == NnLayerBuilders().end()) return absl::UnimplementedError(type);
  // As the executor does: a test that passes too few inputs gets a status,
  // not a kernel reading past its inputs.
  if (absl::Status s = CheckNnLayerInputs(spec); !s.ok()) return s;
  if (absl::Status s = CheckNnLayerOutputs(spec); !s.ok()) return s;
  absl::StatusOr<NnKernel> kernel = builder->second(spec);
  if (!kernel.ok()) return kernel.status();
  std::vector<const Tensor*> ptrs;
  for (const Tensor& t : inputs) ptrs.push_back(&t);
  return (*kernel)(ptrs);
}

// The same for a layer of one output.
inline absl::StatusOr<Tensor> RunLayer(const std::string& type, const Wire& params, const std::vector<Tensor>& inputs,
                                       const std::map<std::string, std::vector<float>>& weights = {}) {
  absl::StatusOr<std::vector<Tensor>> out = RunLayerOutputs(type, params, inputs, weights);
  if (!out.ok()) return out.status();
  return std::move(out->at(0));
}

// Appends a layer whose parameters are given in wire form under the layer
// oneof's field `number`, to a NeuralNetwork or a NeuralNetworkClassifier.
template <typename Network>
CoreML::Specification::NeuralNetworkLayer* AddLayer(Network* nn, const std::string& name,
                                                    const std::vector<std::string>& inputs,
                                                    const std::string& output, int number, const Wire& params) {
  auto* layer = nn->add_layers();
  layer->set_name(name);
  for (const std::string& in : inputs) layer->add_input(in);
  layer->add_output(output);
  layer->GetReflection()->MutableUnknownFields(layer)->AddLengthDelimited(number, params.str());
  return layer;
}

}  // namespace coremlz::execute::testing

#endif  // COREMLZ_TESTS_EXECUTE_NN_TEST_UTIL_H_
