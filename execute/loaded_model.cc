#include "execute/loaded_model.h"

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/status_macros.h"

namespace coremlz::execute {

absl::StatusOr<LoadedModel> LoadModel(const std::string& path, const std::string& function) {
  if (!IsDirectory(path)) {
    if (!PathExists(path)) return absl::NotFoundError(absl::StrCat(path, " does not exist"));
    return absl::UnimplementedError(absl::StrCat(
        path, ": the reference executor runs ML Programs (.mlpackage); NeuralNetwork .mlmodel files are not executed yet"));
  }
  LoadedModel m;
  ASSIGN_OR_RETURN(m.package, format::MlPackage::Open(path));
  ASSIGN_OR_RETURN(m.executor, ProgramExecutor::Load(m.package.get(), function));
  return m;
}

}  // namespace coremlz::execute
