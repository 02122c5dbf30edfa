// resize_bilinear (iOS15 image_resizing.py): bilinear interpolation of the
// last two dims to a target size, with the five sampling modes that place
// the output grid points on the input; upsample_nearest_neighbor.
#include <algorithm>
#include <cmath>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "execute/op_registry.h"

namespace coremlz::execute {
namespace {

// Input coordinate of each output position along one axis, or an error for
// an unknown mode.
absl::StatusOr<std::vector<double>> GridPoints(const std::string& mode, int64_t in, int64_t out) {
  std::vector<double> g(out);
  const double xin = static_cast<double>(in), xout = static_cast<double>(out);
  for (int64_t i = 0; i < out; ++i) {
    double p;
    if (mode == "STRICT_ALIGN_CORNERS" || mode == "ALIGN_CORNERS") {
      if (out == 1) p = mode == "ALIGN_CORNERS" ? (xin - 1) / 2 : 0;
      else p = i * (xin - 1) / (xout - 1);
    } else if (mode == "DEFAULT") {
      p = out == 1 ? 0 : i * (xin - xin / xout) / (xout - 1);
    } else if (mode == "OFFSET_CORNERS") {
      const double delta = std::max(1.0, xin - 1) / xout;
      p = 0.5 * delta + i * delta;
    } else if (mode == "UNALIGN_CORNERS") {
      const double spacing = xin / xout;
      p = i * spacing + 0.5 * spacing - 0.5;
    } else {
      return absl::InvalidArgumentError(absl::StrCat("unknown sampling_mode '", mode, "'"));
    }
    g[i] = std::min(xin - 1, std::max(0.0, p));
  }
  return g;
}

absl::StatusOr<std::vector<Tensor>> ResizeBilinear(const OpContext& ctx) {
  ASSIGN_OR_RETURN(const Tensor* x, ctx.Input("x"));
  if (!x->is_float() || x->rank() < 3) return ctx.Invalid("x must be floating point with rank >= 3");
  ASSIGN_OR_RETURN(int64_t oh, ctx.Int("target_size_height", 1));
  ASSIGN_OR_RETURN(int64_t ow, ctx.Int("target_size_width", 1));
  ASSIGN_OR_RETURN(std::string mode, ctx.String("sampling_mode", "DEFAULT"));
  if (oh < 1 || ow < 1) return ctx.Invalid("target sizes must be positive");
  const int64_t h = x->dim(x->rank() - 2), w = x->dim(x->rank() - 1);
  if (h < 1 || w < 1) return ctx.Invalid("empty spatial dims");
  auto gy = GridPoints(mode, h, oh);
  if (!gy.ok()) return ctx.Invalid(gy.status().message());
  ASSIGN_OR_RETURN(std::vector<double> gx, GridPoints(mode, w, ow));
  Shape out_shape = x->shape();
  out_shape[x->rank() - 2] = oh;
  out_shape[x->rank() - 1] = ow;
  ASSIGN_OR_RETURN(Tensor out, Tensor::Allocate(DType::kFloat32, out_shape));
  const int64_t planes = x->size() / (h * w);
  float* o = out.mutable_floats().data();
  for (int64_t p = 0; p < planes; ++p) {
    const float* src = x->floats().data() + p * h * w;
    for (int64_t i = 0; i < oh; ++i) {
      const int64_t y0 = static_cast<int64_t>(std::floor((*gy)[i])), y1 = std::min(y0 + 1, h - 1);
      const double fy = (*gy)[i] - y0;
      for (int64_t j = 0; j < ow; ++j) {
        const int64_t x0 = static_cast<int64_t>(std::floor(gx[j])), x1 = std::min(x0 + 1, w - 1);
        const double fx = gx[j] - x0;
        const double top = src[y0 * w + x0] * (1 - fx) + src[y0 * w + x1] * fx;
        const double bottom = src[y1 * w + x0] * (1 - fx) + src[y1 * w + x1] * fx;
        o[(p * oh + i) * ow + j] = static_cast<float>(top * (1 - fy) + bottom * fy);
      }
    }
  }
  return Outputs(std::move(out));
}

// upsample_nearest_neighbor with integer scale factors: each input pixel
// becomes a scale_h x scale_w block. Fractional factors do not say which
// input pixel an output takes, so they are refused.
absl::StatusOr<std::vector<Tensor>> UpsampleNearest(const OpContext& ctx) {
  ASSIGN_OR_RETURN(const Tensor* x, ctx.Input("x"));
  if (x->rank() < 3 || x->dtype() == DType::kString) return ctx.Invalid("x must have rank >= 3");
  ASSIGN_OR_RETURN(double fh, ctx.Float("scale_factor_height", 1));
  ASSIGN_OR_RETURN(double fw, ctx.Float("scale_factor_width", 1));
  if (fh != std::floor(fh) || fw != std::floor(fw)) {
    return absl::UnimplementedError("upsample_nearest_neighbor: fractional scale factors are not implemented by the reference executor");
  }
  const int64_t sh = static_cast<int64_t>(fh), sw = static_cast<int64_t>(fw);
  if (sh < 1 || sw < 1) return ctx.Invalid("scale factors must be >= 1");
  const int64_t h = x->dim(x->rank() - 2), w = x->dim(x->rank() - 1);
  Shape out_shape = x->shape();
  out_shape[x->rank() - 2] = h * sh;
  out_shape[x->rank() - 1] = w * sw;
  ASSIGN_OR_RETURN(Tensor out, Tensor::Allocate(x->dtype(), out_shape));
  const int64_t planes = h * w == 0 ? 0 : x->size() / (h * w);
  for (int64_t p = 0; p < planes; ++p)
    for (int64_t y = 0; y < h * sh; ++y)
      for (int64_t xx = 0; xx < w * sw; ++xx) {
        const int64_t src = p * h * w + (y / sh) * w + xx / sw, dst = (p * h * sh + y) * w * sw + xx;
        if (x->is_float()) out.mutable_floats()[dst] = x->floats()[src];
        else out.mutable_ints()[dst] = x->ints()[src];
      }
  return Outputs(std::move(out));
}

}  // namespace

void RegisterResizeOps(OpRegistry* r) {
  r->Register("resize_bilinear", ResizeBilinear);
  r->Register("upsample_nearest_neighbor", UpsampleNearest);
}

}  // namespace coremlz::execute
