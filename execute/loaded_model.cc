#include "execute/loaded_model.h"

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/status_macros.h"
#include "execute/nn_executor.h"
#include "format/neural_network_weights.h"

namespace coremlz::execute {
namespace {

absl::StatusOr<std::unique_ptr<ModelExecutor>> LoadNeuralNetwork(const CoreML::Specification::Model& model,
                                                                 const std::string& function) {
  if (!function.empty() && function != "main") {
    return absl::InvalidArgumentError(
        absl::StrCat("a NeuralNetwork has one function, main; there is no function '", function, "'"));
  }
  ASSIGN_OR_RETURN(std::unique_ptr<NnExecutor> nn, NnExecutor::Load(model));
  return std::unique_ptr<ModelExecutor>(std::move(nn));
}

}  // namespace

absl::StatusOr<LoadedModel> LoadModel(const std::string& path, const std::string& function) {
  LoadedModel m;
  if (!IsDirectory(path)) {
    if (!PathExists(path)) return absl::NotFoundError(absl::StrCat(path, " does not exist"));
    ASSIGN_OR_RETURN(std::string bytes, ReadFile(path));
    ASSIGN_OR_RETURN(CoreML::Specification::Model spec, format::ParseModelSpec(bytes, path));
    if (!format::HasNeuralNetwork(spec)) {
      return absl::UnimplementedError(absl::StrCat(
          path,
          ": the reference executor runs NeuralNetwork .mlmodel files and .mlpackage directories; this file "
          "holds neither a NeuralNetwork nor a package's ML Program"));
    }
    m.file_model = std::make_unique<CoreML::Specification::Model>(std::move(spec));
    ASSIGN_OR_RETURN(m.executor, LoadNeuralNetwork(*m.file_model, function));
    return m;
  }
  ASSIGN_OR_RETURN(m.package, format::MlPackage::Open(path));
  if (format::HasNeuralNetwork(m.package->model())) {
    ASSIGN_OR_RETURN(m.executor, LoadNeuralNetwork(m.package->model(), function));
    return m;
  }
  ASSIGN_OR_RETURN(std::unique_ptr<ProgramExecutor> program, ProgramExecutor::Load(m.package.get(), function));
  m.executor = std::make_unique<ProgramModelExecutor>(std::move(program));
  return m;
}

}  // namespace coremlz::execute
