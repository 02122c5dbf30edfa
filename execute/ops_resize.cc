// The image_resizing.py family, over the last two dims: resize_bilinear
// (iOS15; a target size and five sampling modes that place the output grid
// points on the input), upsample_bilinear (scale factors, align_corners and
// iOS16's half_pixel_centers), upsample_nearest_neighbor (integer factors),
// resize_nearest_neighbor (a target size, half-pixel centres), crop, and
// iOS17's resize (a target shape, possibly from a tensor, for the last one
// or two dims: LINEAR with resize_bilinear's sampling modes, or
// NEAREST_NEIGHBOR with DEFAULT sampling, which the converters emit as the
// dynamic-shape form of resize_nearest_neighbor).
#include <algorithm>
#include <cmath>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "execute/bilinear.h"
#include "execute/op_registry.h"

namespace coremlz::execute {
namespace {

absl::StatusOr<std::vector<Tensor>> ResizeBilinear(const OpContext& ctx) {
  ASSIGN_OR_RETURN(const Tensor* x, ctx.Input("x"));
  if (!x->is_float() || x->rank() < 3) return ctx.Invalid("x must be floating point with rank >= 3");
  ASSIGN_OR_RETURN(int64_t oh, ctx.Int("target_size_height", 1));
  ASSIGN_OR_RETURN(int64_t ow, ctx.Int("target_size_width", 1));
  ASSIGN_OR_RETURN(std::string mode, ctx.String("sampling_mode", "DEFAULT"));
  if (oh < 1 || ow < 1) return ctx.Invalid("target sizes must be positive");
  const int64_t h = x->dim(x->rank() - 2), w = x->dim(x->rank() - 1);
  if (h < 1 || w < 1) return ctx.Invalid("empty spatial dims");
  auto gy = ResizeGridPoints(mode, h, oh);
  if (!gy.ok()) return ctx.Invalid(gy.status().message());
  ASSIGN_OR_RETURN(std::vector<double> gx, ResizeGridPoints(mode, w, ow));
  ASSIGN_OR_RETURN(Tensor out, BilinearResize(*x, *gy, gx));
  return Outputs(std::move(out));
}

// upsample_bilinear: the output is floor(in * scale) along each axis, and
// the scale recomputed from the sizes (PyTorch's recompute_scale_factor).
// Grid points: align_corners i * (in - 1) / (out - 1); half-pixel centres
// (iOS16's half_pixel_centers, by default !align_corners) (i + 0.5) * in /
// out - 0.5; neither, i * in / out (TensorFlow's legacy mode); clamped to
// [0, in - 1].
absl::StatusOr<std::vector<Tensor>> UpsampleBilinear(const OpContext& ctx) {
  ASSIGN_OR_RETURN(const Tensor* x, ctx.Input("x"));
  if (!x->is_float() || x->rank() < 3) return ctx.Invalid("x must be floating point with rank >= 3");
  ASSIGN_OR_RETURN(double fh, ctx.Float("scale_factor_height", 1));
  ASSIGN_OR_RETURN(double fw, ctx.Float("scale_factor_width", 1));
  ASSIGN_OR_RETURN(bool align, ctx.Bool("align_corners", true));
  ASSIGN_OR_RETURN(bool half_pixel, ctx.Bool("half_pixel_centers", !align));
  if (align && half_pixel) return ctx.Invalid("align_corners and half_pixel_centers cannot both be set");
  const int64_t h = x->dim(x->rank() - 2), w = x->dim(x->rank() - 1);
  if (h < 1 || w < 1) return ctx.Invalid("empty spatial dims");
  if (!(fh > 0) || !(fw > 0) || h * fh > 1e9 || w * fw > 1e9) return ctx.Invalid("scale factors must be positive");
  const int64_t oh = static_cast<int64_t>(std::floor(h * fh)), ow = static_cast<int64_t>(std::floor(w * fw));
  if (oh < 1 || ow < 1) return ctx.Invalid("the output would be empty");
  auto grid = [&](int64_t in, int64_t out) {
    std::vector<double> g(out);
    const double xin = static_cast<double>(in), xout = static_cast<double>(out);
    for (int64_t i = 0; i < out; ++i) {
      double p;
      if (align) p = out == 1 ? 0 : i * (xin - 1) / (xout - 1);
      else if (half_pixel) p = (i + 0.5) * xin / xout - 0.5;
      else p = i * xin / xout;
      g[i] = std::min(xin - 1, std::max(0.0, p));
    }
    return g;
  };
  RETURN_IF_ERROR(CheckShape({x->size() / (h * w), oh, ow}));
  ASSIGN_OR_RETURN(Tensor out, BilinearResize(*x, grid(h, oh), grid(w, ow)));
  return Outputs(std::move(out));
}

// resize_nearest_neighbor: what TensorFlow's ResizeNearestNeighbor with
// half_pixel_centers computes (the converters emit it for that form):
// output i takes input min(floor((i + 0.5) * in / out), in - 1).
absl::StatusOr<std::vector<Tensor>> ResizeNearest(const OpContext& ctx) {
  ASSIGN_OR_RETURN(const Tensor* x, ctx.Input("x"));
  if (x->rank() < 3 || x->dtype() == DType::kString) return ctx.Invalid("x must have rank >= 3");
  ASSIGN_OR_RETURN(int64_t oh, ctx.Int("target_size_height"));
  ASSIGN_OR_RETURN(int64_t ow, ctx.Int("target_size_width"));
  if (oh < 1 || ow < 1) return ctx.Invalid("target sizes must be positive");
  const int64_t h = x->dim(x->rank() - 2), w = x->dim(x->rank() - 1);
  if (h < 1 || w < 1) return ctx.Invalid("empty spatial dims");
  auto source = [](int64_t i, int64_t in, int64_t out) {
    return std::min(in - 1, static_cast<int64_t>(std::floor((i + 0.5) * static_cast<double>(in) / out)));
  };
  Shape out_shape = x->shape();
  out_shape[x->rank() - 2] = oh;
  out_shape[x->rank() - 1] = ow;
  ASSIGN_OR_RETURN(Tensor out, Tensor::Allocate(x->dtype(), out_shape));
  std::vector<int64_t> sy(oh), sx(ow);
  for (int64_t i = 0; i < oh; ++i) sy[i] = source(i, h, oh);
  for (int64_t j = 0; j < ow; ++j) sx[j] = source(j, w, ow);
  const int64_t planes = x->size() / (h * w);
  for (int64_t p = 0; p < planes; ++p)
    for (int64_t i = 0; i < oh; ++i)
      for (int64_t j = 0; j < ow; ++j) {
        const int64_t src = (p * h + sy[i]) * w + sx[j], dst = (p * oh + i) * ow + j;
        if (x->is_float()) out.mutable_floats()[dst] = x->floats()[src];
        else out.mutable_ints()[dst] = x->ints()[src];
      }
  return Outputs(std::move(out));
}

// crop(x, crop_height, crop_width): [top, bottom] and [left, right] removed
// from the last two dims.
absl::StatusOr<std::vector<Tensor>> Crop(const OpContext& ctx) {
  ASSIGN_OR_RETURN(const Tensor* x, ctx.Input("x"));
  if (x->rank() < 3 || x->dtype() == DType::kString) return ctx.Invalid("x must have rank >= 3");
  ASSIGN_OR_RETURN(std::vector<int64_t> ch, ctx.Ints("crop_height"));
  ASSIGN_OR_RETURN(std::vector<int64_t> cw, ctx.Ints("crop_width"));
  if (ch.size() != 2 || cw.size() != 2) return ctx.Invalid("crop_height and crop_width need two values each");
  const int64_t h = x->dim(x->rank() - 2), w = x->dim(x->rank() - 1);
  for (int64_t v : {ch[0], ch[1], cw[0], cw[1]}) {
    if (v < 0) return ctx.Invalid("negative crop");
  }
  const int64_t oh = h - ch[0] - ch[1], ow = w - cw[0] - cw[1];
  if (oh < 1 || ow < 1) return ctx.Invalid("the crop removes the whole image");
  Shape out_shape = x->shape();
  out_shape[x->rank() - 2] = oh;
  out_shape[x->rank() - 1] = ow;
  ASSIGN_OR_RETURN(Tensor out, Tensor::Allocate(x->dtype(), out_shape));
  const int64_t planes = x->size() / (h * w);
  for (int64_t p = 0; p < planes; ++p)
    for (int64_t i = 0; i < oh; ++i)
      for (int64_t j = 0; j < ow; ++j) {
        const int64_t src = (p * h + i + ch[0]) * w + j + cw[0], dst = (p * oh + i) * ow + j;
        if (x->is_float()) out.mutable_floats()[dst] = x->floats()[src];
        else out.mutable_ints()[dst] = x->ints()[src];
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

// iOS17 resize: the last `resized_dims` dims of x take the last entries of
// `shape` (0 keeps x's size).
absl::StatusOr<std::vector<Tensor>> Resize(const OpContext& ctx) {
  ASSIGN_OR_RETURN(const Tensor* x, ctx.Input("x"));
  ASSIGN_OR_RETURN(const Tensor* shape_t, ctx.Input("shape"));
  ASSIGN_OR_RETURN(int64_t dims, ctx.Int("resized_dims"));
  ASSIGN_OR_RETURN(std::string interpolation, ctx.String("interpolation_mode", "LINEAR"));
  ASSIGN_OR_RETURN(std::string mode, ctx.String("sampling_mode", "DEFAULT"));
  if (x->dtype() == DType::kString || x->dtype() == DType::kList) return ctx.Invalid("x must be numeric");
  if (!shape_t->is_integer_storage() || shape_t->rank() != 1) return ctx.Invalid("shape must be a 1-D integer tensor");
  const int64_t k = shape_t->size(), rank = x->rank();
  if (dims < 0 || dims > k || k > rank) return ctx.Invalid("needs resized_dims <= size(shape) <= rank(x)");
  if (interpolation != "LINEAR" && interpolation != "NEAREST_NEIGHBOR") {
    return ctx.Invalid(absl::StrCat("unknown interpolation_mode '", interpolation, "'"));
  }
  if (dims == 0) return Outputs(Tensor(*x));
  if (dims > 2) {
    return absl::UnimplementedError(
        absl::StrCat("resize: resizing ", dims, " dims is not implemented by the reference executor"));
  }
  Shape out_shape = x->shape();
  for (int64_t i = 0; i < dims; ++i) {
    const int64_t target = shape_t->ints()[k - dims + i];
    if (target < 0) return ctx.Invalid("shape has a negative size");
    if (target > 0) out_shape[rank - dims + i] = target;
  }
  RETURN_IF_ERROR(CheckShape(out_shape));
  // The resized dims as [.., h, w] (h = 1 when only the last one is resized).
  const int64_t w = x->dim(rank - 1), h = dims == 2 ? x->dim(rank - 2) : 1;
  const int64_t ow = out_shape[rank - 1], oh = dims == 2 ? out_shape[rank - 2] : 1;
  if (h < 1 || w < 1 || oh < 1 || ow < 1) return ctx.Invalid("empty dims cannot be resized");
  if (interpolation == "LINEAR") {
    if (!x->is_float()) {
      return absl::UnimplementedError("resize: LINEAR of an integer tensor is not implemented by the reference executor");
    }
    ASSIGN_OR_RETURN(std::vector<double> gx, ResizeGridPoints(mode, w, ow));
    std::vector<double> gy = {0};
    if (dims == 2) {
      ASSIGN_OR_RETURN(gy, ResizeGridPoints(mode, h, oh));
    }
    Tensor view = *x;
    view.Reshape({x->size() / (h * w), h, w});
    ASSIGN_OR_RETURN(Tensor out, BilinearResize(view, gy, gx));
    out.Reshape(out_shape);
    return Outputs(std::move(out));
  }
  if (mode != "DEFAULT") {
    return absl::UnimplementedError(absl::StrCat("resize: NEAREST_NEIGHBOR with sampling_mode '", mode,
                                                 "' is not implemented by the reference executor"));
  }
  // As resize_nearest_neighbor: input min(floor((i + 0.5) * in / out), in - 1).
  auto source = [](int64_t i, int64_t in, int64_t out) {
    return std::min(in - 1, static_cast<int64_t>(std::floor((i + 0.5) * static_cast<double>(in) / out)));
  };
  ASSIGN_OR_RETURN(Tensor out, Tensor::Allocate(x->dtype(), out_shape));
  const int64_t planes = x->size() / (h * w);
  for (int64_t p = 0; p < planes; ++p)
    for (int64_t i = 0; i < oh; ++i)
      for (int64_t j = 0; j < ow; ++j) {
        const int64_t src = (p * h + source(i, h, oh)) * w + source(j, w, ow), dst = (p * oh + i) * ow + j;
        if (x->is_float()) out.mutable_floats()[dst] = x->floats()[src];
        else out.mutable_ints()[dst] = x->ints()[src];
      }
  return Outputs(std::move(out));
}

}  // namespace

void RegisterResizeOps(OpRegistry* r) {
  r->Register("resize", Resize);
  r->Register("resize_bilinear", ResizeBilinear);
  r->Register("upsample_nearest_neighbor", UpsampleNearest);
  r->Register("upsample_bilinear", UpsampleBilinear);
  r->Register("resize_nearest_neighbor", ResizeNearest);
  r->Register("crop", Crop);
}

}  // namespace coremlz::execute
