// NeuralNetwork ND layers (specification version 4 and later) that reshape,
// slice, join or normalise along any axis: reshapeStatic, flattenTo2D,
// squeeze, expandDims, concatND, softmaxND, sliceStatic; and clip,
// embedding and embeddingND. Axes may be negative (counted from the end).
#include <algorithm>
#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "execute/nn_layer.h"

namespace coremlz::execute {
namespace {

Tensor Reshaped(const Tensor& x, Shape shape) {
  Tensor y = x;
  y.Reshape(std::move(shape));
  return y;
}

}  // namespace

// reshapeStatic: targetShape, one -1 inferred.
absl::StatusOr<NnKernel> BuildReshapeStatic(const NnLayerSpec& spec) {
  ASSIGN_OR_RETURN(std::vector<int64_t> target, spec.params.Ints(1));
  if (target.empty()) return spec.Invalid("has no targetShape");
  const NnLayerLabel label = spec;
  return NnKernel([=](const std::vector<const Tensor*>& in) -> absl::StatusOr<std::vector<Tensor>> {
    Shape out(target.begin(), target.end());
    // Checked first: the product of untrusted dims must not overflow.
    Shape product = out;
    for (int64_t& d : product) d = d == -1 ? 1 : d;
    RETURN_IF_ERROR(CheckShape(product));
    int64_t known = 1, infer = -1;
    for (size_t i = 0; i < out.size(); ++i) {
      if (out[i] == -1 && infer < 0) {
        infer = static_cast<int64_t>(i);
      } else if (out[i] < 0) {
        return label.Invalid("targetShape has a negative dim or more than one -1");
      } else {
        known *= out[i];
      }
    }
    if (infer >= 0) {
      if (known == 0 || in[0]->size() % known != 0) return label.Invalid("cannot infer the -1 dim");
      out[infer] = in[0]->size() / known;
    }
    if (NumElements(out) != in[0]->size()) return label.Invalid("targetShape does not hold the input's elements");
    return Outputs(Reshaped(*in[0], out));
  });
}

// flattenTo2D: [prod(dims before axis), prod(dims from axis)].
absl::StatusOr<NnKernel> BuildFlattenTo2D(const NnLayerSpec& spec) {
  const int64_t axis = spec.params.Int(1);
  const NnLayerLabel label = spec;
  return NnKernel([=](const std::vector<const Tensor*>& in) -> absl::StatusOr<std::vector<Tensor>> {
    const int64_t r = in[0]->rank();
    const int64_t a = axis < 0 ? axis + r : axis;
    if (a < 0 || a > r) return label.Invalid(absl::StrCat("axis ", axis, " is out of range for rank ", r));
    int64_t lead = 1;
    for (int64_t d = 0; d < a; ++d) lead *= in[0]->dim(d);
    return Outputs(Reshaped(*in[0], {lead, lead == 0 ? 0 : in[0]->size() / lead}));
  });
}

// squeeze: the given axes (each of size 1) or, with squeezeAll, every axis
// of size 1; a result with no axes left is [1].
absl::StatusOr<NnKernel> BuildSqueeze(const NnLayerSpec& spec) {
  ASSIGN_OR_RETURN(std::vector<int64_t> axes, spec.params.Ints(1));
  const bool all = spec.params.Bool(2);
  const NnLayerLabel label = spec;
  return NnKernel([=](const std::vector<const Tensor*>& in) -> absl::StatusOr<std::vector<Tensor>> {
    const int64_t r = in[0]->rank();
    std::vector<bool> drop(r, false);
    if (all) {
      for (int64_t d = 0; d < r; ++d) drop[d] = in[0]->dim(d) == 1;
    } else {
      for (int64_t a : axes) {
        ASSIGN_OR_RETURN(int64_t d, Axis(a, r, label));
        if (in[0]->dim(d) != 1) return label.Invalid(absl::StrCat("axis ", a, " has size ", in[0]->dim(d), ", not 1"));
        drop[d] = true;
      }
    }
    Shape out;
    for (int64_t d = 0; d < r; ++d) {
      if (!drop[d]) out.push_back(in[0]->dim(d));
    }
    if (out.empty()) out = {1};
    return Outputs(Reshaped(*in[0], out));
  });
}

// expandDims: a unit axis at each of `axes`, which index the output.
absl::StatusOr<NnKernel> BuildExpandDims(const NnLayerSpec& spec) {
  ASSIGN_OR_RETURN(std::vector<int64_t> axes, spec.params.Ints(1));
  if (axes.empty()) return spec.Invalid("has no axes");
  const NnLayerLabel label = spec;
  return NnKernel([=](const std::vector<const Tensor*>& in) -> absl::StatusOr<std::vector<Tensor>> {
    const int64_t r = in[0]->rank() + static_cast<int64_t>(axes.size());
    std::vector<bool> unit(r, false);
    for (int64_t a : axes) {
      ASSIGN_OR_RETURN(int64_t d, Axis(a, r, label));
      if (unit[d]) return label.Invalid("repeated axis");
      unit[d] = true;
    }
    Shape out;
    int64_t next = 0;
    for (int64_t d = 0; d < r; ++d) out.push_back(unit[d] ? 1 : in[0]->dim(next++));
    return Outputs(Reshaped(*in[0], out));
  });
}

// concatND along `axis` (interleave refused).
absl::StatusOr<NnKernel> BuildConcatND(const NnLayerSpec& spec) {
  const int64_t axis = spec.params.Int(1);
  if (spec.params.Bool(2)) return spec.Unimplemented("interleave");
  const NnLayerLabel label = spec;
  return NnKernel([=](const std::vector<const Tensor*>& in) -> absl::StatusOr<std::vector<Tensor>> {
    const int64_t r = in[0]->rank();
    ASSIGN_OR_RETURN(int64_t a, Axis(axis, r, label));
    Shape out = in[0]->shape();
    out[a] = 0;
    for (const Tensor* t : in) {
      if (!t->is_float() || t->rank() != r) return label.Invalid("inputs must be float tensors of one rank");
      for (int64_t d = 0; d < r; ++d) {
        if (d != a && t->dim(d) != out[d]) return label.Invalid("inputs differ in a dimension other than the axis");
      }
      out[a] += t->dim(a);
    }
    int64_t outer = 1, inner = 1;
    for (int64_t d = 0; d < a; ++d) outer *= out[d];
    for (int64_t d = a + 1; d < r; ++d) inner *= out[d];
    Tensor y = Tensor::Zeros(DType::kFloat32, out);
    float* dst = y.mutable_floats().data();
    for (int64_t o = 0; o < outer; ++o) {
      for (const Tensor* t : in) {
        const int64_t chunk = t->dim(a) * inner;
        dst = std::copy_n(t->floats().data() + o * chunk, chunk, dst);
      }
    }
    return Outputs(std::move(y));
  });
}

// softmaxND along `axis`.
absl::StatusOr<NnKernel> BuildSoftmaxND(const NnLayerSpec& spec) {
  const int64_t axis = spec.params.Int(1);
  const NnLayerLabel label = spec;
  return NnKernel([=](const std::vector<const Tensor*>& in) -> absl::StatusOr<std::vector<Tensor>> {
    const Tensor& x = *in[0];
    if (!x.is_float()) return label.Invalid("expects a float input");
    ASSIGN_OR_RETURN(int64_t a, Axis(axis, x.rank(), label));
    int64_t outer = 1, inner = 1;
    for (int64_t d = 0; d < a; ++d) outer *= x.dim(d);
    for (int64_t d = a + 1; d < x.rank(); ++d) inner *= x.dim(d);
    const int64_t n = x.dim(a);
    Tensor y = Tensor::Zeros(DType::kFloat32, x.shape());
    const float* src = x.floats().data();
    float* dst = y.mutable_floats().data();
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t i = 0; i < inner; ++i) {
        const int64_t base = o * n * inner + i;
        float peak = -INFINITY;
        for (int64_t k = 0; k < n; ++k) peak = std::max(peak, src[base + k * inner]);
        double sum = 0;
        for (int64_t k = 0; k < n; ++k) sum += std::exp(static_cast<double>(src[base + k * inner]) - peak);
        for (int64_t k = 0; k < n; ++k) {
          dst[base + k * inner] = static_cast<float>(std::exp(static_cast<double>(src[base + k * inner]) - peak) / sum);
        }
      }
    return Outputs(std::move(y));
  });
}

