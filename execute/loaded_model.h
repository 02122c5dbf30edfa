// A model file opened for the reference executor: the model specification
// (whose description synthetic inputs are shaped from) and the executor of
// one of its functions. The one way the CLI and the output check open a
// model, so both refuse what cannot be run with the same message.
#ifndef COREMLZ_EXECUTE_LOADED_MODEL_H_
#define COREMLZ_EXECUTE_LOADED_MODEL_H_

#include <map>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "coreml/model.pb.h"
#include "execute/label_scores.h"
#include "execute/model_executor.h"
#include "format/package.h"

namespace coremlz::execute {

struct LoadedModel {
  std::unique_ptr<format::MlPackage> package;                // null for an .mlmodel file
  std::unique_ptr<CoreML::Specification::Model> file_model;  // an .mlmodel file's spec
  std::unique_ptr<ModelExecutor> executor;
  // With with_label_scores (execute/label_scores.h): each label output and
  // the float value it is the arg max of (a classifier's label: its
  // probabilities output); and, for the values among those that the
  // function returns only for that, the label output each is the scores of.
  std::map<std::string, std::string> label_scores;
  std::map<std::string, std::string> exposed_scores;

  // How checks and plans name a returned value: "scores:OUTPUT" for the
  // exposed scores of label OUTPUT, else the value's own name.
  std::string MeasuredName(const std::string& value) const {
    auto it = exposed_scores.find(value);
    return it == exposed_scores.end() ? value : kScoresLabelPrefix + it->second;
  }

  const CoreML::Specification::Model& model() const { return package ? package->model() : *file_model; }
  // The ML Program function behind `executor`, for what only programs offer
  // (incremental runs, constants by name); null for a NeuralNetwork.
  const ProgramExecutor* program() const {
    auto* p = dynamic_cast<const ProgramModelExecutor*>(executor.get());
    return p ? &p->program() : nullptr;
  }
};

// `path`: an .mlpackage directory (an ML Program, or a NeuralNetwork that
// its manifest names) or an .mlmodel file (a NeuralNetwork). NOT_FOUND when
// it does not exist. A NeuralNetwork has one function, "main".
// `with_label_scores`: an ML Program function also returns the scores its
// label outputs are the arg max of (exposed_scores).
absl::StatusOr<LoadedModel> LoadModel(const std::string& path, const std::string& function,
                                      bool with_label_scores = false);

}  // namespace coremlz::execute

#endif  // COREMLZ_EXECUTE_LOADED_MODEL_H_
