// NeuralNetwork ND layers that select, repeat or create data: copy, tile,
// stack, gather, gatherAlongAxis, whereBroadcastable, reverse, the
// triangular masks (lowerTriangular, upperTriangular, matrixBandPart),
// getShape, fillLike, fillStatic, broadcastToLike, broadcastToStatic,
// rangeStatic, constantPad, oneHot and whereNonZero. Indices arrive as floats (every blob is float); negative ones
// count from the end where the layer allows it. Every shape taken from
// parameters is checked before anything is allocated.
#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "execute/broadcast.h"
#include "execute/element_index.h"
#include "execute/nn_layer.h"

namespace coremlz::execute {
namespace {


// x broadcast to `out` (which x's shape must broadcast to).
absl::StatusOr<Tensor> BroadcastTo(const Tensor& x, const Shape& out, const NnLayerLabel& label) {
  absl::StatusOr<Shape> shape = BroadcastShapes(x.shape(), out);
  if (!shape.ok()) return label.Invalid(std::string(shape.status().message()));
  if (*shape != out) return label.Invalid("the input does not broadcast to the target shape");
  Tensor y = Tensor::Zeros(DType::kFloat32, out);
  ForEachBroadcast(x.shape(), Shape{}, out,
                   [&](int64_t i, int64_t ix, int64_t) { y.mutable_floats()[i] = x.floats()[ix]; });
  return y;
}

absl::StatusOr<Shape> TargetShape(const NnLayerSpec& spec, int field) {
  ASSIGN_OR_RETURN(std::vector<int64_t> target, spec.params.Ints(field));
  if (target.empty()) return spec.Invalid("has no targetShape");
  absl::Status ok = CheckShape(target);
  if (!ok.ok()) return spec.Invalid(std::string(ok.message()));
  return Shape(target.begin(), target.end());
}

}  // namespace

absl::StatusOr<NnKernel> BuildCopy(const NnLayerSpec& spec) {
  (void)spec;
  return NnKernel([](const std::vector<const Tensor*>& in) -> absl::StatusOr<std::vector<Tensor>> {
    return Outputs(Tensor(*in[0]));
  });
}

// tile: each axis repeated reps[d] times (one rep per axis).
absl::StatusOr<NnKernel> BuildTile(const NnLayerSpec& spec) {
  ASSIGN_OR_RETURN(std::vector<int64_t> reps, spec.params.Ints(1));
  if (reps.empty()) return spec.Invalid("has no reps");
  for (int64_t r : reps) {
    if (r <= 0) return spec.Invalid("reps must be positive");
  }
  const NnLayerLabel label = spec;
  return NnKernel([=](const std::vector<const Tensor*>& in) -> absl::StatusOr<std::vector<Tensor>> {
    const Tensor& x = *in[0];
    RETURN_IF_ERROR(NnFloatInputs(in, label));
    if (static_cast<int64_t>(reps.size()) != x.rank()) return label.Invalid("needs one rep per input axis");
    Shape out(x.rank());
    for (int64_t d = 0; d < x.rank(); ++d) {
      // Each factor is checked on its own first, so the product cannot overflow.
      RETURN_IF_ERROR(CheckShape({x.dim(d), reps[d]}));
      out[d] = x.dim(d) * reps[d];
    }
    RETURN_IF_ERROR(CheckShape(out));
    const std::vector<int64_t> stride = RowMajorStrides(x.shape());
    return Outputs(TakeEach(x, out, [&](const std::vector<int64_t>& idx, int64_t) {
      int64_t src = 0;
      for (int64_t d = 0; d < x.rank(); ++d) src += (idx[d] % x.dim(d)) * stride[d];
      return src;
    }));
  });
}

// stack: inputs of one shape along a new axis.
absl::StatusOr<NnKernel> BuildStack(const NnLayerSpec& spec) {
  const int64_t axis = spec.params.Int(1);
  const NnLayerLabel label = spec;
  return NnKernel([=](const std::vector<const Tensor*>& in) -> absl::StatusOr<std::vector<Tensor>> {
    RETURN_IF_ERROR(NnFloatInputs(in, label));
    const Shape& s = in[0]->shape();
    for (const Tensor* t : in) {
      if (t->shape() != s) return label.Invalid("inputs differ in shape");
    }
    ASSIGN_OR_RETURN(int64_t a, Axis(axis, static_cast<int64_t>(s.size()) + 1, label));
    Shape out = s;
    out.insert(out.begin() + a, static_cast<int64_t>(in.size()));
    ASSIGN_OR_RETURN(Tensor y, Tensor::Allocate(DType::kFloat32, out));
    int64_t outer = 1;
    for (int64_t d = 0; d < a; ++d) outer *= s[d];
    const int64_t inner = outer == 0 ? 0 : in[0]->size() / outer;
    float* dst = y.mutable_floats().data();
    for (int64_t o = 0; o < outer; ++o) {
      for (const Tensor* t : in) dst = std::copy_n(t->floats().data() + o * inner, inner, dst);
    }
    return Outputs(std::move(y));
  });
}

// gather: data's slices along `axis` at each index;
// shape data[:axis] + indices + data[axis + 1:].
absl::StatusOr<NnKernel> BuildGather(const NnLayerSpec& spec) {
  const int64_t axis = spec.params.Int(1);
  const NnLayerLabel label = spec;
  return NnKernel([=](const std::vector<const Tensor*>& in) -> absl::StatusOr<std::vector<Tensor>> {
    RETURN_IF_ERROR(NnFloatInputs(in, label));
    const Tensor &x = *in[0], &ids = *in[1];
    ASSIGN_OR_RETURN(int64_t a, Axis(axis, x.rank(), label));
    Shape out(x.shape().begin(), x.shape().begin() + a);
    out.insert(out.end(), ids.shape().begin(), ids.shape().end());
    out.insert(out.end(), x.shape().begin() + a + 1, x.shape().end());
    if (out.empty()) out = {1};
    ASSIGN_OR_RETURN(Tensor y, Tensor::Allocate(DType::kFloat32, out));
    int64_t outer = 1, inner = 1;
    for (int64_t d = 0; d < a; ++d) outer *= x.dim(d);
    for (int64_t d = a + 1; d < x.rank(); ++d) inner *= x.dim(d);
    const int64_t n = x.dim(a);
    float* dst = y.mutable_floats().data();
    for (int64_t o = 0; o < outer; ++o) {
      for (int64_t k = 0; k < ids.size(); ++k) {
        ASSIGN_OR_RETURN(int64_t i, NnFloatIndex(ids.floats()[k], n, label));
        dst = std::copy_n(x.floats().data() + (o * n + i) * inner, inner, dst);
      }
    }
    return Outputs(std::move(y));
  });
}

// gatherAlongAxis: output[..., i, ...] = data[..., indices[..., i, ...], ...]
// along `axis`; indices have data's shape except along the axis.
absl::StatusOr<NnKernel> BuildGatherAlongAxis(const NnLayerSpec& spec) {
  const int64_t axis = spec.params.Int(1);
  const NnLayerLabel label = spec;
  return NnKernel([=](const std::vector<const Tensor*>& in) -> absl::StatusOr<std::vector<Tensor>> {
    RETURN_IF_ERROR(NnFloatInputs(in, label));
    const Tensor &x = *in[0], &ids = *in[1];
    ASSIGN_OR_RETURN(int64_t a, Axis(axis, x.rank(), label));
    if (ids.rank() != x.rank()) return label.Invalid("indices must have data's rank");
    for (int64_t d = 0; d < x.rank(); ++d) {
      if (d != a && ids.dim(d) != x.dim(d)) return label.Invalid("indices differ from data off the axis");
    }
    int64_t outer = 1, inner = 1;
    for (int64_t d = 0; d < a; ++d) outer *= x.dim(d);
    for (int64_t d = a + 1; d < x.rank(); ++d) inner *= x.dim(d);
    const int64_t n = x.dim(a), m = ids.dim(a);
    Tensor y = Tensor::Zeros(DType::kFloat32, ids.shape());
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t k = 0; k < m; ++k)
        for (int64_t i = 0; i < inner; ++i) {
          const int64_t at = (o * m + k) * inner + i;
          ASSIGN_OR_RETURN(int64_t j, NnFloatIndex(ids.floats()[at], n, label));
          y.mutable_floats()[at] = x.floats()[(o * n + j) * inner + i];
        }
    return Outputs(std::move(y));
  });
}

