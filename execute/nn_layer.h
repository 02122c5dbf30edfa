// One NeuralNetwork layer as the NN executor sees it: what a layer's builder
// reads at load (its parameters, decoded weights) and the kernel it returns.
// The builders live in nn_layers_*.cc, one file per family; NnLayerBuilders
// maps a layer type ("convolution", "pooling", ...) to its builder.
//
// Tensor layout: blobs keep the rank they have. With the rank-5 mapping of
// specification versions <= 3 inputs are [Seq, Batch, C, H, W]; with the
// exact mappings of later versions they have their declared rank. The old
// layers address axes from the end (C = -3, H = -2, W = -1) and treat the
// leading ones as batch, so one kernel serves both.
#ifndef COREMLZ_EXECUTE_NN_LAYER_H_
#define COREMLZ_EXECUTE_NN_LAYER_H_

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "execute/nn_wire.h"
#include "execute/tensor.h"

namespace coremlz::execute {

// Which layer a message is about: kernels keep this, not the whole spec.
struct NnLayerLabel {
  std::string name;
  std::string type;  // the oneof member's name, e.g. "innerProduct"
  int index = 0;     // position in the network

  // "NeuralNetwork layer 3 'name' (type)", for messages.
  std::string Describe() const;
  // An INVALID_ARGUMENT / UNIMPLEMENTED status naming the layer.
  absl::Status Invalid(const std::string& what) const;
  absl::Status Unimplemented(const std::string& what) const;
};

// `axis` (negative counts from the end) as an index into `rank` dims, or
// INVALID_ARGUMENT naming the layer.
absl::StatusOr<int64_t> Axis(int64_t axis, int64_t rank, const NnLayerLabel& label);
// Every input is float (INVALID_ARGUMENT naming the layer otherwise).
absl::Status NnFloatInputs(const std::vector<const Tensor*>& in, const NnLayerLabel& label);
// An index held as a float, in [-n, n); a negative one counts from the end.
absl::StatusOr<int64_t> NnFloatIndex(float v, int64_t n, const NnLayerLabel& label);
// The shape a rank-1 float input holds: 1 to 64 dims, each a size, within
// the tensor limit.
absl::StatusOr<Shape> NnShapeInput(const Tensor& t, const NnLayerLabel& label);

struct NnLayerSpec : NnLayerLabel {
  WireMessage params;  // the layer's parameter message
  int input_count = 0;
  int output_count = 0;
  // Weights decoded through format/ (fp16, linear and LUT quantized alike),
  // by field ("weights", "bias", "PReLU.alpha", ...), shaped as the layer
  // defines them.
  std::map<std::string, Tensor> weights;