// sliceStatic and sliceDynamic: per axis [begin, end) by stride (negative
// stride walks back), masks taking the whole axis from its start or to its
// end, and squeezeMasks dropping an axis of the one element at `begin`
// (NumPy / TensorFlow strided-slice semantics, as MIL's slice_by_index).
absl::StatusOr<Tensor> NnStridedSlice(const Tensor& x, const NnSliceArgs& args, const NnLayerLabel& label) {
  const std::vector<int64_t>& begin = args.begin;
  const std::vector<int64_t>& end = args.end;
  const std::vector<int64_t>& strides = args.strides;
  const std::vector<int64_t>& begin_mask = args.begin_mask;
  const std::vector<int64_t>& end_mask = args.end_mask;
  const std::vector<int64_t>& squeeze = args.squeeze;
  const size_t r = begin.size();
  if (!x.is_float() || x.rank() != static_cast<int64_t>(r)) {
    return label.Invalid("expects a float input of the slice's rank");
  }
  std::vector<int64_t> start(r), step(r), count(r);
  Shape out;
  for (size_t d = 0; d < r; ++d) {
    const int64_t n = x.dim(d), s = strides[d];
    if (s == 0 || s == std::numeric_limits<int64_t>::min()) return label.Invalid("stride out of range");
    if (squeeze[d]) {
      const int64_t b = begin[d] < 0 ? begin[d] + n : begin[d];
      if (b < 0 || b >= n) return label.Invalid("squeezed index out of range");
      start[d] = b, step[d] = 1, count[d] = 1;
      continue;
    }
    int64_t b, e;
    if (s > 0) {
      b = begin_mask[d] ? 0 : std::clamp<int64_t>(begin[d] < 0 ? begin[d] + n : begin[d], 0, n);
      e = end_mask[d] ? n : std::clamp<int64_t>(end[d] < 0 ? end[d] + n : end[d], 0, n);
      count[d] = e > b ? 1 + (e - b - 1) / s : 0;
    } else {
      b = begin_mask[d] ? n - 1 : std::clamp<int64_t>(begin[d] < 0 ? begin[d] + n : begin[d], -1, n - 1);
      e = end_mask[d] ? -1 : std::clamp<int64_t>(end[d] < 0 ? end[d] + n : end[d], -1, n - 1);
      count[d] = b > e ? 1 + (b - e - 1) / (-s) : 0;
    }
    start[d] = b, step[d] = s;
    out.push_back(count[d]);
  }
  Shape full(count.begin(), count.end());
  if (out.empty()) out = {1};
  Tensor y = Tensor::Zeros(DType::kFloat32, full);
  std::vector<int64_t> stride_in(r, 1), idx(r, 0);
  for (size_t d = r - 1; d-- > 0;) stride_in[d] = stride_in[d + 1] * x.dim(d + 1);
  float* o = y.mutable_floats().data();
  for (int64_t i = 0; i < y.size(); ++i) {
    int64_t off = 0;
    for (size_t d = 0; d < r; ++d) off += (start[d] + idx[d] * step[d]) * stride_in[d];
    o[i] = x.floats()[off];
    for (size_t d = r; d-- > 0;) {
      if (++idx[d] < count[d]) break;
      idx[d] = 0;
    }
  }
  y.Reshape(out);
  return y;
}

