#include "format/model_type.h"

#include "absl/strings/str_cat.h"
#include "google/protobuf/unknown_field_set.h"

namespace coremlz::format {
namespace {

// Model.proto's `Type` oneof members that coreml/model.proto leaves out.
const char* UndeclaredTypeName(int number) {
  switch (number) {
    case 300: return "glmRegressor";
    case 301: return "supportVectorRegressor";
    case 302: return "treeEnsembleRegressor";
    case 304: return "bayesianProbitRegressor";
    case 400: return "glmClassifier";
    case 401: return "supportVectorClassifier";
    case 402: return "treeEnsembleClassifier";
    case 404: return "kNearestNeighborsClassifier";
    case 501: return "itemSimilarityRecommender";
    case 555: return "customModel";
    case 556: return "linkedModel";
    case 600: return "oneHotEncoder";
    case 601: return "imputer";
    case 602: return "featureVectorizer";
    case 603: return "dictVectorizer";
    case 604: return "scaler";
    case 606: return "categoricalMapping";
    case 607: return "normalizer";
    case 609: return "arrayFeatureExtractor";
    case 610: return "nonMaximumSuppression";
    case 900: return "identity";
    default: return nullptr;
  }
}

}  // namespace

std::string ModelTypeName(const CoreML::Specification::Model& model) {
  const google::protobuf::OneofDescriptor* oneof = model.GetDescriptor()->FindOneofByName("Type");
  if (oneof != nullptr) {
    const google::protobuf::FieldDescriptor* set = model.GetReflection()->GetOneofFieldDescriptor(model, oneof);
    if (set != nullptr) return set->name();
  }
  // The oneof's members all have numbers of 200 and above; lower unknown
  // fields are something else (a newer top-level field).
  const google::protobuf::UnknownFieldSet& unknown = model.GetReflection()->GetUnknownFields(model);
  for (int i = 0; i < unknown.field_count(); ++i) {
    const int number = unknown.field(i).number();
    if (number < 200) continue;
    if (const char* name = UndeclaredTypeName(number)) return name;
    return absl::StrCat("Model field ", number);
  }
  return "no model type";
}

}  // namespace coremlz::format
