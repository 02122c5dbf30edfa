// Sampling an image at computed points (image_resizing.py): resample (iOS15;
// iOS16/17 only widen the coordinate dtypes), affine and crop_resize (iOS15
// roi, iOS16 pad_value, iOS17 boxes and box_indices).
//
// resample and affine sample the padded image as the op definitions draw
// it: a point outside the image reads the padding ("constant" the value,
// "border" the edge, "reflection" the image mirrored without repeating the
// edge, "symmetric" mirrored with it), bilinear from the four pixels around
// the point, nearest from the pixel its coordinates round to (halves away
// from zero). The coordinate modes map to pixels as PyTorch's grid_sample,
// which coremltools converts to resample: [-1, 1] -> (v + 1) / 2 * (n - 1)
// with align_corners, ((v + 1) * n - 1) / 2 without; [0, 1] -> v * (n - 1)
// or v * n - 0.5. These reproduce coremltools' own op tests
// (tests/execute/ops_sampling_test.cc).
//
// crop_resize samples each box as TensorFlow's crop_and_resize, which the
// converters map to its ALIGN_CORNERS mode: output point i of n lies at
// start + i * (end - start) / (n - 1) (the box centre for n = 1 under
// ALIGN_CORNERS, its start under STRICT_ALIGN_CORNERS), bilinear, and a
// point outside [0, size - 1] reads pad_value. The other sampling modes do
// not say where in a box their points lie and are UNIMPLEMENTED.
#include <algorithm>
#include <cmath>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "execute/bilinear.h"
#include "execute/op_registry.h"

namespace coremlz::execute {
namespace {

enum class Padding { kConstant, kBorder, kReflection, kSymmetric };

absl::StatusOr<Padding> ParsePadding(const OpContext& ctx, const std::string& name) {
  if (name == "constant") return Padding::kConstant;
  if (name == "border") return Padding::kBorder;
  if (name == "reflection") return Padding::kReflection;
  if (name == "symmetric") return Padding::kSymmetric;
  return ctx.Invalid(absl::StrCat("unknown padding_mode '", name, "'"));
}

// One [H, W] plane with its padding.
struct Plane {
  const float* data;
  int64_t h, w;
  Padding padding;
  float pad_value;

