// A model file opened for the reference executor: the package (whose
// description synthetic inputs are shaped from) and the executor of one of
// its functions. The one way the CLI and the output check open a model, so
// both refuse what cannot be run with the same message.
#ifndef COREMLZ_EXECUTE_LOADED_MODEL_H_
#define COREMLZ_EXECUTE_LOADED_MODEL_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "execute/program_executor.h"
#include "format/package.h"

namespace coremlz::execute {

struct LoadedModel {
  std::unique_ptr<format::MlPackage> package;
  std::unique_ptr<ProgramExecutor> executor;
};

// `path`: an .mlpackage directory (ML Program). NOT_FOUND when it does not
// exist; UNIMPLEMENTED for a NeuralNetwork .mlmodel (not executed yet).
absl::StatusOr<LoadedModel> LoadModel(const std::string& path, const std::string& function);

}  // namespace coremlz::execute

#endif  // COREMLZ_EXECUTE_LOADED_MODEL_H_
