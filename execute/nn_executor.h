// Runs a Core ML NeuralNetwork (.mlmodel, or the spec inside an .mlpackage)
// on the CPU, in float32: the reference executor's counterpart of
// ProgramExecutor for the legacy format. At load it decodes every weight
// through format/ (fp32, fp16, n-bit linear and lookup-table quantized alike,
// so an original and its compressed form run the same kernels), reads each
// layer's parameters, picks its kernel (nn_layer.h) and computes when each
// blob is used for the last time. A run binds the inputs (images
// preprocessed as the network says), runs the layers in order, frees each
// blob after its last use and returns the described outputs.
//
// Inputs: images as pixels [1, C, H, W] (image_preprocess.h); arrays in
// their described shape. With the rank-5 mapping of specification versions
// <= 3 they enter the network as [1, 1, C, H, W]; with the exact mappings
// as declared ([1, C, H, W] for images). An output whose described shape
// holds as many elements as the blob is returned in that shape.
//
// A NeuralNetworkClassifier's outputs are given as Core ML presents them,
// as far as tensors can: the class label output (predictedFeatureName) is
// a scalar string or int32 tensor, the label of the highest score (the
// first of equal ones); the probabilities dictionary
// (predictedProbabilitiesName) is a float tensor [classes] of the scores in
// class-label order (the dictionary's values; its keys are the labels). The
// scores are the blob labelProbabilityLayerName names, else the blob named
// as the probabilities output, else the last layer's output.
//
// Incremental runs (ModelExecutor): a weight is "layer.field" as the
// engine's report names it ("conv1.weights"); RunReplacing rebuilds the
// kernel of each layer whose weight is replaced from the layer's parameters
// and the new value (each layer with weights keeps them for that), reruns it
// and every layer that reads a blob recomputed, and reuses the kept blobs
// for the rest.
//
// Errors: a layer type or parameter without a kernel is UNIMPLEMENTED at
// load, naming the layer type, the layer and its index; a malformed network
// or bad inputs are INVALID_ARGUMENT.
#ifndef COREMLZ_EXECUTE_NN_EXECUTOR_H_
#define COREMLZ_EXECUTE_NN_EXECUTOR_H_

#include <map>
#include <utility>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "coreml/model.pb.h"
#include "execute/image_preprocess.h"
#include "execute/model_executor.h"
#include "execute/nn_layer.h"

namespace coremlz::execute {

class NnExecutor : public ModelExecutor {
 public:
  static absl::StatusOr<std::unique_ptr<NnExecutor>> Load(const CoreML::Specification::Model& model);

  const std::string& function() const override { return function_; }
  const std::vector<InputDecl>& inputs() const override { return inputs_; }
  const std::vector<std::string>& output_names() const override { return output_names_; }
  absl::StatusOr<std::map<std::string, Tensor>> Run(const std::map<std::string, Tensor>& inputs,
                                                    RunStats* stats = nullptr) const override;

  absl::StatusOr<int> WeightSlot(const std::string& weight) const override;
  using ModelExecutor::WeightValue;
  std::shared_ptr<const Tensor> WeightValue(int slot, const ModelExecutor& same_model) const override;
  absl::StatusOr<std::unique_ptr<KeptRun>> RunKeeping(const std::map<std::string, Tensor>& inputs,
                                                      bool keep_intermediates = true) const override;
  absl::StatusOr<std::map<std::string, Tensor>> RunReplacing(const KeptRun& kept,
                                                             const std::vector<WeightReplacement>& replacements,
                                                             RunStats* stats = nullptr) const override;

 private:
  struct Input {
    Shape network_shape;  // as the first layer sees it
    bool image = false;
    ImagePreprocess preprocess;
    int slot = 0;
  };
  struct Step {
    NnLayerLabel label;
    NnKernel kernel;
    std::vector<int> inputs, outputs;
    std::vector<int> last_uses;  // blobs freed after this step
    // A layer with weights: what its kernel was built from and by, to
    // rebuild it with a replaced weight.
    std::shared_ptr<const NnLayerSpec> spec;
    NnLayerBuilder builder = nullptr;
  };
  // A weight incremental runs can replace: a layer's field.
  struct WeightRef {
    int step = 0;
    std::string field;
  };
  struct Output {
    enum Kind { kBlob, kLabel, kScores } kind = kBlob;  // the last two: a classifier's
    int slot = 0;
    Shape described;  // empty: keep the blob's shape
  };
  NnExecutor() = default;
  absl::StatusOr<Tensor> ClassifierOutput(const Output& o, const Tensor& scores, const std::string& name) const;
  // The inputs as the network sees them (reshaped, images preprocessed), by slot.
  absl::StatusOr<std::vector<std::pair<int, Tensor>>> BindInputs(const std::map<std::string, Tensor>& inputs) const;
  // Output `i` from its blob (moved when `last`).
  absl::StatusOr<Tensor> OutputValue(size_t i, Tensor* blob, bool last) const;

  std::string function_ = "main";
  std::vector<InputDecl> inputs_;
  std::vector<Input> input_bindings_;
  std::vector<std::string> output_names_;
  std::vector<Output> outputs_;
  std::vector<Step> steps_;
  int slot_count_ = 0;
  std::vector<WeightRef> weight_refs_;     // by weight slot
  std::map<std::string, int> weight_slots_;  // "layer.field" -> slot; -1: ambiguous (two layers share the name)
  std::vector<std::string> string_labels_;  // a classifier's labels, one kind
  std::vector<int64_t> int_labels_;
};

}  // namespace coremlz::execute

#endif  // COREMLZ_EXECUTE_NN_EXECUTOR_H_