// whereBroadcastable: cond != 0 ? a : b, the three broadcast together.
absl::StatusOr<NnKernel> BuildWhereBroadcastable(const NnLayerSpec& spec) {
  const NnLayerLabel label = spec;
  return NnKernel([=](const std::vector<const Tensor*>& in) -> absl::StatusOr<std::vector<Tensor>> {
    RETURN_IF_ERROR(NnFloatInputs(in, label));
    absl::StatusOr<Shape> ab = BroadcastShapes(in[1]->shape(), in[2]->shape());
    if (!ab.ok()) return label.Invalid(std::string(ab.status().message()));
    absl::StatusOr<Shape> out = BroadcastShapes(in[0]->shape(), *ab);
    if (!out.ok()) return label.Invalid(std::string(out.status().message()));
    ASSIGN_OR_RETURN(Tensor y, Tensor::Allocate(DType::kFloat32, *out));
    const size_t r = out->size();
    const std::vector<int64_t> sc = BroadcastStrides(in[0]->shape(), *out), sa = BroadcastStrides(in[1]->shape(), *out),
                               sb = BroadcastStrides(in[2]->shape(), *out);
    ForEachIndex(*out, [&](const std::vector<int64_t>& idx, int64_t i) {
      int64_t c = 0, ia = 0, ib = 0;
      for (size_t d = 0; d < r; ++d) c += idx[d] * sc[d], ia += idx[d] * sa[d], ib += idx[d] * sb[d];
      y.mutable_floats()[i] = in[0]->floats()[c] != 0 ? in[1]->floats()[ia] : in[2]->floats()[ib];
    });
    return Outputs(std::move(y));
  });
}

