// What kind of model a Core ML specification holds, in the words of
// Model.proto's `Type` oneof ("mlProgram", "neuralNetworkClassifier",
// "pipeline", "treeEnsembleRegressor", ...), for dispatch and for errors that
// say what a model is when coremlz cannot compress it.
#ifndef COREMLZ_FORMAT_MODEL_TYPE_H_
#define COREMLZ_FORMAT_MODEL_TYPE_H_

#include <string>

#include "coreml/model.pb.h"

namespace coremlz::format {

// The oneof field's name. Types this wire subset does not declare (trees,
// GLMs, feature engineering, ...) arrive as unknown fields: their name comes
// from Core ML's field numbers, or "Model field N" for a number not known
// here; "no model type" when the spec holds none.
std::string ModelTypeName(const CoreML::Specification::Model& model);

}  // namespace coremlz::format

#endif  // COREMLZ_FORMAT_MODEL_TYPE_H_
