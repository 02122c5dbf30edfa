// Ops that move elements between the channel and spatial dims of an NCHW
// tensor, or cut a dim into windows (iOS15/16 tensor_transformation.py):
// depth_to_space / space_to_depth (TensorFlow's DepthToSpace and
// SpaceToDepth in NCHW: a block's offset is the major part of the channel),
// pixel_shuffle / pixel_unshuffle (PyTorch's: the channel is the major part)
// and sliding_windows. Each computes the input element of every output
// element (TakeEach), so they move any dtype.
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "execute/element_index.h"
#include "execute/op_registry.h"

namespace coremlz::execute {
namespace {

enum class Order { kBlockMajor, kChannelMajor };

// A block wider than this is malformed (and its square would overflow).
constexpr int64_t kMaxFactor = int64_t{1} << 15;

// [n, C * b * b, H, W] -> [n, C, H * b, W * b]: output (c, y, x) takes
// channel (by * b + bx) * C + c (block-major) or (c * b + by) * b + bx
// (channel-major) at (y / b, x / b), where (by, bx) = (y % b, x % b).
absl::StatusOr<std::vector<Tensor>> ToSpace(const OpContext& ctx, const char* factor_name, Order order) {
  ASSIGN_OR_RETURN(const Tensor* x, ctx.Input("x"));
  ASSIGN_OR_RETURN(int64_t b, ctx.Int(factor_name));
  if (x->rank() != 4 || x->dtype() == DType::kString) return ctx.Invalid("x must be a rank-4 tensor");
  if (b < 1 || b > kMaxFactor) return ctx.Invalid(absl::StrCat(factor_name, " must be in [1, ", kMaxFactor, "]"));
  const int64_t n = x->dim(0), cin = x->dim(1), h = x->dim(2), w = x->dim(3);
  if (cin % (b * b) != 0) return ctx.Invalid(absl::StrCat(factor_name, " squared must divide the channels"));
  const int64_t c = cin / (b * b);
  const Shape out_shape = {n, c, h * b, w * b};
  RETURN_IF_ERROR(CheckShape(out_shape));
  return Outputs(TakeEach(*x, out_shape, [&](const std::vector<int64_t>& o, int64_t) {
    const int64_t by = o[2] % b, bx = o[3] % b;
    const int64_t channel = order == Order::kBlockMajor ? (by * b + bx) * c + o[1] : (o[1] * b + by) * b + bx;
    return ((o[0] * cin + channel) * h + o[2] / b) * w + o[3] / b;
  }));
}

// The inverse: [n, C, H * b, W * b] -> [n, C * b * b, H, W].
absl::StatusOr<std::vector<Tensor>> ToDepth(const OpContext& ctx, const char* factor_name, Order order) {
  ASSIGN_OR_RETURN(const Tensor* x, ctx.Input("x"));
  ASSIGN_OR_RETURN(int64_t b, ctx.Int(factor_name));
  if (x->rank() != 4 || x->dtype() == DType::kString) return ctx.Invalid("x must be a rank-4 tensor");
  if (b < 1 || b > kMaxFactor) return ctx.Invalid(absl::StrCat(factor_name, " must be in [1, ", kMaxFactor, "]"));
  const int64_t n = x->dim(0), c = x->dim(1), h = x->dim(2), w = x->dim(3);
  if (h % b != 0 || w % b != 0) return ctx.Invalid(absl::StrCat(factor_name, " must divide the height and width"));
  const int64_t cout = c * b * b, oh = h / b, ow = w / b;
  const Shape out_shape = {n, cout, oh, ow};
  return Outputs(TakeEach(*x, out_shape, [&](const std::vector<int64_t>& o, int64_t) {
    int64_t channel, by, bx;
    if (order == Order::kBlockMajor) {
      channel = o[1] % c, by = o[1] / c / b, bx = o[1] / c % b;
    } else {
      channel = o[1] / (b * b), by = o[1] / b % b, bx = o[1] % b;
    }
    return ((o[0] * c + channel) * h + o[2] * b + by) * w + o[3] * b + bx;
  }));
}

absl::StatusOr<std::vector<Tensor>> DepthToSpace(const OpContext& ctx) {
  return ToSpace(ctx, "block_size", Order::kBlockMajor);
}
absl::StatusOr<std::vector<Tensor>> SpaceToDepth(const OpContext& ctx) {
  return ToDepth(ctx, "block_size", Order::kBlockMajor);
}
absl::StatusOr<std::vector<Tensor>> PixelShuffle(const OpContext& ctx) {
  return ToSpace(ctx, "upscale_factor", Order::kChannelMajor);
}
absl::StatusOr<std::vector<Tensor>> PixelUnshuffle(const OpContext& ctx) {
  return ToDepth(ctx, "downscale_factor", Order::kChannelMajor);
}

// sliding_windows(x, axis, size, stride = 1): the dim at `axis` becomes
// (d - size) / stride + 1 windows of `size` elements: window k, element j
// is x[..., k * stride + j, ...].
absl::StatusOr<std::vector<Tensor>> SlidingWindows(const OpContext& ctx) {
  ASSIGN_OR_RETURN(const Tensor* x, ctx.Input("x"));
  ASSIGN_OR_RETURN(int64_t axis_in, ctx.Int("axis"));
  ASSIGN_OR_RETURN(int64_t size, ctx.Int("size"));
  ASSIGN_OR_RETURN(int64_t stride, ctx.Int("stride", 1));
  if (x->dtype() == DType::kString || x->is_list()) return ctx.Invalid("x must be numeric");
  auto axis = NormalizeAxis(axis_in, x->rank());
  if (!axis.ok()) return ctx.Invalid(axis.status().message());
  const int64_t a = *axis, d = x->dim(a);
  if (size < 1 || stride < 1) return ctx.Invalid("size and stride must be positive");
  if (size > d) return ctx.Invalid(absl::StrCat("a window of ", size, " does not fit a dim of ", d));
  Shape out_shape = x->shape();
  out_shape[a] = (d - size) / stride + 1;
  out_shape.insert(out_shape.begin() + a + 1, size);
  RETURN_IF_ERROR(CheckShape(out_shape));
  const std::vector<int64_t> in_stride = RowMajorStrides(x->shape());
  return Outputs(TakeEach(*x, out_shape, [&](const std::vector<int64_t>& o, int64_t) {
    int64_t off = 0;
    for (int64_t k = 0; k < x->rank(); ++k) {
      // Output dims a and a + 1 (window, element) address input dim a;
      // those after shift by one.
      const int64_t at = k < a ? o[k] : k == a ? o[a] * stride + o[a + 1] : o[k + 1];
      off += at * in_stride[k];
    }
    return off;
  }));
}

}  // namespace

void RegisterRearrangeOps(OpRegistry* r) {
  r->Register("depth_to_space", DepthToSpace);
  r->Register("space_to_depth", SpaceToDepth);
  r->Register("pixel_shuffle", PixelShuffle);
  r->Register("pixel_unshuffle", PixelUnshuffle);
  r->Register("sliding_windows", SlidingWindows);
}

}  // namespace coremlz::execute