// reverse: flips the axes whose reverseDim is true (one flag per axis).
absl::StatusOr<NnKernel> BuildReverse(const NnLayerSpec& spec) {
  ASSIGN_OR_RETURN(std::vector<int64_t> flags, spec.params.Ints(1));
  const NnLayerLabel label = spec;
  return NnKernel([=](const std::vector<const Tensor*>& in) -> absl::StatusOr<std::vector<Tensor>> {
    RETURN_IF_ERROR(NnFloatInputs(in, label));
    const Tensor& x = *in[0];
    const int64_t r = x.rank();
    if (static_cast<int64_t>(flags.size()) != r) return label.Invalid("needs one reverseDim flag per axis");
    const std::vector<int64_t> stride = RowMajorStrides(x.shape());
    return Outputs(TakeEach(x, x.shape(), [&](const std::vector<int64_t>& idx, int64_t) {
      int64_t src = 0;
      for (int64_t d = 0; d < r; ++d) src += (flags[d] ? x.dim(d) - 1 - idx[d] : idx[d]) * stride[d];
      return src;
    }));
  });
}

// lowerTriangular keeps j - i <= k, upperTriangular j - i >= k,
// matrixBandPart i - j <= numLower and j - i <= numUpper (a negative bound
// keeps that whole side), over the last two axes.
absl::StatusOr<NnKernel> BuildTriangular(const NnLayerSpec& spec) {
  int64_t lower = -1, upper = -1;  // kept band: -lower <= j - i <= upper (-1: unbounded)
  int64_t lo = 0, hi = 0;
  bool has_lo = false, has_hi = false;
  if (spec.type == "lowerTriangular") {
    hi = spec.params.Int(1), has_hi = true;
  } else if (spec.type == "upperTriangular") {
    lo = spec.params.Int(1), has_lo = true;
  } else {
    lower = spec.params.Int(1), upper = spec.params.Int(2);
    if (lower >= 0) lo = -lower, has_lo = true;
    if (upper >= 0) hi = upper, has_hi = true;
  }
  const NnLayerLabel label = spec;
  return NnKernel([=](const std::vector<const Tensor*>& in) -> absl::StatusOr<std::vector<Tensor>> {
    RETURN_IF_ERROR(NnFloatInputs(in, label));
    const Tensor& x = *in[0];
    if (x.rank() < 2) return label.Invalid("expects rank >= 2");
    const int64_t rows = x.dim(x.rank() - 2), cols = x.dim(x.rank() - 1);
    Tensor y = x;
    for (int64_t i = 0; i < x.size(); ++i) {
      const int64_t c = i % cols, r = i / cols % rows, diff = c - r;
      if ((has_lo && diff < lo) || (has_hi && diff > hi)) y.mutable_floats()[i] = 0;
    }
    return Outputs(std::move(y));
  });
}

// getShape: the input's shape as a rank-1 float tensor.
absl::StatusOr<NnKernel> BuildGetShape(const NnLayerSpec& spec) {
  (void)spec;
  return NnKernel([](const std::vector<const Tensor*>& in) -> absl::StatusOr<std::vector<Tensor>> {
    std::vector<float> dims(in[0]->shape().begin(), in[0]->shape().end());
    const int64_t r = static_cast<int64_t>(dims.size());
    return Outputs(Tensor::Float({r}, std::move(dims)));
  });
}

absl::StatusOr<NnKernel> BuildFillLike(const NnLayerSpec& spec) {
  const float value = spec.params.Float(1);
  return NnKernel([=](const std::vector<const Tensor*>& in) -> absl::StatusOr<std::vector<Tensor>> {
    Tensor y = Tensor::Zeros(DType::kFloat32, in[0]->shape());
    std::fill(y.mutable_floats().begin(), y.mutable_floats().end(), value);
    return Outputs(std::move(y));
  });
}

