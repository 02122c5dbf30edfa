#include "execute/nn_layer.h"

#include <cmath>

#include "absl/strings/str_cat.h"

namespace coremlz::execute {

absl::StatusOr<const Tensor*> NnLayerSpec::Weight(const std::string& field) const {
  const Tensor* t = OptionalWeight(field);
  if (t == nullptr) return Invalid(absl::StrCat("has no ", field));
  return t;
}

const Tensor* NnLayerSpec::OptionalWeight(const std::string& field) const {
  auto it = weights.find(field);
  return it == weights.end() ? nullptr : &it->second;
}

std::string NnLayerLabel::Describe() const {
  return absl::StrCat("NeuralNetwork layer ", index, " '", name, "' (", type, ")");
}

absl::Status NnLayerLabel::Invalid(const std::string& what) const {
  return absl::InvalidArgumentError(absl::StrCat(Describe(), ": ", what));
}

absl::StatusOr<int64_t> Axis(int64_t axis, int64_t rank, const NnLayerLabel& label) {
  const int64_t a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank) return label.Invalid(absl::StrCat("axis ", axis, " is out of range for rank ", rank));
  return a;
}

absl::Status NnFloatInputs(const std::vector<const Tensor*>& in, const NnLayerLabel& label) {
  for (const Tensor* t : in) {
    if (!t->is_float()) return label.Invalid("expects float inputs");
  }
  return absl::OkStatus();
}

absl::StatusOr<int64_t> NnFloatIndex(float v, int64_t n, const NnLayerLabel& label) {
  if (!(v == std::floor(v)) || v < -static_cast<float>(n) || v >= static_cast<float>(n)) {
    return label.Invalid(absl::StrCat("index ", v, " is out of range for an axis of ", n));
  }
  const int64_t i = static_cast<int64_t>(v);
  return i < 0 ? i + n : i;
}

absl::StatusOr<Shape> NnShapeInput(const Tensor& t, const NnLayerLabel& label) {
  if (!t.is_float() || t.rank() != 1 || t.size() < 1 || t.size() > 64) {
    return label.Invalid("the shape input must be a rank-1 float tensor of 1 to 64 dims");
  }
  Shape s;
  for (float v : t.floats()) {
    if (!(v >= 0 && v == std::floor(v) && v <= static_cast<float>(MaxTensorElements()))) {
      return label.Invalid(absl::StrCat("shape value ", v, " is not a size"));
    }
    s.push_back(static_cast<int64_t>(v));
  }
  absl::Status ok = CheckShape(s);
  if (!ok.ok()) return label.Invalid(std::string(ok.message()));
  return s;
}

absl::Status NnLayerLabel::Unimplemented(const std::string& what) const {
  return absl::UnimplementedError(absl::StrCat(Describe(), ": ", what, " is not implemented by the reference executor"));
}

