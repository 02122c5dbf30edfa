// NeuralNetwork ND layers whose output shape comes from an input's values
// or shape: reshapeLike, reshapeDynamic, fillDynamic, broadcastToDynamic,
// rangeDynamic; and the shape-preserving rankPreservingReshape. A shape
// read from a tensor must hold whole, non-negative numbers and is checked
// against the tensor size limit before anything is allocated.
#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "execute/broadcast.h"
#include "execute/nn_layer.h"

namespace coremlz::execute {
namespace {


absl::StatusOr<std::vector<Tensor>> Reshaped(const Tensor& x, Shape shape, const NnLayerLabel& label) {
  if (NumElements(shape) != x.size()) return label.Invalid("the new shape does not hold the input's elements");
  Tensor y = x;
  y.Reshape(std::move(shape));
  return Outputs(std::move(y));
}

// A scalar input (rank 0 or [1]) as a double.
absl::StatusOr<double> Scalar(const Tensor& t, const NnLayerLabel& label) {
  if (!t.is_float() || t.size() != 1) return label.Invalid("expects scalar inputs");
  return t.floats()[0];
}

}  // namespace

absl::StatusOr<NnKernel> BuildReshapeLike(const NnLayerSpec& spec) {
  const NnLayerLabel label = spec;
  return NnKernel([=](const std::vector<const Tensor*>& in) { return Reshaped(*in[0], in[1]->shape(), label); });
}

absl::StatusOr<NnKernel> BuildReshapeDynamic(const NnLayerSpec& spec) {
  const NnLayerLabel label = spec;
  return NnKernel([=](const std::vector<const Tensor*>& in) -> absl::StatusOr<std::vector<Tensor>> {
    ASSIGN_OR_RETURN(Shape shape, NnShapeInput(*in[1], label));
    return Reshaped(*in[0], std::move(shape), label);
  });
}

absl::StatusOr<NnKernel> BuildFillDynamic(const NnLayerSpec& spec) {
  const float value = spec.params.Float(1);
  const NnLayerLabel label = spec;
  return NnKernel([=](const std::vector<const Tensor*>& in) -> absl::StatusOr<std::vector<Tensor>> {
    ASSIGN_OR_RETURN(Shape shape, NnShapeInput(*in[0], label));
    ASSIGN_OR_RETURN(Tensor y, Tensor::Allocate(DType::kFloat32, shape));
    std::fill(y.mutable_floats().begin(), y.mutable_floats().end(), value);
    return Outputs(std::move(y));
  });
}

absl::StatusOr<NnKernel> BuildBroadcastToDynamic(const NnLayerSpec& spec) {
  const NnLayerLabel label = spec;
  return NnKernel([=](const std::vector<const Tensor*>& in) -> absl::StatusOr<std::vector<Tensor>> {
    const Tensor& x = *in[0];
    if (!x.is_float()) return label.Invalid("expects a float input");
    ASSIGN_OR_RETURN(Shape target, NnShapeInput(*in[1], label));
    absl::StatusOr<Shape> shape = BroadcastShapes(x.shape(), target);
    if (!shape.ok()) return label.Invalid(std::string(shape.status().message()));
    if (*shape != target) return label.Invalid("the input does not broadcast to the target shape");
    Tensor y = Tensor::Zeros(DType::kFloat32, target);
    ForEachBroadcast(x.shape(), Shape{}, target,
                     [&](int64_t i, int64_t ix, int64_t) { y.mutable_floats()[i] = x.floats()[ix]; });
    return Outputs(std::move(y));
  });
}

// rangeDynamic: numpy.arange(start, end, step) with end from the first
// input and start, step from the second and third when given.
absl::StatusOr<NnKernel> BuildRangeDynamic(const NnLayerSpec& spec) {
  const double start_param = spec.params.Float(2), step_param = spec.params.Float(3);
  const NnLayerLabel label = spec;
  return NnKernel([=](const std::vector<const Tensor*>& in) -> absl::StatusOr<std::vector<Tensor>> {
    ASSIGN_OR_RETURN(double end, Scalar(*in[0], label));
    double start = start_param, step = step_param;
    if (in.size() > 1) {
      ASSIGN_OR_RETURN(start, Scalar(*in[1], label));
    }
    if (in.size() > 2) {
      ASSIGN_OR_RETURN(step, Scalar(*in[2], label));
    }
    if (!(step != 0) || !std::isfinite(start) || !std::isfinite(end) || !std::isfinite(step)) {
      return label.Invalid("needs a finite range and a nonzero step");
    }
    const double count = std::max(0.0, std::ceil((end - start) / step));
    RETURN_IF_ERROR(CheckElementCount(count, absl::StrCat(label.Describe(), ": the range")));
    const int64_t n = static_cast<int64_t>(count);
    ASSIGN_OR_RETURN(Tensor y, Tensor::Allocate(DType::kFloat32, {n}));
    for (int64_t i = 0; i < n; ++i) y.mutable_floats()[i] = static_cast<float>(start + i * step);
    return Outputs(std::move(y));
  });
}

// rankPreservingReshape: one target per axis, 0 keeping the input's, one
// -1 inferred.
absl::StatusOr<NnKernel> BuildRankPreservingReshape(const NnLayerSpec& spec) {
  ASSIGN_OR_RETURN(std::vector<int64_t> target, spec.params.Ints(1));
  const NnLayerLabel label = spec;
  return NnKernel([=](const std::vector<const Tensor*>& in) -> absl::StatusOr<std::vector<Tensor>> {
    const Tensor& x = *in[0];
    if (static_cast<int64_t>(target.size()) != x.rank()) return label.Invalid("needs one target per input axis");
    Shape out(target.size());
    int64_t infer = -1, known = 1;
    for (size_t d = 0; d < target.size(); ++d) {
      if (target[d] == -1 && infer < 0) {
        infer = static_cast<int64_t>(d);
        continue;
      }
      if (target[d] < 0) return label.Invalid("targetShape has a negative size or a second -1");
      out[d] = target[d] == 0 ? x.dim(d) : target[d];
      RETURN_IF_ERROR(CheckShape({known, out[d]}));
      known *= out[d];
    }
    if (infer >= 0) {
      if (known == 0 || x.size() % known != 0) return label.Invalid("cannot infer the -1 dim");
      out[infer] = x.size() / known;
    }
    return Reshaped(x, std::move(out), label);
  });
}

}  // namespace coremlz::execute