absl::StatusOr<NnKernel> BuildFillStatic(const NnLayerSpec& spec) {
  const float value = spec.params.Float(1);
  ASSIGN_OR_RETURN(Shape target, TargetShape(spec, 2));
  return NnKernel([=](const std::vector<const Tensor*>&) -> absl::StatusOr<std::vector<Tensor>> {
    ASSIGN_OR_RETURN(Tensor y, Tensor::Allocate(DType::kFloat32, target));
    std::fill(y.mutable_floats().begin(), y.mutable_floats().end(), value);
    return Outputs(std::move(y));
  });
}

absl::StatusOr<NnKernel> BuildBroadcastToLike(const NnLayerSpec& spec) {
  const NnLayerLabel label = spec;
  return NnKernel([=](const std::vector<const Tensor*>& in) -> absl::StatusOr<std::vector<Tensor>> {
    RETURN_IF_ERROR(NnFloatInputs({in[0]}, label));
    ASSIGN_OR_RETURN(Tensor y, BroadcastTo(*in[0], in[1]->shape(), label));
    return Outputs(std::move(y));
  });
}

absl::StatusOr<NnKernel> BuildBroadcastToStatic(const NnLayerSpec& spec) {
  ASSIGN_OR_RETURN(Shape target, TargetShape(spec, 1));
  const NnLayerLabel label = spec;
  return NnKernel([=](const std::vector<const Tensor*>& in) -> absl::StatusOr<std::vector<Tensor>> {
    RETURN_IF_ERROR(NnFloatInputs(in, label));
    ASSIGN_OR_RETURN(Tensor y, BroadcastTo(*in[0], target, label));
    return Outputs(std::move(y));
  });
}

// rangeStatic: numpy.arange(startValue, endValue, stepSizeValue).
absl::StatusOr<NnKernel> BuildRangeStatic(const NnLayerSpec& spec) {
  const double end = spec.params.Float(1), start = spec.params.Float(2), step = spec.params.Float(3);
  if (!(step != 0) || !std::isfinite(start) || !std::isfinite(end) || !std::isfinite(step)) {
    return spec.Invalid("needs a finite range and a nonzero step");
  }
  const double count = std::max(0.0, std::ceil((end - start) / step));
  RETURN_IF_ERROR(CheckElementCount(count, absl::StrCat(spec.Describe(), ": the range")));
  const int64_t n = static_cast<int64_t>(count);
  return NnKernel([=](const std::vector<const Tensor*>&) -> absl::StatusOr<std::vector<Tensor>> {
    ASSIGN_OR_RETURN(Tensor y, Tensor::Allocate(DType::kFloat32, {n}));
    for (int64_t i = 0; i < n; ++i) y.mutable_floats()[i] = static_cast<float>(start + i * step);
    return Outputs(std::move(y));
  });
}

// constantPad: padAmounts [before, after] per axis (from the parameter, or
// the second input's values when there is one), or with
// padToGivenOutputSizeMode the output size in whichever of the two is set
// (the pad going on that side).
absl::StatusOr<NnKernel> BuildConstantPad(const NnLayerSpec& spec) {
  const float value = spec.params.Float(1);
  ASSIGN_OR_RETURN(std::vector<int64_t> param_amounts, spec.params.Ints(2));
  const bool to_size = spec.params.Bool(3);
  for (int64_t a : param_amounts) {
    if (a < 0 || a > MaxTensorElements()) return spec.Invalid("padAmounts out of range");
  }
  const NnLayerLabel label = spec;
  return NnKernel([=](const std::vector<const Tensor*>& in) -> absl::StatusOr<std::vector<Tensor>> {
    RETURN_IF_ERROR(NnFloatInputs(in, label));
    const Tensor& x = *in[0];
    const int64_t r = x.rank();
    std::vector<int64_t> amounts = param_amounts;
    if (in.size() > 1) {
      const Tensor& pads = *in[1];
      // MIL's pad, which converts to this layer, may pad only the last axes;
      // whether this layer reads a short second input that way is not said.
      if (pads.size() < 2 * r && pads.size() % 2 == 0) {
        return label.Unimplemented(absl::StrCat("a second input of ", pads.size(), " pad amounts for rank ", r));
      }
      amounts.clear();
      for (float v : pads.floats()) {
        if (!(v >= 0 && v == std::floor(v) && v <= static_cast<float>(MaxTensorElements()))) {
          return label.Invalid(absl::StrCat("pad amount ", v, " is not a size"));
        }
        amounts.push_back(static_cast<int64_t>(v));
      }
    }
    if (static_cast<int64_t>(amounts.size()) != 2 * r) return label.Invalid("needs two padAmounts per axis");
    std::vector<int64_t> before(r), out(r);
    for (int64_t d = 0; d < r; ++d) {
      int64_t b = amounts[2 * d], a = amounts[2 * d + 1];
      if (to_size) {
        if (b != 0 && a != 0) return label.Invalid("padToGivenOutputSizeMode takes one amount per axis");
        const int64_t size = std::max(x.dim(d), std::max(b, a));
        b = amounts[2 * d] != 0 ? size - x.dim(d) : 0;
        a = size - x.dim(d) - b;
      }
      before[d] = b;
      out[d] = x.dim(d) + b + a;
    }
    ASSIGN_OR_RETURN(Tensor y, Tensor::Allocate(DType::kFloat32, out));
    std::fill(y.mutable_floats().begin(), y.mutable_floats().end(), value);
    const std::vector<int64_t> stride = RowMajorStrides(out);
    ForEachIndex(x.shape(), [&](const std::vector<int64_t>& idx, int64_t i) {
      int64_t at = 0;
      for (int64_t d = 0; d < r; ++d) at += (idx[d] + before[d]) * stride[d];
      y.mutable_floats()[at] = x.floats()[i];
    });
    return Outputs(std::move(y));
  });
}