const std::map<std::string, NnLayerBuilder>& NnLayerBuilders() {
  static const auto* builders = new std::map<std::string, NnLayerBuilder>{
      {"convolution", BuildConvolution},
      {"pooling", BuildPooling},
      {"innerProduct", BuildInnerProduct},
      {"batchnorm", BuildBatchnorm},
      {"softmax", BuildSoftmax},
      {"activation", BuildActivation},
      {"unary", BuildUnary},
      {"add", BuildAdd},
      {"multiply", BuildMultiply},
      {"average", BuildAverage},
      {"max", BuildMax},
      {"min", BuildMin},
      {"maxBroadcastable", BuildMaxBroadcastable},
      {"minBroadcastable", BuildMinBroadcastable},
      {"addBroadcastable", BuildAddBroadcastable},
      {"multiplyBroadcastable", BuildMultiplyBroadcastable},
      {"flatten", BuildFlatten},
      {"transpose", BuildTranspose},
      {"permute", BuildPermute},
      {"reshape", BuildReshape},
      {"reorganizeData", BuildReorganizeData},
      {"concat", BuildConcat},
      {"loadConstant", BuildLoadConstant},
      {"loadConstantND", BuildLoadConstantND},
      {"lrn", BuildLrn},
      {"l2normalize", BuildL2Normalize},
      {"mvn", BuildMvn},
      {"scale", BuildScale},
      {"bias", BuildBias},
      {"reduce", BuildReduce},
      {"padding", BuildPadding},
      {"crop", BuildCrop},
      {"upsample", BuildUpsample},
      {"slice", BuildSlice},
      {"reshapeStatic", BuildReshapeStatic},
      {"flattenTo2D", BuildFlattenTo2D},
      {"squeeze", BuildSqueeze},
      {"expandDims", BuildExpandDims},
      {"concatND", BuildConcatND},
      {"softmaxND", BuildSoftmaxND},
      {"sliceStatic", BuildSliceStatic},
      {"clip", BuildClip},
      {"embedding", BuildEmbedding},
      {"embeddingND", BuildEmbedding},
      {"subtractBroadcastable", BuildSubtractBroadcastable},
      {"divideBroadcastable", BuildDivideBroadcastable},
      {"powBroadcastable", BuildPowBroadcastable},
      {"floorDivBroadcastable", BuildFloorDivBroadcastable},
      {"modBroadcastable", BuildModBroadcastable},
      {"ceil", BuildUnaryND},
      {"floor", BuildUnaryND},
      {"sign", BuildUnaryND},
      {"round", BuildUnaryND},
      {"exp2", BuildUnaryND},
      {"sin", BuildUnaryND},
      {"cos", BuildUnaryND},
      {"tan", BuildUnaryND},
      {"asin", BuildUnaryND},
      {"acos", BuildUnaryND},
      {"atan", BuildUnaryND},
      {"sinh", BuildUnaryND},
      {"cosh", BuildUnaryND},
      {"tanh", BuildUnaryND},
      {"asinh", BuildUnaryND},
      {"acosh", BuildUnaryND},
      {"atanh", BuildUnaryND},
      {"erf", BuildUnaryND},
      {"logicalNot", BuildUnaryND},
      {"gelu", BuildGelu},
      {"equal", BuildComparison},
      {"notEqual", BuildComparison},
      {"lessThan", BuildComparison},
      {"lessEqual", BuildComparison},
      {"greaterThan", BuildComparison},
      {"greaterEqual", BuildComparison},
      {"logicalAnd", BuildLogical},
      {"logicalOr", BuildLogical},
      {"logicalXor", BuildLogical},
      {"split", BuildSplit},
      {"splitND", BuildSplitND},
      {"simpleRecurrent", BuildSimpleRecurrent},
      {"gru", BuildGru},
      {"uniDirectionalLSTM", BuildUniDirectionalLstm},
      {"biDirectionalLSTM", BuildBiDirectionalLstm},
      {"batchedMatmul", BuildBatchedMatmul},
      {"layerNormalization", BuildLayerNormalization},
      {"reduceL1", BuildReduceND},
      {"reduceL2", BuildReduceND},
      {"reduceMax", BuildReduceND},
      {"reduceMin", BuildReduceND},
      {"reduceSum", BuildReduceND},
      {"reduceProd", BuildReduceND},
      {"reduceMean", BuildReduceND},
      {"reduceLogSum", BuildReduceND},
      {"reduceSumSquare", BuildReduceND},
      {"reduceLogSumExp", BuildReduceND},
      {"argMax", BuildArgMaxMin},
      {"argMin", BuildArgMaxMin},
      {"topK", BuildTopK},
      {"copy", BuildCopy},
      {"tile", BuildTile},
      {"stack", BuildStack},
      {"gather", BuildGather},
      {"gatherAlongAxis", BuildGatherAlongAxis},
      {"whereBroadcastable", BuildWhereBroadcastable},
      {"reverse", BuildReverse},
      {"lowerTriangular", BuildTriangular},
      {"upperTriangular", BuildTriangular},
      {"matrixBandPart", BuildTriangular},
      {"getShape", BuildGetShape},
      {"fillLike", BuildFillLike},
      {"fillStatic", BuildFillStatic},
      {"broadcastToLike", BuildBroadcastToLike},
      {"broadcastToStatic", BuildBroadcastToStatic},
      {"rangeStatic", BuildRangeStatic},
      {"constantPad", BuildConstantPad},
      {"oneHot", BuildOneHot},
      {"whereNonZero", BuildWhereNonZero},
      {"reshapeLike", BuildReshapeLike},
      {"reshapeDynamic", BuildReshapeDynamic},
      {"fillDynamic", BuildFillDynamic},
      {"broadcastToDynamic", BuildBroadcastToDynamic},
      {"rangeDynamic", BuildRangeDynamic},
      {"rankPreservingReshape", BuildRankPreservingReshape},
      {"argSort", BuildArgSort},
      {"cumSum", BuildCumSum},
      {"dot", BuildDot},
      {"clampedReLU", BuildClampedRelu},
      {"resizeBilinear", BuildResizeBilinear},
      {"cropResize", BuildCropResize},
      {"gatherND", BuildGatherND},
      {"scatter", BuildScatter},
      {"scatterND", BuildScatter},
      {"scatterAlongAxis", BuildScatter},
      {"sliceDynamic", BuildSliceDynamic},
      {"sliceBySize", BuildSliceBySize},
      {"reverseSeq", BuildReverseSeq},
      {"slidingWindows", BuildSlidingWindows},
      {"categoricalDistribution", BuildCategoricalDistribution},
      {"randomNormalLike", BuildRandomFill},
      {"randomNormalStatic", BuildRandomFill},
      {"randomNormalDynamic", BuildRandomFill},
      {"randomUniformLike", BuildRandomFill},
      {"randomUniformStatic", BuildRandomFill},
      {"randomUniformDynamic", BuildRandomFill},
      {"randomBernoulliLike", BuildRandomFill},
      {"randomBernoulliStatic", BuildRandomFill},
      {"randomBernoulliDynamic", BuildRandomFill},
  };
  return *builders;
}