absl::StatusOr<NnKernel> BuildSliceStatic(const NnLayerSpec& spec) {
  ASSIGN_OR_RETURN(std::vector<int64_t> begin, spec.params.Ints(1));
  ASSIGN_OR_RETURN(std::vector<int64_t> begin_mask, spec.params.Ints(2));
  ASSIGN_OR_RETURN(std::vector<int64_t> end, spec.params.Ints(3));
  ASSIGN_OR_RETURN(std::vector<int64_t> end_mask, spec.params.Ints(4));
  ASSIGN_OR_RETURN(std::vector<int64_t> strides, spec.params.Ints(5));
  ASSIGN_OR_RETURN(std::vector<int64_t> squeeze, spec.params.Ints(6));
  const size_t r = begin.size();
  if (r == 0) return spec.Invalid("has no beginIds");
  if (end.size() != r || strides.size() != r || (!begin_mask.empty() && begin_mask.size() != r) ||
      (!end_mask.empty() && end_mask.size() != r) || (!squeeze.empty() && squeeze.size() != r)) {
    return spec.Invalid("beginIds, endIds, strides and the masks need one entry per axis");
  }
  if (begin_mask.empty()) begin_mask.assign(r, 0);
  if (end_mask.empty()) end_mask.assign(r, 0);
  if (squeeze.empty()) squeeze.assign(r, 0);
  const NnLayerLabel label = spec;
  const NnSliceArgs args{begin, end, strides, begin_mask, end_mask, squeeze};
  return NnKernel([=](const std::vector<const Tensor*>& in) -> absl::StatusOr<std::vector<Tensor>> {
    ASSIGN_OR_RETURN(Tensor y, NnStridedSlice(*in[0], args, label));
    return Outputs(std::move(y));
  });
}

