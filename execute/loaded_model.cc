#include "execute/loaded_model.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/status_macros.h"
#include "engine/decompress.h"
#include "execute/label_scores.h"
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

// A classifier's label output (its predicted feature) is the arg max of its
// probabilities output: measured by those.
void AddClassifierLabel(const CoreML::Specification::Model& model, const ModelExecutor& executor,
                        std::map<std::string, std::string>* label_scores) {
  const std::string& label = model.description().predictedfeaturename();
  const std::string& probabilities = model.description().predictedprobabilitiesname();
  if (label.empty() || probabilities.empty()) return;
  const std::vector<std::string>& outputs = executor.output_names();
  if (std::find(outputs.begin(), outputs.end(), label) == outputs.end() ||
      std::find(outputs.begin(), outputs.end(), probabilities) == outputs.end()) {
    return;
  }
  label_scores->emplace(label, probabilities);
}

// A NeuralNetwork whose argMax layers' inputs are described outputs too
// (NnScoresOfLabelOutputs), so that the executor returns them.
absl::StatusOr<std::unique_ptr<ModelExecutor>> LoadNeuralNetworkWithScores(const CoreML::Specification::Model& model,
                                                                           const std::string& function,
                                                                           LoadedModel* m) {
  std::map<std::string, std::string> scores = NnScoresOfLabelOutputs(model);
  if (scores.empty()) return LoadNeuralNetwork(model, function);
  CoreML::Specification::Model extended = model;
  for (const auto& [output, blob] : scores) {
    bool described = false;
    for (const auto& o : extended.description().output()) described = described || o.name() == blob;
    if (described) continue;
    auto* d = extended.mutable_description()->add_output();
    d->set_name(blob);
    d->mutable_type()->mutable_multiarraytype()->set_datatype(CoreML::Specification::ArrayFeatureType::FLOAT32);
    m->exposed_scores.emplace(blob, output);
  }
  m->label_scores = std::move(scores);
  return LoadNeuralNetwork(extended, function);
}

absl::StatusOr<LoadedModel> LoadAny(const std::string& path, const std::string& function,
                                    bool with_label_scores) {
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
    ASSIGN_OR_RETURN(m.executor, with_label_scores ? LoadNeuralNetworkWithScores(*m.file_model, function, &m)
                                                   : LoadNeuralNetwork(*m.file_model, function));
    return m;
  }
  ASSIGN_OR_RETURN(m.package, format::MlPackage::Open(path));
  if (format::HasNeuralNetwork(m.package->model())) {
    ASSIGN_OR_RETURN(m.executor, with_label_scores ? LoadNeuralNetworkWithScores(m.package->model(), function, &m)
                                                   : LoadNeuralNetwork(m.package->model(), function));
    return m;
  }
  if (with_label_scores) {
    // The scores join the function's outputs before the program is loaded
    // (loading decodes every weight: once, not twice). A function that does
    // not exist is left for the plain load below to report.
    const auto& mil = m.package->model().mlprogram();
    const std::string resolved = function.empty() ? DefaultFunction(m.package->model()) : function;
    absl::StatusOr<std::map<std::string, std::string>> scores = ScoresOfLabelOutputs(mil, resolved);
    if (scores.ok() && !scores->empty()) {
      std::vector<std::string> appended;
      ASSIGN_OR_RETURN(auto extended, WithExtraOutputs(mil, resolved, *scores, &appended));
      engine::PackageValueReader reader(m.package.get());
      ASSIGN_OR_RETURN(std::unique_ptr<ProgramExecutor> program, ProgramExecutor::Load(extended, &reader, resolved));
      for (const auto& [output, value] : *scores) {
        if (std::find(appended.begin(), appended.end(), value) != appended.end()) {
          m.exposed_scores.emplace(value, output);
        }
      }
      m.label_scores = *std::move(scores);
      m.executor = std::make_unique<ProgramModelExecutor>(std::move(program));
      return m;
    }
  }
  ASSIGN_OR_RETURN(std::unique_ptr<ProgramExecutor> program, ProgramExecutor::Load(m.package.get(), function));
  m.executor = std::make_unique<ProgramModelExecutor>(std::move(program));
  return m;
}

}  // namespace

absl::StatusOr<LoadedModel> LoadModel(const std::string& path, const std::string& function,
                                      bool with_label_scores) {
  ASSIGN_OR_RETURN(LoadedModel m, LoadAny(path, function, with_label_scores));
  if (with_label_scores) AddClassifierLabel(m.model(), *m.executor, &m.label_scores);
  return m;
}

}  // namespace coremlz::execute