absl::Status CheckNnLayerInputs(const NnLayerSpec& spec) {
  struct Arity {
    int min, max;
  };
  static const auto* arity = new std::map<std::string, Arity>{
      {"add", {1, 1 << 20}},        {"multiply", {1, 1 << 20}},
      {"average", {2, 1 << 20}},    {"max", {2, 1 << 20}},
      {"min", {2, 1 << 20}},        {"concat", {1, 1 << 20}},
      {"concatND", {1, 1 << 20}},
      {"maxBroadcastable", {2, 2}}, {"minBroadcastable", {2, 2}},
      {"addBroadcastable", {2, 2}}, {"multiplyBroadcastable", {2, 2}},
      {"loadConstant", {0, 0}},     {"loadConstantND", {0, 0}},
      {"simpleRecurrent", {1, 2}},  {"gru", {1, 2}},
      {"uniDirectionalLSTM", {1, 3}}, {"biDirectionalLSTM", {1, 5}},
      {"subtractBroadcastable", {2, 2}}, {"divideBroadcastable", {2, 2}},
      {"powBroadcastable", {2, 2}}, {"floorDivBroadcastable", {2, 2}},
      {"modBroadcastable", {2, 2}},
      {"equal", {1, 2}},            {"notEqual", {1, 2}},
      {"lessThan", {1, 2}},         {"lessEqual", {1, 2}},
      {"greaterThan", {1, 2}},      {"greaterEqual", {1, 2}},
      {"logicalAnd", {2, 2}},       {"logicalOr", {2, 2}},
      {"logicalXor", {2, 2}},
      {"batchedMatmul", {1, 2}},    {"topK", {1, 2}},
      {"stack", {1, 1 << 20}},      {"gather", {2, 2}},
      {"gatherAlongAxis", {2, 2}},  {"whereBroadcastable", {3, 3}},
      {"broadcastToLike", {2, 2}},  {"fillStatic", {0, 0}},
      {"rangeStatic", {0, 0}},
      {"oneHot", {1, 2}},           {"cumSum", {1, 2}},
      {"dot", {2, 2}},              {"reshapeLike", {2, 2}},
      {"reshapeDynamic", {2, 2}},   {"broadcastToDynamic", {2, 2}},
      {"rangeDynamic", {1, 3}},
      {"cropResize", {2, 2}},       {"gatherND", {2, 2}},
      {"scatter", {3, 3}},          {"scatterND", {3, 3}},
      {"scatterAlongAxis", {3, 3}}, {"sliceDynamic", {2, 7}},
      {"sliceBySize", {2, 2}},      {"reverseSeq", {2, 2}},
      {"constantPad", {1, 2}},
      {"randomNormalStatic", {0, 0}}, {"randomUniformStatic", {0, 0}},
      {"randomBernoulliStatic", {0, 0}},
  };
  auto it = arity->find(spec.type);
  const Arity a = it == arity->end() ? Arity{1, 1} : it->second;  // the rest read one input
  if (spec.input_count >= a.min && spec.input_count <= a.max) return absl::OkStatus();
  if (spec.input_count > a.max && a.max >= 1) {
    return spec.Unimplemented(absl::StrCat("the form with ", spec.input_count, " inputs"));
  }
  return spec.Invalid(absl::StrCat("has ", spec.input_count, " inputs"));
}