// clip: min(max(x, minVal), maxVal).
absl::StatusOr<NnKernel> BuildClip(const NnLayerSpec& spec) {
  const float lo = spec.params.Float(1), hi = spec.params.Float(2);
  if (lo > hi) return spec.Invalid("minVal is greater than maxVal");
  const NnLayerLabel label = spec;
  return NnKernel([=](const std::vector<const Tensor*>& in) -> absl::StatusOr<std::vector<Tensor>> {
    if (!in[0]->is_float()) return label.Invalid("expects a float input");
    Tensor y = Tensor::Zeros(DType::kFloat32, in[0]->shape());
    for (int64_t i = 0; i < y.size(); ++i) y.mutable_floats()[i] = std::min(std::max(in[0]->floats()[i], lo), hi);
    return Outputs(std::move(y));
  });
}

// embedding / embeddingND: each index (a float holding an integer) selects
// column `index` of weights [outputs, vocabulary], plus the bias. embedding
// takes [.., 1, 1, 1] and gives [.., outputs, 1, 1]; embeddingND takes
// [.., 1] and gives [.., outputs].
absl::StatusOr<NnKernel> BuildEmbedding(const NnLayerSpec& spec) {
  const bool nd = spec.type == "embeddingND";
  const int64_t vocabulary = spec.params.Int(nd ? 1 : 1), outputs = spec.params.Int(2);
  const bool has_bias = spec.params.Bool(nd ? 3 : 10);
  ASSIGN_OR_RETURN(const Tensor* weights, spec.Weight("weights"));
  const Tensor* bias = has_bias ? spec.OptionalWeight("bias") : nullptr;
  if (has_bias && bias == nullptr) return spec.Invalid("hasBias is set but there is no bias");
  if (vocabulary <= 0 || outputs <= 0 || weights->size() % outputs != 0 || weights->size() / outputs != vocabulary) {
    return spec.Invalid("the weights do not match [outputs, vocabulary]");
  }
  if (bias != nullptr && bias->size() != outputs) return spec.Invalid("bias must have one value per output");
  const NnLayerLabel label = spec;
  return NnKernel([=, weights = *weights, bias = bias ? *bias : Tensor()](
                      const std::vector<const Tensor*>& in) -> absl::StatusOr<std::vector<Tensor>> {
    const Tensor& x = *in[0];
    const int64_t trailing = nd ? 1 : 3;
    if (!x.is_float() || x.rank() < trailing) return label.Invalid("expects a float input of indices");
    for (int64_t d = x.rank() - trailing; d < x.rank(); ++d) {
      if (x.dim(d) != 1) return label.Invalid(absl::StrCat("expects the last ", trailing, " axes to be 1"));
    }
    Shape out = x.shape();
    out[x.rank() - trailing] = outputs;
    Tensor y = Tensor::Zeros(DType::kFloat32, out);
    for (int64_t i = 0; i < x.size(); ++i) {
      const float v = x.floats()[i];
      if (!(v >= 0) || v >= vocabulary || v != std::floor(v)) {
        return label.Invalid(absl::StrCat("index ", v, " is not in [0, ", vocabulary, ")"));
      }
      const int64_t index = static_cast<int64_t>(v);
      for (int64_t k = 0; k < outputs; ++k) {
        y.mutable_floats()[i * outputs + k] =
            weights.floats()[k * vocabulary + index] + (bias.size() > 0 ? bias.floats()[k] : 0.0f);
      }
    }
    return Outputs(std::move(y));
  });
}

}  // namespace coremlz::execute
