// NeuralNetwork slicing layers whose extent comes from inputs or windows:
// sliceDynamic (sliceStatic's strided slice with any of its vectors given
// as inputs 2 to 7), sliceBySize (size elements from a begin given as the
// second input), reverseSeq (each batch item's leading seq_lengths
// elements reversed) and slidingWindows (every window of windowSize
// elements, step apart, along an axis). Values read from inputs must be
// whole numbers in range before anything is addressed.
#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "execute/element_index.h"
#include "execute/nn_layer.h"

namespace coremlz::execute {
namespace {

// A rank-1 float input of `n` whole numbers.
absl::StatusOr<std::vector<int64_t>> Whole(const Tensor& t, int64_t n, const std::string& what,
                                           const NnLayerLabel& label) {
  if (!t.is_float() || t.rank() != 1 || t.size() != n) {
    return label.Invalid(absl::StrCat(what, " must be a rank-1 float input of ", n, " values"));
  }
  std::vector<int64_t> v;
  for (float f : t.floats()) {
    if (!(f == std::floor(f) && std::fabs(f) <= 9.0e15f)) {
      return label.Invalid(absl::StrCat(what, " value ", f, " is not whole"));
    }
    v.push_back(static_cast<int64_t>(f));
  }
  return v;
}

}  // namespace

// sliceDynamic: begin from the second input; endIds, strides, beginMasks,
// endMasks and squeezeMasks from inputs 3 to 7 where given, else from the
// parameters (masks false and strides 1 when the parameter is empty).
absl::StatusOr<NnKernel> BuildSliceDynamic(const NnLayerSpec& spec) {
  ASSIGN_OR_RETURN(std::vector<int64_t> begin_mask, spec.params.Ints(2));
  ASSIGN_OR_RETURN(std::vector<int64_t> end, spec.params.Ints(3));
  ASSIGN_OR_RETURN(std::vector<int64_t> end_mask, spec.params.Ints(4));
  ASSIGN_OR_RETURN(std::vector<int64_t> strides, spec.params.Ints(5));
  ASSIGN_OR_RETURN(std::vector<int64_t> squeeze, spec.params.Ints(6));
  const NnLayerLabel label = spec;
  return NnKernel([=](const std::vector<const Tensor*>& in) -> absl::StatusOr<std::vector<Tensor>> {
    const Tensor& x = *in[0];
    const int64_t r = x.rank();
    if (!x.is_float() || r < 1) return label.Invalid("expects a float input of rank >= 1");
    NnSliceArgs args{{}, end, strides, begin_mask, end_mask, squeeze};
    std::vector<int64_t>* slots[] = {&args.begin,      &args.end,      &args.strides,
                                     &args.begin_mask, &args.end_mask, &args.squeeze};
    const char* names[] = {"beginIds", "endIds", "strides", "beginMasks", "endMasks", "squeezeMasks"};
    for (size_t i = 0; i < 6; ++i) {
      if (i + 1 < in.size()) {
        ASSIGN_OR_RETURN(*slots[i], Whole(*in[i + 1], r, names[i], label));
      } else if (slots[i]->empty() && i >= 2) {
        slots[i]->assign(r, i == 2 ? 1 : 0);
      }
      if (static_cast<int64_t>(slots[i]->size()) != r) {
        return label.Invalid(absl::StrCat(names[i], " needs one entry per input axis"));
      }
    }
    ASSIGN_OR_RETURN(Tensor y, NnStridedSlice(x, args, label));
    return Outputs(std::move(y));
  });
}

// sliceBySize: x[..., begin:begin + size, ...] along `axis`, begin (one
// value, negative counting from the end) from the second input.
absl::StatusOr<NnKernel> BuildSliceBySize(const NnLayerSpec& spec) {
  const int64_t size = spec.params.Int(2), axis = spec.params.Int(3);
  if (size < 1) return spec.Invalid(absl::StrCat("size ", size, " must be positive"));
  const NnLayerLabel label = spec;
  return NnKernel([=](const std::vector<const Tensor*>& in) -> absl::StatusOr<std::vector<Tensor>> {
    const Tensor& x = *in[0];
    if (!x.is_float()) return label.Invalid("expects a float input");
    ASSIGN_OR_RETURN(int64_t a, Axis(axis, x.rank(), label));
    if (!in[1]->is_float() || in[1]->size() != 1) return label.Invalid("begin must be one value");
    const float b = in[1]->floats()[0];
    const int64_t n = x.dim(a);
    if (!(b == std::floor(b) && b >= -static_cast<float>(n) && b < static_cast<float>(n))) {
      return label.Invalid(absl::StrCat("begin ", b, " is out of range for an axis of ", n));
    }
    const int64_t start = b < 0 ? static_cast<int64_t>(b) + n : static_cast<int64_t>(b);
    if (size > n - start) {
      return label.Invalid(absl::StrCat("begin ", start, " + size ", size, " passes the axis end ", n));
    }
    Shape out = x.shape();
    out[a] = size;
    const std::vector<int64_t> stride = RowMajorStrides(x.shape());
    return Outputs(TakeEach(x, out, [&](const std::vector<int64_t>& idx, int64_t) {
      int64_t src = 0;
      for (int64_t d = 0; d < x.rank(); ++d) src += (d == a ? idx[d] + start : idx[d]) * stride[d];
      return src;
    }));
  });
}

// reverseSeq: for batch item b (along batchAxis), the first seq_lengths[b]
// elements along sequenceAxis in reverse order, the rest as they were.
absl::StatusOr<NnKernel> BuildReverseSeq(const NnLayerSpec& spec) {
  const int64_t batch_axis = spec.params.Int(1), seq_axis = spec.params.Int(2);
  const NnLayerLabel label = spec;
  return NnKernel([=](const std::vector<const Tensor*>& in) -> absl::StatusOr<std::vector<Tensor>> {
    const Tensor &x = *in[0], &lengths = *in[1];
    if (!x.is_float()) return label.Invalid("expects a float input");
    ASSIGN_OR_RETURN(int64_t ba, Axis(batch_axis, x.rank(), label));
    ASSIGN_OR_RETURN(int64_t sa, Axis(seq_axis, x.rank(), label));
    if (ba == sa) return label.Invalid("batchAxis and sequenceAxis are the same axis");
    ASSIGN_OR_RETURN(std::vector<int64_t> len, Whole(lengths, x.dim(ba), "seq_lengths", label));
    for (int64_t l : len) {
      if (l < 0 || l > x.dim(sa)) return label.Invalid(absl::StrCat("seq_lengths value ", l, " is out of range"));
    }
    const std::vector<int64_t> stride = RowMajorStrides(x.shape());
    return Outputs(TakeEach(x, x.shape(), [&](const std::vector<int64_t>& idx, int64_t i) {
      const int64_t l = len[idx[ba]], s = idx[sa];
      return s < l ? i + (l - 1 - 2 * s) * stride[sa] : i;
    }));
  });
}

// slidingWindows: shape[:axis] + [M, windowSize] + shape[axis + 1:] with
// M = (L - windowSize) / step + 1; window m starts at m * step.
absl::StatusOr<NnKernel> BuildSlidingWindows(const NnLayerSpec& spec) {
  const int64_t axis = spec.params.Int(1), window = spec.params.Int(2), step = spec.params.Int(3);
  if (window < 1 || window > MaxTensorElements()) return spec.Invalid("windowSize must be positive");
  if (step < 1 || step > MaxTensorElements()) return spec.Invalid("step must be positive");
  const NnLayerLabel label = spec;
  return NnKernel([=](const std::vector<const Tensor*>& in) -> absl::StatusOr<std::vector<Tensor>> {
    const Tensor& x = *in[0];
    if (!x.is_float()) return label.Invalid("expects a float input");
    ASSIGN_OR_RETURN(int64_t a, Axis(axis, x.rank(), label));
    const int64_t n = x.dim(a);
    if (window > n) return label.Invalid(absl::StrCat("windowSize ", window, " exceeds the axis' ", n));
    const int64_t m = (n - window) / step + 1;
    Shape out(x.shape().begin(), x.shape().begin() + a);
    out.push_back(m);
    out.push_back(window);
    out.insert(out.end(), x.shape().begin() + a + 1, x.shape().end());
    RETURN_IF_ERROR(CheckShape(out));
    const std::vector<int64_t> stride = RowMajorStrides(x.shape());
    return Outputs(TakeEach(x, out, [&](const std::vector<int64_t>& idx, int64_t) {
      int64_t src = 0;
      for (int64_t d = 0; d < x.rank(); ++d) {
        const int64_t at = d < a ? idx[d] : d == a ? idx[a] * step + idx[a + 1] : idx[d + 1];
        src += at * stride[d];
      }
      return src;
    }));
  });
}

}  // namespace coremlz::execute
