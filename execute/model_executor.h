// What the CLI and the output check run: one entry point of a model, whether
// an ML Program function (ProgramExecutor) or a NeuralNetwork (NnExecutor).
// Both take float32 tensors by input name and return the outputs by name.
#ifndef COREMLZ_EXECUTE_MODEL_EXECUTOR_H_
#define COREMLZ_EXECUTE_MODEL_EXECUTOR_H_

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

 private:
  std::unique_ptr<ProgramExecutor> program_;
};

}  // namespace coremlz::execute

#endif  // COREMLZ_EXECUTE_MODEL_EXECUTOR_H_
