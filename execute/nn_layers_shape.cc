// NeuralNetwork layers that move data without arithmetic: flatten,
// transpose, permute, reshape, reorganizeData, concat, and the constants.
#include <algorithm>
#include <numeric>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "execute/nn_layer.h"

namespace coremlz::execute {
namespace {

// y = x with its axes permuted: y.shape[i] = x.shape[perm[i]].
Tensor Permute(const Tensor& x, const std::vector<int64_t>& perm) {
  const int64_t rank = x.rank();
  Shape out(rank);
  for (int64_t i = 0; i < rank; ++i) out[i] = x.dim(perm[i]);
  std::vector<int64_t> in_strides(rank, 1);
  for (int64_t i = rank - 2; i >= 0; --i) in_strides[i] = in_strides[i + 1] * x.dim(i + 1);
  Tensor y = Tensor::Zeros(DType::kFloat32, out);
  auto src = x.floats();
  auto dst = y.mutable_floats();
  std::vector<int64_t> index(rank, 0);
  for (int64_t i = 0; i < y.size(); ++i) {
    int64_t offset = 0;
    for (int64_t a = 0; a < rank; ++a) offset += index[a] * in_strides[perm[a]];
    dst[i] = src[offset];
    for (int64_t a = rank - 1; a >= 0; --a) {
      if (++index[a] < out[a]) break;
      index[a] = 0;
    }
  }
  return y;
}

absl::Status CheckPermutation(const std::vector<int64_t>& perm, int64_t rank, const NnLayerLabel& label) {
  std::vector<int64_t> sorted = perm;
  std::sort(sorted.begin(), sorted.end());
  for (int64_t i = 0; i < static_cast<int64_t>(sorted.size()); ++i) {
    if (sorted[i] != i) return label.Invalid("axes are not a permutation");
  }
  if (static_cast<int64_t>(perm.size()) != rank) {
    return label.Invalid(absl::StrCat("permutes ", perm.size(), " axes of a rank-", rank, " input"));
  }
  return absl::OkStatus();
}

absl::StatusOr<NnKernel> Constant(const NnLayerSpec& spec, Shape shape) {
  ASSIGN_OR_RETURN(const Tensor* data, spec.Weight("data"));
  if (NumElements(shape) != data->size()) return spec.Invalid("data does not match the shape");
  Tensor value = *data;
  value.Reshape(std::move(shape));
  return NnKernel([value](const std::vector<const Tensor*>&) -> absl::StatusOr<std::vector<Tensor>> {
    return Outputs(value);
  });
}

}  // namespace

absl::StatusOr<NnKernel> BuildFlatten(const NnLayerSpec& spec) {
  const bool channel_last = spec.params.Varint(1) == 1;
  const NnLayerLabel label = spec;
  return NnKernel([=](const std::vector<const Tensor*>& in) -> absl::StatusOr<std::vector<Tensor>> {
    const Tensor& x = *in[0];
    if (!x.is_float() || x.rank() < 3) return label.Invalid("expects a float input of rank >= 3");
    const int64_t r = x.rank();
    Shape out = x.shape();
    out[r - 3] = x.dim(r - 3) * x.dim(r - 2) * x.dim(r - 1);
    out[r - 2] = out[r - 1] = 1;
    Tensor y;
    if (channel_last) {
      // [.., C, H, W] -> [.., H, W, C], then flattened.
      std::vector<int64_t> perm(r);
      std::iota(perm.begin(), perm.end(), 0);
      perm[r - 3] = r - 2, perm[r - 2] = r - 1, perm[r - 1] = r - 3;
      y = Permute(x, perm);
    } else {
      y = x;
    }
    y.Reshape(out);
    return Outputs(std::move(y));
  });
}

absl::StatusOr<NnKernel> BuildTranspose(const NnLayerSpec& spec) {
  ASSIGN_OR_RETURN(std::vector<int64_t> axes, spec.params.Ints(1));
  const NnLayerLabel label = spec;
  return NnKernel([=](const std::vector<const Tensor*>& in) -> absl::StatusOr<std::vector<Tensor>> {
    RETURN_IF_ERROR(CheckPermutation(axes, in[0]->rank(), label));
    if (!in[0]->is_float()) return label.Invalid("expects a float input");
    return Outputs(Permute(*in[0], axes));
  });
}

absl::StatusOr<NnKernel> BuildPermute(const NnLayerSpec& spec) {
  ASSIGN_OR_RETURN(std::vector<int64_t> axis, spec.params.Ints(1));
  if (axis.empty()) axis = {0, 1, 2, 3};
  RETURN_IF_ERROR(CheckPermutation(axis, 4, spec));
  // `axis` orders [Seq, C, H, W]; the batch axis (1 of the rank-5 blob)
  // stays in place.
  const int64_t dims[4] = {0, 2, 3, 4};
  const std::vector<int64_t> perm = {dims[axis[0]], 1, dims[axis[1]], dims[axis[2]], dims[axis[3]]};
  const NnLayerLabel label = spec;
  return NnKernel([=](const std::vector<const Tensor*>& in) -> absl::StatusOr<std::vector<Tensor>> {
    if (in[0]->rank() != 5 || !in[0]->is_float()) return label.Invalid("expects a float rank-5 input");
    return Outputs(Permute(*in[0], perm));
  });
}

absl::StatusOr<NnKernel> BuildReshape(const NnLayerSpec& spec) {
  ASSIGN_OR_RETURN(std::vector<int64_t> target, spec.params.Ints(1));
  const bool channel_last = spec.params.Varint(2) == 1;
  if (target.size() != 3 && target.size() != 4) return spec.Invalid("targetShape must have 3 or 4 values");
  if (channel_last && target.size() == 4) return spec.Unimplemented("CHANNEL_LAST reshape that changes the sequence");
  const NnLayerLabel label = spec;
  return NnKernel([=](const std::vector<const Tensor*>& in) -> absl::StatusOr<std::vector<Tensor>> {
    const Tensor& x = *in[0];
    if (x.rank() != 5 || !x.is_float()) return label.Invalid("expects a float rank-5 input");
    const int64_t n = target.size();
    const Shape out = {n == 4 ? target[0] : x.dim(0), x.dim(1), target[n - 3], target[n - 2], target[n - 1]};
    if (NumElements(out) != x.size()) return label.Invalid("targetShape does not hold the input's elements");
    if (!channel_last) {
      Tensor y = x;
      y.Reshape(out);
      return Outputs(std::move(y));
    }
    // Per item: [C, H, W] read in H, W, C order, laid out as [H', W', C']
    // and permuted back to [C', H', W'].
    const int64_t items = x.dim(0) * x.dim(1);
    Tensor hwc = Permute(x, {0, 1, 3, 4, 2});
    hwc.Reshape({items, 1, out[3], out[4], out[2]});
    Tensor y = Permute(hwc, {0, 1, 4, 2, 3});
    y.Reshape(out);
    return Outputs(std::move(y));
  });
}

absl::StatusOr<NnKernel> BuildReorganizeData(const NnLayerSpec& spec) {
  enum { kSpaceToDepth = 0, kDepthToSpace = 1, kPixelShuffle = 2 };
  const int mode = static_cast<int>(spec.params.Varint(1));
  const int64_t bs = spec.params.Int(2);
  if (mode > kPixelShuffle) return spec.Unimplemented(absl::StrCat("reorganization mode ", mode));
  if (bs < 2) return spec.Invalid("blockSize must be greater than 1");
  const NnLayerLabel label = spec;
  return NnKernel([=](const std::vector<const Tensor*>& in) -> absl::StatusOr<std::vector<Tensor>> {
    const Tensor& x = *in[0];
    if (!x.is_float() || x.rank() < 3) return label.Invalid("expects a float input of rank >= 3");
    const int64_t r = x.rank(), c = x.dim(r - 3), h = x.dim(r - 2), w = x.dim(r - 1);
    int64_t batch = 1;
    for (int64_t i = 0; i + 3 < r; ++i) batch *= x.dim(i);
    Shape out = x.shape();
    if (mode == kSpaceToDepth) {
      if (h % bs != 0 || w % bs != 0) return label.Invalid("blockSize must divide H and W");
      out[r - 3] = c * bs * bs, out[r - 2] = h / bs, out[r - 1] = w / bs;
    } else {
      if (c % (bs * bs) != 0) return label.Invalid("blockSize squared must divide C");
      out[r - 3] = c / (bs * bs), out[r - 2] = h * bs, out[r - 1] = w * bs;
    }
    Tensor y = Tensor::Zeros(DType::kFloat32, out);
    auto src = x.floats();
    auto dst = y.mutable_floats();
    // Index of the depth element for channel k of block offset (by, bx):
    // depth-to-space and space-to-depth order channels block-major (as
    // TensorFlow does), pixel shuffle channel-major (as PyTorch does).
    const int64_t oc = out[r - 3], oh = out[r - 2], ow = out[r - 1];
    for (int64_t b = 0; b < batch; ++b) {
      if (mode == kSpaceToDepth) {
        for (int64_t k = 0; k < c; ++k)
          for (int64_t yy = 0; yy < h; ++yy)
            for (int64_t xx = 0; xx < w; ++xx) {
              const int64_t by = yy % bs, bx = xx % bs;
              const int64_t depth = (by * bs + bx) * c + k;
              dst[((b * oc + depth) * oh + yy / bs) * ow + xx / bs] = src[((b * c + k) * h + yy) * w + xx];
            }
      } else {
        for (int64_t k = 0; k < oc; ++k)
          for (int64_t yy = 0; yy < oh; ++yy)
            for (int64_t xx = 0; xx < ow; ++xx) {
              const int64_t by = yy % bs, bx = xx % bs;
              const int64_t depth = mode == kDepthToSpace ? (by * bs + bx) * oc + k : (k * bs + by) * bs + bx;
              dst[((b * oc + k) * oh + yy) * ow + xx] = src[((b * c + depth) * h + yy / bs) * w + xx / bs];
            }
      }
    }
    return Outputs(std::move(y));
  });
}

absl::StatusOr<NnKernel> BuildConcat(const NnLayerSpec& spec) {
  const int64_t from_end = spec.params.Bool(100) ? 5 : 3;  // sequenceConcat: axis -5, else -3
  const NnLayerLabel label = spec;
  return NnKernel([=](const std::vector<const Tensor*>& in) -> absl::StatusOr<std::vector<Tensor>> {
    const int64_t r = in[0]->rank();
    if (r < from_end) return label.Invalid(absl::StrCat("expects inputs of rank >= ", from_end));
    const int64_t axis = r - from_end;
    Shape out = in[0]->shape();
    out[axis] = 0;
    for (const Tensor* t : in) {
      if (!t->is_float() || t->rank() != r) return label.Invalid("inputs must be float tensors of one rank");
      for (int64_t a = 0; a < r; ++a) {
        if (a != axis && t->dim(a) != out[a]) return label.Invalid("inputs differ in a dimension other than the axis");
      }
      out[axis] += t->dim(axis);
    }
    int64_t outer = 1, inner = 1;
    for (int64_t a = 0; a < axis; ++a) outer *= out[a];
    for (int64_t a = axis + 1; a < r; ++a) inner *= out[a];
    Tensor y = Tensor::Zeros(DType::kFloat32, out);
    float* dst = y.mutable_floats().data();
    for (int64_t o = 0; o < outer; ++o) {
      for (const Tensor* t : in) {
        const int64_t chunk = t->dim(axis) * inner;
        const float* src = t->floats().data() + o * chunk;
        dst = std::copy(src, src + chunk, dst);
      }
    }
    return Outputs(std::move(y));
  });
}

absl::StatusOr<NnKernel> BuildLoadConstant(const NnLayerSpec& spec) {
  ASSIGN_OR_RETURN(std::vector<int64_t> shape, spec.params.Ints(1));
  if (shape.size() != 3) return spec.Invalid("shape must be [C, H, W]");
  return Constant(spec, {1, 1, shape[0], shape[1], shape[2]});
}

absl::StatusOr<NnKernel> BuildLoadConstantND(const NnLayerSpec& spec) {
  ASSIGN_OR_RETURN(std::vector<int64_t> shape, spec.params.Ints(1));
  if (shape.empty()) return spec.Invalid("has no shape");
  return Constant(spec, Shape(shape.begin(), shape.end()));
}

}  // namespace coremlz::execute
