// Builds small but realistic Core ML models with coremlz's own writer, for
// tests that need shapes or dtypes the shared reference models lack. The
// real models in ../shared remain the proof of compatibility; these cover
// corners (fp32 ML Programs, odd shapes, NeuralNetwork layers).
#ifndef COREMLZ_TESTS_TESTING_MODEL_BUILDER_H_
#define COREMLZ_TESTS_TESTING_MODEL_BUILDER_H_

#include <cstdint>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "coreml/model.pb.h"
#include "format/element_type.h"
#include "format/tensor.h"

namespace coremlz::testing {

// Random weights, roughly N(0, stddev^2), deterministic per seed.
std::vector<float> RandomWeights(uint64_t count, uint32_t seed, float stddev = 0.05f);
// A tensor of `type` (fp16 or fp32) holding `values` (rounded for fp16).
format::Tensor FloatTensor(format::ElementType type, format::Shape shape, const std::vector<float>& values);

// An ML Program with one function "main". Constants with >= 10 elements go
// to weights/weight.bin, smaller ones are immediate, as Core ML tools do.
class ProgramBuilder {
 public:
  // spec_version 7 (iOS16, opset CoreML6) ... 9 (iOS18, CoreML8).
  explicit ProgramBuilder(int spec_version = 7);

  void AddInput(const std::string& name, format::ElementType type, format::Shape shape);
  std::string Const(const std::string& name, const format::Tensor& value);
  // Adds an op whose inputs are bound to names; returns `output`.
  std::string Op(const std::string& type, const std::map<std::string, std::string>& inputs,
                 const std::string& output, format::ElementType out_type, format::Shape out_shape);
  void AddOutput(const std::string& name, format::ElementType type, format::Shape shape);

  // Convenience layers with weights of `weight_type`.
  std::string Conv(const std::string& prefix, const std::string& x, int64_t cin, int64_t cout,
                   int64_t kernel, int64_t spatial, format::ElementType weight_type, uint32_t seed);
  std::string Linear(const std::string& prefix, const std::string& x, int64_t in, int64_t out,
                     format::Shape x_shape, format::ElementType weight_type, uint32_t seed);

  CoreML::Specification::Model Build() const;
  // Writes a complete .mlpackage directory (fresh UUIDs from `seed`).
  absl::Status WritePackage(const std::string& dir) const;

 private:
  std::string opset_;
  CoreML::Specification::Model model_;
  std::vector<format::Tensor> blobs_;  // in order of BlobFileValue offsets
  std::vector<uint64_t> blob_offsets_;
  uint64_t next_offset_ = 64;
  CoreML::Specification::MILSpec::Block* block();
  CoreML::Specification::MILSpec::Function* function();
};

// A package with conv, linear and transformer-block-shaped weights.
absl::Status WriteMixedTestPackage(const std::string& dir, format::ElementType weight_type,
                                   int spec_version);

// x[1, in] -> linear in x 512 whose output channels 256.. are scaled by
// `small` -> those channels scaled back by 1 / small -> linear 512x64 (fp32,
// iOS16). With a small `small`, one palette for the first weight has the
// higher weight SNR yet loses at the outputs to per-channel scales: the
// planner's pruning check (tests/plan/readmission_test.cc).
absl::Status WriteSplitScalePackage(const std::string& dir, float small, int64_t in = 64);

// A NeuralNetwork .mlmodel with conv + innerProduct (+ batchnorm, embedding)
// layers whose weights are fp32 (floatValue) or fp16 (float16Value).
CoreML::Specification::Model BuildNeuralNetworkModel(bool fp16, uint32_t seed);
// The same network with 'same' padding on the convolution, so that its
// shapes line up and the executor runs it ([16, 8, 8] in, [64] out): for
// the planner's tests, which measure outputs.
CoreML::Specification::Model BuildRunnableNeuralNetworkModel(bool fp16, uint32_t seed);

}  // namespace coremlz::testing

#endif  // COREMLZ_TESTS_TESTING_MODEL_BUILDER_H_
