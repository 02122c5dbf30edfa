#include "execute/bilinear.h"

#include <algorithm>
#include <cmath>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace coremlz::execute {

absl::StatusOr<std::vector<double>> ResizeGridPoints(const std::string& mode, int64_t in, int64_t out) {
  std::vector<double> g(out);
  const double xin = static_cast<double>(in), xout = static_cast<double>(out);
  for (int64_t i = 0; i < out; ++i) {
    double p;
    if (mode == "STRICT_ALIGN_CORNERS" || mode == "ALIGN_CORNERS") {
      if (out == 1)
        p = mode == "ALIGN_CORNERS" ? (xin - 1) / 2 : 0;
      else
        p = i * (xin - 1) / (xout - 1);
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

absl::StatusOr<Tensor> BilinearResize(const Tensor& x, const std::vector<double>& gy, const std::vector<double>& gx) {
  const int64_t h = x.dim(x.rank() - 2), w = x.dim(x.rank() - 1);
  const int64_t oh = static_cast<int64_t>(gy.size()), ow = static_cast<int64_t>(gx.size());
  Shape out_shape = x.shape();
  out_shape[x.rank() - 2] = oh;
  out_shape[x.rank() - 1] = ow;
  ASSIGN_OR_RETURN(Tensor out, Tensor::Allocate(DType::kFloat32, out_shape));
  const int64_t planes = x.size() / (h * w);
  float* o = out.mutable_floats().data();
  for (int64_t p = 0; p < planes; ++p) {
    const float* src = x.floats().data() + p * h * w;
    for (int64_t i = 0; i < oh; ++i) {
      const int64_t y0 = static_cast<int64_t>(std::floor(gy[i])), y1 = std::min(y0 + 1, h - 1);
      const double fy = gy[i] - y0;
      for (int64_t j = 0; j < ow; ++j) {
        const int64_t x0 = static_cast<int64_t>(std::floor(gx[j])), x1 = std::min(x0 + 1, w - 1);
        const double fx = gx[j] - x0;
        const double top = src[y0 * w + x0] * (1 - fx) + src[y0 * w + x1] * fx;
        const double bottom = src[y1 * w + x0] * (1 - fx) + src[y1 * w + x1] * fx;
        o[(p * oh + i) * ow + j] = static_cast<float>(top * (1 - fy) + bottom * fy);
      }
    }
  }
  return out;
}

std::vector<double> CropBoxPoints(double start, double end, int64_t n, bool strict) {
  std::vector<double> p(n);
  for (int64_t i = 0; i < n; ++i) {
    p[i] = n == 1 ? (strict ? start : (start + end) / 2) : start + i * (end - start) / (n - 1);
  }
  return p;
}

double BilinearOrPad(const float* src, int64_t h, int64_t w, double y, double x, double pad) {
  if (y < 0 || y > h - 1 || x < 0 || x > w - 1) return pad;
  const int64_t iy = static_cast<int64_t>(std::floor(y)), ix = static_cast<int64_t>(std::floor(x));
  const int64_t iy1 = std::min(iy + 1, h - 1), ix1 = std::min(ix + 1, w - 1);
  const double dy = y - iy, dx = x - ix;
  const double top = src[iy * w + ix] * (1 - dx) + src[iy * w + ix1] * dx;
  const double bottom = src[iy1 * w + ix] * (1 - dx) + src[iy1 * w + ix1] * dx;
  return top * (1 - dy) + bottom * dy;
}

}  // namespace coremlz::execute