// oneHot: a new axis (`axis` of the output) of oneHotVectorSize values (or
// as many as the second input's value), onValue at the index, offValue
// elsewhere; an index outside [0, size) gives all offValue.
absl::StatusOr<NnKernel> BuildOneHot(const NnLayerSpec& spec) {
  const int64_t size_param = spec.params.Int(1), axis = spec.params.Int(2);
  const float on = spec.params.Float(3), off = spec.params.Float(4);
  const NnLayerLabel label = spec;
  return NnKernel([=](const std::vector<const Tensor*>& in) -> absl::StatusOr<std::vector<Tensor>> {
    RETURN_IF_ERROR(NnFloatInputs(in, label));
    const Tensor& x = *in[0];
    int64_t size = size_param;
    if (in.size() > 1) {
      const float v = in[1]->size() == 1 ? in[1]->floats()[0] : -1;
      if (!(v >= 0 && v == std::floor(v) && v <= static_cast<float>(MaxTensorElements()))) {
        return label.Invalid("the size input must be one whole number");
      }
      size = static_cast<int64_t>(v);
    }
    if (size < 0) return label.Invalid("oneHotVectorSize out of range");
    ASSIGN_OR_RETURN(int64_t a, Axis(axis, x.rank() + 1, label));
    Shape out = x.shape();
    out.insert(out.begin() + a, size);
    ASSIGN_OR_RETURN(Tensor y, Tensor::Allocate(DType::kFloat32, out));
    int64_t outer = 1;
    for (int64_t d = 0; d < a; ++d) outer *= x.dim(d);
    const int64_t inner = outer == 0 ? 0 : x.size() / outer;
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t k = 0; k < size; ++k)
        for (int64_t i = 0; i < inner; ++i) {
          const float v = x.floats()[o * inner + i];
          y.mutable_floats()[(o * size + k) * inner + i] = v == static_cast<float>(k) ? on : off;
        }
    return Outputs(std::move(y));
  });
}

// whereNonZero: the [N, rank] indices (as floats) of the non-zero elements.
absl::StatusOr<NnKernel> BuildWhereNonZero(const NnLayerSpec& spec) {
  const NnLayerLabel label = spec;
  return NnKernel([=](const std::vector<const Tensor*>& in) -> absl::StatusOr<std::vector<Tensor>> {
    RETURN_IF_ERROR(NnFloatInputs(in, label));
    const Tensor& x = *in[0];
    const int64_t r = x.rank();
    std::vector<float> v;
    for (int64_t i = 0; i < x.size(); ++i) {
      if (x.floats()[i] == 0) continue;
      int64_t rest = i;
      const size_t at = v.size();
      v.resize(at + r);
      for (int64_t d = r; d-- > 0;) {
        v[at + d] = static_cast<float>(rest % x.dim(d));
        rest /= x.dim(d);
      }
    }
    const int64_t n = r == 0 ? 0 : static_cast<int64_t>(v.size()) / r;
    return Outputs(Tensor::Float({n, r}, std::move(v)));
  });
}

}  // namespace coremlz::execute