absl::Status CheckNnLayerOutputs(const NnLayerSpec& spec) {
  static const auto* most = new std::map<std::string, int>{
      {"split", 1 << 20}, {"splitND", 1 << 20}, {"topK", 2},
      {"simpleRecurrent", 2}, {"gru", 2}, {"uniDirectionalLSTM", 3}, {"biDirectionalLSTM", 5},
  };
  auto it = most->find(spec.type);
  const int max = it == most->end() ? 1 : it->second;
  if (spec.output_count >= 1 && spec.output_count <= max) return absl::OkStatus();
  return spec.Invalid(absl::StrCat("has ", spec.output_count, " outputs"));
}

std::string NnLayerTypeName(int number) {
  // NeuralNetworkLayer's `layer` oneof (Core ML's NeuralNetwork.proto).
  static const auto* names = new std::map<int, std::string>{
      {100, "convolution"},
      {120, "pooling"},
      {130, "activation"},
      {140, "innerProduct"},
      {150, "embedding"},
      {160, "batchnorm"},
      {165, "mvn"},
      {170, "l2normalize"},
      {175, "softmax"},
      {180, "lrn"},
      {190, "crop"},
      {200, "padding"},
      {210, "upsample"},
      {211, "resizeBilinear"},
      {212, "cropResize"},
      {220, "unary"},
      {230, "add"},
      {231, "multiply"},
      {240, "average"},
      {245, "scale"},
      {250, "bias"},
      {260, "max"},
      {261, "min"},
      {270, "dot"},
      {280, "reduce"},
      {290, "loadConstant"},
      {300, "reshape"},
      {301, "flatten"},
      {310, "permute"},
      {320, "concat"},
      {330, "split"},
      {340, "sequenceRepeat"},
      {345, "reorganizeData"},
      {350, "slice"},
      {400, "simpleRecurrent"},
      {410, "gru"},
      {420, "uniDirectionalLSTM"},
      {430, "biDirectionalLSTM"},
      {500, "custom"},
      {600, "copy"},
      {605, "branch"},
      {615, "loop"},
      {620, "loopBreak"},
      {625, "loopContinue"},
      {635, "rangeStatic"},
      {640, "rangeDynamic"},
      {660, "clip"},
      {665, "ceil"},
      {670, "floor"},
      {680, "sign"},
      {685, "round"},
      {700, "exp2"},
      {710, "sin"},
      {715, "cos"},
      {720, "tan"},
      {730, "asin"},
      {735, "acos"},
      {740, "atan"},
      {750, "sinh"},
      {755, "cosh"},
      {760, "tanh"},
      {770, "asinh"},
      {775, "acosh"},
      {780, "atanh"},
      {790, "erf"},
      {795, "gelu"},
      {815, "equal"},
      {820, "notEqual"},
      {825, "lessThan"},
      {827, "lessEqual"},
      {830, "greaterThan"},
      {832, "greaterEqual"},
      {840, "logicalOr"},
      {845, "logicalXor"},
      {850, "logicalNot"},
      {855, "logicalAnd"},
      {865, "modBroadcastable"},
      {870, "minBroadcastable"},
      {875, "maxBroadcastable"},
      {880, "addBroadcastable"},
      {885, "powBroadcastable"},
      {890, "divideBroadcastable"},
      {895, "floorDivBroadcastable"},
      {900, "multiplyBroadcastable"},
      {905, "subtractBroadcastable"},
      {920, "tile"},
      {925, "stack"},
      {930, "gather"},
      {935, "scatter"},
      {940, "gatherND"},
      {945, "scatterND"},
      {950, "softmaxND"},
      {952, "gatherAlongAxis"},
      {954, "scatterAlongAxis"},
      {960, "reverse"},
      {965, "reverseSeq"},
      {975, "splitND"},
      {980, "concatND"},
      {985, "transpose"},
      {995, "sliceStatic"},
      {1000, "sliceDynamic"},
      {1005, "slidingWindows"},
      {1015, "topK"},
      {1020, "argMin"},
      {1025, "argMax"},
      {1040, "embeddingND"},
      {1045, "batchedMatmul"},
      {1065, "getShape"},
      {1070, "loadConstantND"},
      {1080, "fillLike"},
      {1085, "fillStatic"},
      {1090, "fillDynamic"},
      {1100, "broadcastToLike"},
      {1105, "broadcastToStatic"},
      {1110, "broadcastToDynamic"},
      {1120, "squeeze"},
      {1125, "expandDims"},
      {1130, "flattenTo2D"},
      {1135, "reshapeLike"},
      {1140, "reshapeStatic"},
      {1145, "reshapeDynamic"},
      {1150, "rankPreservingReshape"},
      {1170, "randomNormalLike"},
      {1175, "randomNormalStatic"},
      {1180, "randomNormalDynamic"},
      {1190, "randomUniformLike"},
      {1195, "randomUniformStatic"},
      {1200, "randomUniformDynamic"},
      {1210, "randomBernoulliLike"},
      {1215, "randomBernoulliStatic"},
      {1220, "randomBernoulliDynamic"},
      {1230, "categoricalDistribution"},
      {1250, "reduceL1"},
      {1255, "reduceL2"},
      {1260, "reduceMax"},
      {1265, "reduceMin"},
      {1270, "reduceSum"},
      {1275, "reduceProd"},
      {1280, "reduceMean"},
      {1285, "reduceLogSum"},
      {1290, "reduceSumSquare"},
      {1295, "reduceLogSumExp"},
      {1313, "whereNonZero"},
      {1315, "matrixBandPart"},
      {1320, "lowerTriangular"},
      {1325, "upperTriangular"},
      {1330, "whereBroadcastable"},
      {1350, "layerNormalization"},
      {1155, "constantPad"},
      {1450, "oneHot"},
      {1455, "cumSum"},
      {1460, "clampedReLU"},
      {1461, "argSort"},
      {1470, "sliceBySize"},
      {1471, "convolution3d"},
  };
  auto it = names->find(number);
  return it == names->end() ? absl::StrCat("field ", number) : it->second;
}

}  // namespace coremlz::execute