  // Index i of an axis of n after padding; -1 for the constant.
  int64_t Fold(int64_t i, int64_t n) const {
    if (i >= 0 && i < n) return i;
    switch (padding) {
      case Padding::kConstant: return -1;
      case Padding::kBorder: return i < 0 ? 0 : n - 1;
      case Padding::kReflection: {
        if (n == 1) return 0;
        const int64_t period = 2 * (n - 1);
        int64_t r = std::abs(i) % period;
        return r < n ? r : period - r;
      }
      case Padding::kSymmetric: {
        const int64_t period = 2 * n;
        int64_t r = ((i % period) + period) % period;
        return r < n ? r : period - 1 - r;
      }
    }
    return -1;
  }
  double At(int64_t y, int64_t x) const {
    const int64_t fy = Fold(y, h), fx = Fold(x, w);
    if (fy < 0 || fx < 0) return pad_value;
    return data[fy * w + fx];
  }
  double Bilinear(double y, double x) const {
    const double y0 = std::floor(y), x0 = std::floor(x);
    const double dy = y - y0, dx = x - x0;
    const int64_t iy = static_cast<int64_t>(y0), ix = static_cast<int64_t>(x0);
    return (At(iy, ix) * (1 - dx) + At(iy, ix + 1) * dx) * (1 - dy) +
           (At(iy + 1, ix) * (1 - dx) + At(iy + 1, ix + 1) * dx) * dy;
  }
  double Nearest(double y, double x) const {
    return At(static_cast<int64_t>(std::round(y)), static_cast<int64_t>(std::round(x)));
  }
};

// Pixel coordinate of a coordinate in `mode` along an axis of n.
absl::StatusOr<double> ToPixel(const OpContext& ctx, const std::string& mode, bool align, double v, int64_t n) {
  if (!std::isfinite(v)) return ctx.Invalid("coordinates must be finite");
  double p;
  if (mode == "unnormalized") {
    p = v;
  } else if (mode == "normalized_minus_one_to_one") {
    p = align ? (v + 1) / 2 * (n - 1) : ((v + 1) * n - 1) / 2;
  } else if (mode == "normalized_zero_to_one") {
    p = align ? v * (n - 1) : v * n - 0.5;
  } else {
    return ctx.Invalid(absl::StrCat("unknown coordinates_mode '", mode, "'"));
  }
  // Keeps the integer conversions defined; no image is 2^40 pixels wide.
  if (std::fabs(p) > static_cast<double>(int64_t{1} << 40)) return ctx.Invalid("a coordinate is out of range");
  return p;
}

absl::Status CheckImage(const OpContext& ctx, const Tensor& x) {
  if (!x.is_float() || x.rank() != 4) return ctx.Invalid("x must be a float [B, C, H, W] tensor");
  if (x.dim(2) < 1 || x.dim(3) < 1) return ctx.Invalid("x has an empty image");
  return absl::OkStatus();
}

absl::StatusOr<std::vector<Tensor>> Resample(const OpContext& ctx) {
  ASSIGN_OR_RETURN(const Tensor* x, ctx.Input("x"));
  ASSIGN_OR_RETURN(const Tensor* coords, ctx.Input("coordinates"));
  ASSIGN_OR_RETURN(std::string sampling, ctx.String("sampling_mode", ""));
  ASSIGN_OR_RETURN(std::string padding_name, ctx.String("padding_mode", ""));
  ASSIGN_OR_RETURN(double pad_value, ctx.Float("padding_value", 0));
  ASSIGN_OR_RETURN(std::string mode, ctx.String("coordinates_mode", ""));
  ASSIGN_OR_RETURN(bool align, ctx.Bool("align_corners", false));
  RETURN_IF_ERROR(CheckImage(ctx, *x));
  ASSIGN_OR_RETURN(Padding padding, ParsePadding(ctx, padding_name));
  if (sampling != "bilinear" && sampling != "nearest") {
    return ctx.Invalid(absl::StrCat("unknown sampling_mode '", sampling, "'"));
  }
  if (coords->rank() != 4 || coords->dim(0) != x->dim(0) || coords->dim(3) != 2 ||
      !(coords->is_float() || coords->dtype() == DType::kInt32)) {
    return ctx.Invalid("coordinates must be numeric [B, H_out, W_out, 2]");
  }
  const int64_t b = x->dim(0), c = x->dim(1), h = x->dim(2), w = x->dim(3);
  const int64_t oh = coords->dim(1), ow = coords->dim(2);
  ASSIGN_OR_RETURN(Tensor out, Tensor::Allocate(DType::kFloat32, {b, c, oh, ow}));
  std::vector<double> py(oh * ow), px(oh * ow);
  for (int64_t n = 0; n < b; ++n) {
    for (int64_t k = 0; k < oh * ow; ++k) {
      const int64_t at = (n * oh * ow + k) * 2;
      ASSIGN_OR_RETURN(px[k], ToPixel(ctx, mode, align, coords->AsDouble(at), w));
      ASSIGN_OR_RETURN(py[k], ToPixel(ctx, mode, align, coords->AsDouble(at + 1), h));
    }
    for (int64_t ch = 0; ch < c; ++ch) {
      const Plane plane{x->floats().data() + (n * c + ch) * h * w, h, w, padding, static_cast<float>(pad_value)};
      float* dst = out.mutable_floats().data() + (n * c + ch) * oh * ow;
      for (int64_t k = 0; k < oh * ow; ++k) {
        dst[k] = static_cast<float>(sampling == "bilinear" ? plane.Bilinear(py[k], px[k]) : plane.Nearest(py[k], px[k]));
      }
    }
  }
  return Outputs(std::move(out));
}

// affine: output point (x, y) on the [-1, 1] grid (align_corners: linspace
// over the output's pixels) samples the input at x' = a0 x + a1 y + a2,
// y' = b0 x + b1 y + b2, as PyTorch's affine_grid + grid_sample, which
// coremltools converts to it. The op definition allows only bilinear
// sampling, constant padding of 0, normalized_minus_one_to_one coordinates
// and align_corners; other values are refused as it refuses them.
absl::StatusOr<std::vector<Tensor>> Affine(const OpContext& ctx) {
  ASSIGN_OR_RETURN(const Tensor* x, ctx.Input("x"));
  ASSIGN_OR_RETURN(const Tensor* m, ctx.Input("transform_matrix"));
  ASSIGN_OR_RETURN(int64_t oh, ctx.Int("output_height"));
  ASSIGN_OR_RETURN(int64_t ow, ctx.Int("output_width"));
  ASSIGN_OR_RETURN(std::string sampling, ctx.String("sampling_mode", "bilinear"));
  ASSIGN_OR_RETURN(std::string padding, ctx.String("padding_mode", "constant"));
  ASSIGN_OR_RETURN(double pad_value, ctx.Float("padding_value", 0));
  ASSIGN_OR_RETURN(std::string mode, ctx.String("coordinates_mode", "normalized_minus_one_to_one"));
  ASSIGN_OR_RETURN(bool align, ctx.Bool("align_corners", true));
  RETURN_IF_ERROR(CheckImage(ctx, *x));
  if (absl::AsciiStrToLower(sampling) != "bilinear" || absl::AsciiStrToLower(padding) != "constant" ||
      pad_value != 0 || absl::AsciiStrToLower(mode) != "normalized_minus_one_to_one" || !align) {
    return ctx.Invalid(
        "takes only bilinear sampling, constant padding of 0, normalized_minus_one_to_one coordinates and "
        "align_corners");
  }
  const int64_t b = x->dim(0), c = x->dim(1), h = x->dim(2), w = x->dim(3);
  if (!m->is_float() || m->rank() != 2 || m->dim(1) != 6 || (m->dim(0) != b && m->dim(0) != 1)) {
    return ctx.Invalid("transform_matrix must be float [B or 1, 6]");
  }
  if (oh < 1 || ow < 1) return ctx.Invalid("output sizes must be positive");
  ASSIGN_OR_RETURN(Tensor out, Tensor::Allocate(DType::kFloat32, {b, c, oh, ow}));
  auto grid = [](int64_t i, int64_t n) { return n == 1 ? 0.0 : -1 + 2.0 * i / (n - 1); };
  std::vector<double> py(oh * ow), px(oh * ow);
  for (int64_t n = 0; n < b; ++n) {
    const float* a = m->floats().data() + (m->dim(0) == 1 ? 0 : n * 6);
    for (int64_t i = 0; i < oh; ++i)
      for (int64_t j = 0; j < ow; ++j) {
        const double gx = grid(j, ow), gy = grid(i, oh);
        ASSIGN_OR_RETURN(px[i * ow + j], ToPixel(ctx, "normalized_minus_one_to_one", true, a[0] * gx + a[1] * gy + a[2], w));
        ASSIGN_OR_RETURN(py[i * ow + j], ToPixel(ctx, "normalized_minus_one_to_one", true, a[3] * gx + a[4] * gy + a[5], h));
      }
    for (int64_t ch = 0; ch < c; ++ch) {
      const Plane plane{x->floats().data() + (n * c + ch) * h * w, h, w, Padding::kConstant, 0.f};
      float* dst = out.mutable_floats().data() + (n * c + ch) * oh * ow;
      for (int64_t k = 0; k < oh * ow; ++k) dst[k] = static_cast<float>(plane.Bilinear(py[k], px[k]));
    }
  }
  return Outputs(std::move(out));
}

absl::StatusOr<std::vector<Tensor>> CropResize(const OpContext& ctx) {
  ASSIGN_OR_RETURN(const Tensor* x, ctx.Input("x"));
  ASSIGN_OR_RETURN(int64_t th, ctx.Int("target_height", 1));
  ASSIGN_OR_RETURN(int64_t tw, ctx.Int("target_width", 1));
  ASSIGN_OR_RETURN(bool normalized, ctx.Bool("normalized_coordinates", false));
  ASSIGN_OR_RETURN(double scale, ctx.Float("spatial_scale", 1.0));
  ASSIGN_OR_RETURN(std::string box_mode, ctx.String("box_coordinate_mode", "CORNERS_HEIGHT_FIRST"));
  ASSIGN_OR_RETURN(std::string sampling, ctx.String("sampling_mode", "DEFAULT"));
  ASSIGN_OR_RETURN(double pad_value, ctx.Float("pad_value", 0.0));
  RETURN_IF_ERROR(CheckImage(ctx, *x));
  if (th < 1 || tw < 1) return ctx.Invalid("target sizes must be positive");
  if (box_mode != "CORNERS_HEIGHT_FIRST" && box_mode != "CORNERS_WIDTH_FIRST" &&
      box_mode != "CENTER_SIZE_HEIGHT_FIRST" && box_mode != "CENTER_SIZE_WIDTH_FIRST") {
    return ctx.Invalid(absl::StrCat("unknown box_coordinate_mode '", box_mode, "'"));
  }
  if (sampling != "ALIGN_CORNERS" && sampling != "STRICT_ALIGN_CORNERS") {
    if (sampling == "DEFAULT" || sampling == "OFFSET_CORNERS" || sampling == "UNALIGN_CORNERS") {
      return absl::UnimplementedError(absl::StrCat("crop_resize: sampling_mode '", sampling,
                                                   "' is not implemented by the reference executor"));
    }
    return ctx.Invalid(absl::StrCat("unknown sampling_mode '", sampling, "'"));
  }
  const int64_t b = x->dim(0), c = x->dim(1), h = x->dim(2), w = x->dim(3);
  // Boxes as (image or -1 for every image, four coordinates).
  struct Box {
    int64_t image;
    double v[4];
  };
  std::vector<Box> boxes;
  Shape out_shape;
  if (ctx.Has("roi")) {  // iOS15/16: [N, 1, 4 or 5, 1, 1]
    ASSIGN_OR_RETURN(const Tensor* roi, ctx.Input("roi"));
    if (!roi->is_float() || roi->rank() != 5 || roi->dim(1) != 1 || (roi->dim(2) != 4 && roi->dim(2) != 5) ||
        roi->dim(3) != 1 || roi->dim(4) != 1) {
      return ctx.Invalid("roi must be float [N, 1, 4 or 5, 1, 1]");
    }
    const int64_t n = roi->dim(0), k = roi->dim(2);
    for (int64_t i = 0; i < n; ++i) {
      Box box{-1, {}};
      if (k == 5) {
        const double index = roi->floats()[i * 5];
        if (!(index >= 0 && index < b && index == std::floor(index))) return ctx.Invalid("roi's image index is out of range");
        box.image = static_cast<int64_t>(index);
      }
      for (int j = 0; j < 4; ++j) box.v[j] = roi->floats()[i * k + (k - 4) + j];
      boxes.push_back(box);
    }
    out_shape = {n, k == 5 ? 1 : b, c, th, tw};
  } else {  // iOS17: boxes [N, 4], box_indices [N]
    ASSIGN_OR_RETURN(const Tensor* t, ctx.Input("boxes"));
    if (t->rank() != 2 || t->dim(1) != 4 || !(t->is_float() || t->dtype() == DType::kInt32)) {
      return ctx.Invalid("boxes must be [N, 4]");
    }
    const int64_t n = t->dim(0);
    const Tensor* indices = ctx.Optional("box_indices");
    if (indices != nullptr && (indices->rank() != 1 || indices->dim(0) != n || !indices->is_integer_storage())) {
      return ctx.Invalid("box_indices must be integer [N]");
    }
    for (int64_t i = 0; i < n; ++i) {
      Box box{indices != nullptr ? indices->AsInt(i) : i, {}};
      if (box.image < 0 || box.image >= b) return ctx.Invalid("a box index is out of range");
      for (int j = 0; j < 4; ++j) box.v[j] = t->AsDouble(i * 4 + j);
      boxes.push_back(box);
    }
    out_shape = {n, c, th, tw};
  }
  ASSIGN_OR_RETURN(Tensor out, Tensor::Allocate(DType::kFloat32, out_shape));
  float* dst = out.mutable_floats().data();
  const bool strict = sampling == "STRICT_ALIGN_CORNERS";
  for (const Box& box : boxes) {
    // [h_start, w_start, h_end, w_end] in pixels.
    double y0, x0, y1, x1;
    const double* v = box.v;
    if (box_mode == "CORNERS_HEIGHT_FIRST") {
      y0 = v[0], x0 = v[1], y1 = v[2], x1 = v[3];
    } else if (box_mode == "CORNERS_WIDTH_FIRST") {
      x0 = v[0], y0 = v[1], x1 = v[2], y1 = v[3];
    } else if (box_mode == "CENTER_SIZE_HEIGHT_FIRST") {
      y0 = v[0] - v[2] / 2, x0 = v[1] - v[3] / 2, y1 = v[0] + v[2] / 2, x1 = v[1] + v[3] / 2;
    } else {
      x0 = v[0] - v[2] / 2, y0 = v[1] - v[3] / 2, x1 = v[0] + v[2] / 2, y1 = v[1] + v[3] / 2;
    }
    const double sy = scale * (normalized ? h - 1 : 1), sx = scale * (normalized ? w - 1 : 1);
    const std::vector<double> py = CropBoxPoints(y0 * sy, y1 * sy, th, strict), px = CropBoxPoints(x0 * sx, x1 * sx, tw, strict);
    for (double p : py) {
      if (!std::isfinite(p)) return ctx.Invalid("box coordinates must be finite");
    }
    for (double p : px) {
      if (!std::isfinite(p)) return ctx.Invalid("box coordinates must be finite");
    }
    const int64_t first = box.image < 0 ? 0 : box.image, last = box.image < 0 ? b : box.image + 1;
    for (int64_t image = first; image < last; ++image)
      for (int64_t ch = 0; ch < c; ++ch) {
        const float* src = x->floats().data() + (image * c + ch) * h * w;
        for (int64_t i = 0; i < th; ++i)
          for (int64_t j = 0; j < tw; ++j) {
            *dst++ = static_cast<float>(BilinearOrPad(src, h, w, py[i], px[j], pad_value));
          }
      }
  }
  return Outputs(std::move(out));
}

}  // namespace

void RegisterSamplingOps(OpRegistry* r) {
  r->Register("resample", Resample);
  r->Register("affine", Affine);
  r->Register("crop_resize", CropResize);
}

}  // namespace coremlz::execute