  // The weight `field`, or INVALID_ARGUMENT naming the layer.
  absl::StatusOr<const Tensor*> Weight(const std::string& field) const;
  const Tensor* OptionalWeight(const std::string& field) const;
};

using NnKernel = std::function<absl::StatusOr<std::vector<Tensor>>(const std::vector<const Tensor*>& inputs)>;
using NnLayerBuilder = absl::StatusOr<NnKernel> (*)(const NnLayerSpec& spec);

// Layer type -> builder, for every layer type the executor runs.
const std::map<std::string, NnLayerBuilder>& NnLayerBuilders();

// Checks the layer's input count against what its kernel reads, so that a
// form the kernel does not know (a convolution given its weights as a
// second input) is refused rather than half read.
absl::Status CheckNnLayerInputs(const NnLayerSpec& spec);
// The same for the outputs: one, except for the layers that give several
// (split, splitND, topK, the recurrent layers' final states), whose
// builders check the exact count.
absl::Status CheckNnLayerOutputs(const NnLayerSpec& spec);

// The layer type the NeuralNetworkLayer oneof field `number` names ("field
// N" for one this table does not know).
std::string NnLayerTypeName(int number);

// Builders, by family (nn_layers_conv.cc, nn_layers_dense.cc,
// nn_layers_elementwise.cc, nn_layers_shape.cc, then the files named).
absl::StatusOr<NnKernel> BuildConvolution(const NnLayerSpec& spec);
absl::StatusOr<NnKernel> BuildPooling(const NnLayerSpec& spec);
absl::StatusOr<NnKernel> BuildInnerProduct(const NnLayerSpec& spec);
absl::StatusOr<NnKernel> BuildBatchnorm(const NnLayerSpec& spec);
absl::StatusOr<NnKernel> BuildSoftmax(const NnLayerSpec& spec);
absl::StatusOr<NnKernel> BuildActivation(const NnLayerSpec& spec);
absl::StatusOr<NnKernel> BuildUnary(const NnLayerSpec& spec);
absl::StatusOr<NnKernel> BuildAdd(const NnLayerSpec& spec);
absl::StatusOr<NnKernel> BuildMultiply(const NnLayerSpec& spec);
absl::StatusOr<NnKernel> BuildAverage(const NnLayerSpec& spec);
absl::StatusOr<NnKernel> BuildMax(const NnLayerSpec& spec);
absl::StatusOr<NnKernel> BuildMin(const NnLayerSpec& spec);
absl::StatusOr<NnKernel> BuildMaxBroadcastable(const NnLayerSpec& spec);
absl::StatusOr<NnKernel> BuildMinBroadcastable(const NnLayerSpec& spec);
absl::StatusOr<NnKernel> BuildAddBroadcastable(const NnLayerSpec& spec);
absl::StatusOr<NnKernel> BuildMultiplyBroadcastable(const NnLayerSpec& spec);
absl::StatusOr<NnKernel> BuildFlatten(const NnLayerSpec& spec);
absl::StatusOr<NnKernel> BuildTranspose(const NnLayerSpec& spec);
absl::StatusOr<NnKernel> BuildPermute(const NnLayerSpec& spec);
absl::StatusOr<NnKernel> BuildReshape(const NnLayerSpec& spec);
absl::StatusOr<NnKernel> BuildReorganizeData(const NnLayerSpec& spec);
absl::StatusOr<NnKernel> BuildConcat(const NnLayerSpec& spec);
absl::StatusOr<NnKernel> BuildLoadConstant(const NnLayerSpec& spec);
absl::StatusOr<NnKernel> BuildLoadConstantND(const NnLayerSpec& spec);
// nn_layers_norm.cc
absl::StatusOr<NnKernel> BuildLrn(const NnLayerSpec& spec);
absl::StatusOr<NnKernel> BuildL2Normalize(const NnLayerSpec& spec);
absl::StatusOr<NnKernel> BuildMvn(const NnLayerSpec& spec);
absl::StatusOr<NnKernel> BuildScale(const NnLayerSpec& spec);
absl::StatusOr<NnKernel> BuildBias(const NnLayerSpec& spec);
absl::StatusOr<NnKernel> BuildReduce(const NnLayerSpec& spec);
// nn_layers_spatial.cc
absl::StatusOr<NnKernel> BuildPadding(const NnLayerSpec& spec);
absl::StatusOr<NnKernel> BuildCrop(const NnLayerSpec& spec);
absl::StatusOr<NnKernel> BuildUpsample(const NnLayerSpec& spec);
absl::StatusOr<NnKernel> BuildSlice(const NnLayerSpec& spec);
// nn_layers_nd.cc
absl::StatusOr<NnKernel> BuildReshapeStatic(const NnLayerSpec& spec);
absl::StatusOr<NnKernel> BuildFlattenTo2D(const NnLayerSpec& spec);
absl::StatusOr<NnKernel> BuildSqueeze(const NnLayerSpec& spec);
absl::StatusOr<NnKernel> BuildExpandDims(const NnLayerSpec& spec);
absl::StatusOr<NnKernel> BuildConcatND(const NnLayerSpec& spec);
absl::StatusOr<NnKernel> BuildSoftmaxND(const NnLayerSpec& spec);
absl::StatusOr<NnKernel> BuildSliceStatic(const NnLayerSpec& spec);
absl::StatusOr<NnKernel> BuildClip(const NnLayerSpec& spec);
absl::StatusOr<NnKernel> BuildEmbedding(const NnLayerSpec& spec);
// nn_layers_elementwise.cc, the ND additions
absl::StatusOr<NnKernel> BuildSubtractBroadcastable(const NnLayerSpec& spec);
absl::StatusOr<NnKernel> BuildDivideBroadcastable(const NnLayerSpec& spec);
absl::StatusOr<NnKernel> BuildPowBroadcastable(const NnLayerSpec& spec);
absl::StatusOr<NnKernel> BuildFloorDivBroadcastable(const NnLayerSpec& spec);
absl::StatusOr<NnKernel> BuildModBroadcastable(const NnLayerSpec& spec);
absl::StatusOr<NnKernel> BuildUnaryND(const NnLayerSpec& spec);  // ceil, floor, sin, erf, logicalNot, ...
absl::StatusOr<NnKernel> BuildGelu(const NnLayerSpec& spec);
absl::StatusOr<NnKernel> BuildComparison(const NnLayerSpec& spec);  // equal, lessThan, ...
absl::StatusOr<NnKernel> BuildLogical(const NnLayerSpec& spec);     // logicalAnd, logicalOr, logicalXor
absl::StatusOr<NnKernel> BuildClampedRelu(const NnLayerSpec& spec);
// nn_layers_split.cc
absl::StatusOr<NnKernel> BuildSplit(const NnLayerSpec& spec);
absl::StatusOr<NnKernel> BuildSplitND(const NnLayerSpec& spec);
// nn_layers_recurrent.cc
absl::StatusOr<NnKernel> BuildSimpleRecurrent(const NnLayerSpec& spec);
absl::StatusOr<NnKernel> BuildGru(const NnLayerSpec& spec);
absl::StatusOr<NnKernel> BuildUniDirectionalLstm(const NnLayerSpec& spec);
absl::StatusOr<NnKernel> BuildBiDirectionalLstm(const NnLayerSpec& spec);
// nn_layers_nd_math.cc
absl::StatusOr<NnKernel> BuildBatchedMatmul(const NnLayerSpec& spec);
absl::StatusOr<NnKernel> BuildLayerNormalization(const NnLayerSpec& spec);
absl::StatusOr<NnKernel> BuildReduceND(const NnLayerSpec& spec);  // reduceSum, reduceMean, ...
absl::StatusOr<NnKernel> BuildArgMaxMin(const NnLayerSpec& spec);
absl::StatusOr<NnKernel> BuildTopK(const NnLayerSpec& spec);
absl::StatusOr<NnKernel> BuildArgSort(const NnLayerSpec& spec);
absl::StatusOr<NnKernel> BuildCumSum(const NnLayerSpec& spec);
absl::StatusOr<NnKernel> BuildDot(const NnLayerSpec& spec);
// nn_layers_nd_data.cc
absl::StatusOr<NnKernel> BuildCopy(const NnLayerSpec& spec);
absl::StatusOr<NnKernel> BuildTile(const NnLayerSpec& spec);
absl::StatusOr<NnKernel> BuildStack(const NnLayerSpec& spec);
absl::StatusOr<NnKernel> BuildGather(const NnLayerSpec& spec);
absl::StatusOr<NnKernel> BuildGatherAlongAxis(const NnLayerSpec& spec);
absl::StatusOr<NnKernel> BuildWhereBroadcastable(const NnLayerSpec& spec);
absl::StatusOr<NnKernel> BuildReverse(const NnLayerSpec& spec);
absl::StatusOr<NnKernel> BuildTriangular(const NnLayerSpec& spec);  // lower/upperTriangular, matrixBandPart
absl::StatusOr<NnKernel> BuildGetShape(const NnLayerSpec& spec);
absl::StatusOr<NnKernel> BuildFillLike(const NnLayerSpec& spec);
absl::StatusOr<NnKernel> BuildFillStatic(const NnLayerSpec& spec);
absl::StatusOr<NnKernel> BuildBroadcastToLike(const NnLayerSpec& spec);
absl::StatusOr<NnKernel> BuildBroadcastToStatic(const NnLayerSpec& spec);
absl::StatusOr<NnKernel> BuildRangeStatic(const NnLayerSpec& spec);
absl::StatusOr<NnKernel> BuildConstantPad(const NnLayerSpec& spec);
absl::StatusOr<NnKernel> BuildOneHot(const NnLayerSpec& spec);
absl::StatusOr<NnKernel> BuildWhereNonZero(const NnLayerSpec& spec);
// nn_layers_nd_dynamic.cc
absl::StatusOr<NnKernel> BuildReshapeLike(const NnLayerSpec& spec);
absl::StatusOr<NnKernel> BuildReshapeDynamic(const NnLayerSpec& spec);
absl::StatusOr<NnKernel> BuildFillDynamic(const NnLayerSpec& spec);
absl::StatusOr<NnKernel> BuildBroadcastToDynamic(const NnLayerSpec& spec);
absl::StatusOr<NnKernel> BuildRangeDynamic(const NnLayerSpec& spec);
absl::StatusOr<NnKernel> BuildRankPreservingReshape(const NnLayerSpec& spec);
// nn_layers_resize.cc
absl::StatusOr<NnKernel> BuildResizeBilinear(const NnLayerSpec& spec);
absl::StatusOr<NnKernel> BuildCropResize(const NnLayerSpec& spec);
// nn_layers_scatter.cc
absl::StatusOr<NnKernel> BuildGatherND(const NnLayerSpec& spec);
absl::StatusOr<NnKernel> BuildScatter(const NnLayerSpec& spec);  // scatter, scatterND, scatterAlongAxis
// nn_layers_slice.cc
absl::StatusOr<NnKernel> BuildSliceDynamic(const NnLayerSpec& spec);
absl::StatusOr<NnKernel> BuildSliceBySize(const NnLayerSpec& spec);
absl::StatusOr<NnKernel> BuildReverseSeq(const NnLayerSpec& spec);
absl::StatusOr<NnKernel> BuildSlidingWindows(const NnLayerSpec& spec);
// nn_layers_random.cc
absl::StatusOr<NnKernel> BuildCategoricalDistribution(const NnLayerSpec& spec);
absl::StatusOr<NnKernel> BuildRandomFill(const NnLayerSpec& spec);  // randomNormal/Uniform/Bernoulli*

// The strided slice of sliceStatic and sliceDynamic (nn_layers_nd.cc): one
// entry per axis of x in each vector.
struct NnSliceArgs {
  std::vector<int64_t> begin, end, strides, begin_mask, end_mask, squeeze;
};
absl::StatusOr<Tensor> NnStridedSlice(const Tensor& x, const NnSliceArgs& args, const NnLayerLabel& label);

}  // namespace coremlz::execute

#endif  // COREMLZ_EXECUTE_NN_LAYER_H_
