// avg_pool, max_pool and l2_pool (iOS15 pool.py): 1-D and 2-D windows over
// NC* inputs, pad_type valid/same/same_lower/custom, ceil_mode, and for
// avg_pool exclude_padding_from_average. l2_pool is the square root of the
// sum of squares of the window's input elements (padding adds nothing).
#include <algorithm>
#include <cmath>
#include <limits>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "execute/op_registry.h"
#include "execute/padding.h"

namespace coremlz::execute {
namespace {

enum class PoolKind { kAverage, kMax, kL2 };

absl::StatusOr<std::vector<Tensor>> Pool(const OpContext& ctx, PoolKind kind) {
  ASSIGN_OR_RETURN(const Tensor* x, ctx.Input("x"));
  if (!x->is_float()) return ctx.Invalid("x must be floating point");
  const int64_t spatial = x->rank() - 2;
  if (spatial == 3) return absl::UnimplementedError(absl::StrCat(ctx.type(), ": 3-D pooling is not implemented by the reference executor"));
  if (spatial < 1 || spatial > 2) return ctx.Invalid(absl::StrCat("x must have rank 3 or 4, not ", x->rank()));
  ASSIGN_OR_RETURN(std::vector<int64_t> kernel, ctx.Ints("kernel_sizes"));
  ASSIGN_OR_RETURN(std::vector<int64_t> strides, ctx.Ints("strides", std::vector<int64_t>(spatial, 1)));
  ASSIGN_OR_RETURN(std::string pad_type, ctx.String("pad_type", "valid"));
  ASSIGN_OR_RETURN(std::vector<int64_t> custom, ctx.Ints("pad", std::vector<int64_t>(2 * spatial, 0)));
  ASSIGN_OR_RETURN(bool ceil_mode, ctx.Bool("ceil_mode", false));
  ASSIGN_OR_RETURN(bool exclude_pad, ctx.Bool("exclude_padding_from_average", false));
  if (static_cast<int64_t>(kernel.size()) != spatial || static_cast<int64_t>(strides.size()) != spatial) {
    return ctx.Invalid("kernel_sizes and strides need one value per spatial dim");
  }
  std::vector<int64_t> in;
  for (int64_t i = 0; i < spatial; ++i) {
    if (kernel[i] < 1 || strides[i] < 1) return ctx.Invalid("kernel sizes and strides must be positive");
    in.push_back(x->dim(2 + i));
  }
  auto pad = ResolvePadding(pad_type, custom, in, kernel, strides);
  if (!pad.ok()) return ctx.Invalid(pad.status().message());
  // Treat 1-D as 2-D with a height of 1.
  if (spatial == 1) {
    in.insert(in.begin(), 1);
    kernel.insert(kernel.begin(), 1);
    strides.insert(strides.begin(), 1);
    pad->insert(pad->begin(), {0, 0});
  }
  int64_t out[2];
  for (int i = 0; i < 2; ++i) {
    const int64_t total = (*pad)[2 * i] + (*pad)[2 * i + 1];
    if (!ceil_mode) {
      out[i] = (in[i] + total - kernel[i]) / strides[i] + 1;
    } else {
      out[i] = (in[i] + total - kernel[i] + strides[i] - 1) / strides[i] + 1;
      // The last window must start inside the input or its left padding.
      if (total > 0 && (out[i] - 1) * strides[i] >= in[i] + total / 2.0) --out[i];
    }
    if (out[i] < 1 || in[i] + total < kernel[i]) return ctx.Invalid("the window is larger than the padded input");
  }
  const int64_t planes = x->dim(0) * x->dim(1);
  Shape out_shape = {x->dim(0), x->dim(1)};
  if (spatial == 2) out_shape.push_back(out[0]);
  out_shape.push_back(out[1]);
  ASSIGN_OR_RETURN(Tensor result, Tensor::Allocate(DType::kFloat32, out_shape));
  float* o = result.mutable_floats().data();
  const float* src = x->floats().data();
  const int64_t h = in[0], w = in[1];
  for (int64_t p = 0; p < planes; ++p) {
    const float* plane = src + p * h * w;
    for (int64_t oy = 0; oy < out[0]; ++oy) {
      for (int64_t ox = 0; ox < out[1]; ++ox) {
        const int64_t y0 = oy * strides[0] - (*pad)[0], x0 = ox * strides[1] - (*pad)[2];
        float best = -std::numeric_limits<float>::infinity();
        double sum = 0, squares = 0;
        int64_t inside = 0, padded = 0;
        for (int64_t ky = 0; ky < kernel[0]; ++ky) {
          const int64_t iy = y0 + ky;
          for (int64_t kx = 0; kx < kernel[1]; ++kx) {
            const int64_t ix = x0 + kx;
            // Positions in the padding count toward the average; positions
            // past it (ceil_mode's last window) do not.
            if (iy < h + (*pad)[1] && ix < w + (*pad)[3]) ++padded;
            if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;
            const float v = plane[iy * w + ix];
            best = std::max(best, v);
            sum += v;
            squares += static_cast<double>(v) * v;
            ++inside;
          }
        }
        float value;
        if (kind == PoolKind::kMax) value = best;
        else if (kind == PoolKind::kL2) value = static_cast<float>(std::sqrt(squares));
        else value = static_cast<float>(sum / std::max<int64_t>(1, exclude_pad ? inside : padded));
        o[(p * out[0] + oy) * out[1] + ox] = value;
      }
    }
  }
  return Outputs(std::move(result));
}

absl::StatusOr<std::vector<Tensor>> AvgPool(const OpContext& ctx) { return Pool(ctx, PoolKind::kAverage); }
absl::StatusOr<std::vector<Tensor>> MaxPool(const OpContext& ctx) { return Pool(ctx, PoolKind::kMax); }
absl::StatusOr<std::vector<Tensor>> L2Pool(const OpContext& ctx) { return Pool(ctx, PoolKind::kL2); }

}  // namespace

void RegisterPoolOps(OpRegistry* r) {
  r->Register("avg_pool", AvgPool);
  r->Register("max_pool", MaxPool);
  r->Register("l2_pool", L2Pool);
}

}  // namespace coremlz::execute
