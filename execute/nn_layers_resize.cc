// NeuralNetwork bilinear resampling layers: resizeBilinear (a target size
// over the last two axes) and cropResize (boxes cut from a rank-5 image and
// resized), on the grids execute/bilinear.h shares with the ML Program ops.
//
// SamplingMode, as NeuralNetwork.proto places N points on [0, X - 1]:
// STRICT_ALIGN_ENDPOINTS linspace(0, X - 1) (0 for N = 1),
// ALIGN_ENDPOINTS the same but (X - 1) / 2 for N = 1, UPSAMPLE
// linspace(0, X - X / N), ROI_ALIGN spacing max(1, X - 1) / N from half a
// spacing in; all clamped to [0, X - 1]. These are the ML Program grids
// STRICT_ALIGN_CORNERS, ALIGN_CORNERS, DEFAULT and OFFSET_CORNERS.
//
// cropResize places a box's points as the ML Program crop_resize does
// (linspace over the box, its centre or start for one point) and reads 0
// outside the image. The proto does not say where UPSAMPLE and ROI_ALIGN
// put points inside a box, so those two are UNIMPLEMENTED there.
#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "execute/bilinear.h"
#include "execute/nn_layer.h"

namespace coremlz::execute {
namespace {

// targetSize: [H_out, W_out], [1, 1] when absent.
absl::StatusOr<std::pair<int64_t, int64_t>> TargetSize(const NnLayerSpec& spec) {
  ASSIGN_OR_RETURN(std::vector<int64_t> size, spec.params.Ints(1));
  if (size.empty()) return std::make_pair(int64_t{1}, int64_t{1});
  if (size.size() != 2) return spec.Invalid("targetSize must be [height, width]");
  for (int64_t s : size) {
    if (s < 1 || s > MaxTensorElements()) return spec.Invalid(absl::StrCat("targetSize ", s, " is out of range"));
  }
  // Bounds the sampling grids even where the input is empty.
  RETURN_IF_ERROR(CheckShape(size));
  return std::make_pair(size[0], size[1]);
}

// The SamplingMode message in `field` as the ML Program mode name.
absl::StatusOr<std::string> SamplingMode(const NnLayerSpec& spec, int field) {
  ASSIGN_OR_RETURN(WireMessage mode, spec.params.Message(field));
  switch (mode.Int(1)) {
    case 0:
      return std::string("STRICT_ALIGN_CORNERS");
    case 1:
      return std::string("ALIGN_CORNERS");
    case 2:
      return std::string("DEFAULT");
    case 3:
      return std::string("OFFSET_CORNERS");
    default:
      return spec.Invalid(absl::StrCat("unknown samplingMethod ", mode.Int(1)));
  }
}

}  // namespace

absl::StatusOr<NnKernel> BuildResizeBilinear(const NnLayerSpec& spec) {
  ASSIGN_OR_RETURN(auto size, TargetSize(spec));
  ASSIGN_OR_RETURN(std::string mode, SamplingMode(spec, 2));
  const NnLayerLabel label = spec;
  return NnKernel([=](const std::vector<const Tensor*>& in) -> absl::StatusOr<std::vector<Tensor>> {
    const Tensor& x = *in[0];
    if (!x.is_float() || x.rank() < 3) return label.Invalid("expects a float input of rank >= 3");
    const int64_t h = x.dim(x.rank() - 2), w = x.dim(x.rank() - 1);
    if (h < 1 || w < 1) return label.Invalid("the input has an empty spatial axis");
    RETURN_IF_ERROR(CheckShape({x.size() / (h * w), size.first, size.second}));
    ASSIGN_OR_RETURN(std::vector<double> gy, ResizeGridPoints(mode, h, size.first));
    ASSIGN_OR_RETURN(std::vector<double> gx, ResizeGridPoints(mode, w, size.second));
    ASSIGN_OR_RETURN(Tensor y, BilinearResize(x, gy, gx));
    return Outputs(std::move(y));
  });
}

// cropResize: image [1, Batch, C, H, W]; boxes [N, 1, 4, 1, 1] (each box
// from every batch item; output [N, Batch, C, H_out, W_out]) or [N, 1, 5,
// 1, 1] (a batch index first; output [N, 1, C, H_out, W_out]).
absl::StatusOr<NnKernel> BuildCropResize(const NnLayerSpec& spec) {
  ASSIGN_OR_RETURN(auto size, TargetSize(spec));
  const bool normalized = spec.params.Bool(2);
  ASSIGN_OR_RETURN(std::string mode, SamplingMode(spec, 3));
  if (mode == "DEFAULT" || mode == "OFFSET_CORNERS") {
    return spec.Unimplemented(mode == "DEFAULT" ? "UPSAMPLE_MODE sampling" : "ROI_ALIGN_MODE sampling");
  }
  const bool strict = mode == "STRICT_ALIGN_CORNERS";
  ASSIGN_OR_RETURN(WireMessage box_mode_msg, spec.params.Message(4));
  const int64_t box_mode = box_mode_msg.Int(1);
  if (box_mode < 0 || box_mode > 3) return spec.Invalid(absl::StrCat("unknown boxMode ", box_mode));
  // coremltools always writes spatialScale (1 by default); an absent one
  // reads as 1 rather than collapsing every box onto the origin.
  const double scale = spec.params.Has(5) ? spec.params.Float(5) : 1.0;
  if (!std::isfinite(scale)) return spec.Invalid("spatialScale must be finite");
  const NnLayerLabel label = spec;
  return NnKernel([=](const std::vector<const Tensor*>& in) -> absl::StatusOr<std::vector<Tensor>> {
    const Tensor &x = *in[0], &roi = *in[1];
    if (!x.is_float() || x.rank() != 5 || x.dim(0) != 1) return label.Invalid("expects an image [1, Batch, C, H, W]");
    if (!roi.is_float() || roi.rank() != 5 || roi.dim(1) != 1 || (roi.dim(2) != 4 && roi.dim(2) != 5) ||
        roi.dim(3) != 1 || roi.dim(4) != 1) {
      return label.Invalid("expects boxes [N, 1, 4 or 5, 1, 1]");
    }
    const int64_t b = x.dim(1), c = x.dim(2), h = x.dim(3), w = x.dim(4);
    if (h < 1 || w < 1) return label.Invalid("the image has an empty spatial axis");
    const int64_t n = roi.dim(0), k = roi.dim(2);
    const int64_t per_box = k == 5 ? 1 : b;
    RETURN_IF_ERROR(CheckShape({n, per_box, c, size.first, size.second}));
    ASSIGN_OR_RETURN(Tensor y, Tensor::Allocate(DType::kFloat32, {n, per_box, c, size.first, size.second}));
    float* dst = y.mutable_floats().data();
    const double sy = scale * (normalized ? h - 1 : 1), sx = scale * (normalized ? w - 1 : 1);
    for (int64_t i = 0; i < n; ++i) {
      const float* r = roi.floats().data() + i * k;
      int64_t first = 0;
      if (k == 5) {
        if (!(r[0] >= 0 && r[0] < b && r[0] == std::floor(r[0]))) {
          return label.Invalid(absl::StrCat("box ", i, "'s batch index ", r[0], " is out of range"));
        }
        first = static_cast<int64_t>(r[0]);
      }
      const float* v = r + (k - 4);
      double y0, x0, y1, x1;  // corners, height first
      switch (box_mode) {
        case 0:
          y0 = v[0], x0 = v[1], y1 = v[2], x1 = v[3];
          break;
        case 1:
          x0 = v[0], y0 = v[1], x1 = v[2], y1 = v[3];
          break;
        case 2:
          y0 = v[0] - v[2] / 2.0, x0 = v[1] - v[3] / 2.0, y1 = v[0] + v[2] / 2.0, x1 = v[1] + v[3] / 2.0;
          break;
        default:
          x0 = v[0] - v[2] / 2.0, y0 = v[1] - v[3] / 2.0, x1 = v[0] + v[2] / 2.0, y1 = v[1] + v[3] / 2.0;
          break;
      }
      const std::vector<double> py = CropBoxPoints(y0 * sy, y1 * sy, size.first, strict);
      const std::vector<double> px = CropBoxPoints(x0 * sx, x1 * sx, size.second, strict);
      for (double p : py) {
        if (!std::isfinite(p)) return label.Invalid("box coordinates must be finite");
      }
      for (double p : px) {
        if (!std::isfinite(p)) return label.Invalid("box coordinates must be finite");
      }
      for (int64_t image = first; image < first + per_box; ++image)
        for (int64_t ch = 0; ch < c; ++ch) {
          const float* src = x.floats().data() + (image * c + ch) * h * w;
          for (double yy : py)
            for (double xx : px) *dst++ = static_cast<float>(BilinearOrPad(src, h, w, yy, xx, 0.0));
        }
    }
    return Outputs(std::move(y));
  });
}

}  // namespace coremlz::execute
