// What the CLI, the output check and the planner run: one entry point of a
// model, whether an ML Program function (ProgramExecutor) or a NeuralNetwork
// (NnExecutor). Both take float32 tensors by input name and return the
// outputs by name, and both offer incremental runs (below), so that the
// planner measures either kind of model the same way.
#ifndef COREMLZ_EXECUTE_MODEL_EXECUTOR_H_
#define COREMLZ_EXECUTE_MODEL_EXECUTOR_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "execute/program_executor.h"
#include "execute/tensor.h"

namespace coremlz::execute {

class ModelExecutor {
 public:
  virtual ~ModelExecutor() = default;
  // The function run ("main" for a NeuralNetwork, which has only one).
  virtual const std::string& function() const = 0;
  virtual const std::vector<InputDecl>& inputs() const = 0;
  virtual const std::vector<std::string>& output_names() const = 0;
  virtual absl::StatusOr<std::map<std::string, Tensor>> Run(const std::map<std::string, Tensor>& inputs,
                                                            RunStats* stats = nullptr) const = 0;

  // Incremental runs, for measuring what new values of a few weights do to
  // the outputs (the planner's trials): RunKeeping runs like Run and keeps
  // what it computed; RunReplacing then recomputes only what depends on the
  // replaced weights. Its outputs are exactly those of Run on a model whose
  // weights had the new values (the same kernels on the same values).
  // Weights are named as the engine's report names them: an ML Program's
  // const (or constexpr output) name, a NeuralNetwork's "layer.field".
  class KeptRun {
   public:
    virtual ~KeptRun() = default;
    int64_t bytes = 0;  // of the kept intermediates
  };
  struct WeightReplacement {
    int slot = -1;                        // WeightSlot() of the weight
    std::shared_ptr<const Tensor> value;  // same type and shape as WeightValue()'s
  };
  // The weight's slot; -1 when the model has no such weight or nothing here
  // reads it; FAILED_PRECONDITION (with the reason) when the executor reads
  // it but cannot run the model with another value of it.
  virtual absl::StatusOr<int> WeightSlot(const std::string& weight) const = 0;
  // The value `same_model` (this model with other weight values, such as
  // its compressed form, loaded the same way) reads where this executor
  // reads weight `slot`; null when it has none there.
  virtual std::shared_ptr<const Tensor> WeightValue(int slot, const ModelExecutor& same_model) const = 0;
  std::shared_ptr<const Tensor> WeightValue(int slot) const { return WeightValue(slot, *this); }
  // `keep_intermediates` false keeps only the inputs: RunReplacing then
  // runs everything (a full run), for when keeping it all costs too much.
  virtual absl::StatusOr<std::unique_ptr<KeptRun>> RunKeeping(const std::map<std::string, Tensor>& inputs,
                                                              bool keep_intermediates = true) const = 0;
  virtual absl::StatusOr<std::map<std::string, Tensor>> RunReplacing(
      const KeptRun& kept, const std::vector<WeightReplacement>& replacements, RunStats* stats = nullptr) const = 0;
};

// An ML Program function behind the common interface.
class ProgramModelExecutor : public ModelExecutor {
 public:
  explicit ProgramModelExecutor(std::unique_ptr<ProgramExecutor> program) : program_(std::move(program)) {}
  const ProgramExecutor& program() const { return *program_; }

  const std::string& function() const override { return program_->function(); }
  const std::vector<InputDecl>& inputs() const override { return program_->inputs(); }
  const std::vector<std::string>& output_names() const override { return program_->output_names(); }
  absl::StatusOr<std::map<std::string, Tensor>> Run(const std::map<std::string, Tensor>& inputs,
                                                    RunStats* stats = nullptr) const override {
    return program_->Run(inputs, stats);
  }

  // A weight is a constant with a use among the function's top-level ops;
  // its value in a compressed form is the constant at its first use there
  // (the op indices match; the constant ops differ). RunReplacing returns a
  // stateful function's final states too (ProgramExecutor::RunReplacing).
  absl::StatusOr<int> WeightSlot(const std::string& weight) const override;
  using ModelExecutor::WeightValue;
  std::shared_ptr<const Tensor> WeightValue(int slot, const ModelExecutor& same_model) const override;
  absl::StatusOr<std::unique_ptr<KeptRun>> RunKeeping(const std::map<std::string, Tensor>& inputs,
                                                      bool keep_intermediates = true) const override;
  absl::StatusOr<std::map<std::string, Tensor>> RunReplacing(const KeptRun& kept,
                                                             const std::vector<WeightReplacement>& replacements,
                                                             RunStats* stats = nullptr) const override;

 private:
  std::unique_ptr<ProgramExecutor> program_;
};

}  // namespace coremlz::execute

#endif  // COREMLZ_EXECUTE_MODEL_EXECUTOR_H_
