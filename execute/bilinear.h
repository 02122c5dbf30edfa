// Bilinear resampling shared by the ML Program ops (resize_bilinear,
// upsample_bilinear, resize, crop_resize) and the NeuralNetwork layers
// (resizeBilinear, cropResize), which define the same grids under other
// names (coremltools maps STRICT_ALIGN_CORNERS, ALIGN_CORNERS, DEFAULT and
// OFFSET_CORNERS to STRICT_ALIGN_ENDPOINTS_MODE, ALIGN_ENDPOINTS_MODE,
// UPSAMPLE_MODE and ROI_ALIGN_MODE), so both read one implementation.
#ifndef COREMLZ_EXECUTE_BILINEAR_H_
#define COREMLZ_EXECUTE_BILINEAR_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "execute/tensor.h"

namespace coremlz::execute {

// Input coordinate of each of `out` output positions along an axis of `in`
// pixels, clamped to [0, in - 1], for an ML Program sampling_mode
// (STRICT_ALIGN_CORNERS, ALIGN_CORNERS, DEFAULT, OFFSET_CORNERS,
// UNALIGN_CORNERS); INVALID_ARGUMENT for another mode.
absl::StatusOr<std::vector<double>> ResizeGridPoints(const std::string& mode, int64_t in, int64_t out);

// Bilinear interpolation of x's last two dims at the grid points gy x gx
// (each in [0, size - 1]); the leading dims are planes.
absl::StatusOr<Tensor> BilinearResize(const Tensor& x, const std::vector<double>& gy, const std::vector<double>& gx);

// The `n` sample points of one box axis [start, end]: start + i * (end -
// start) / (n - 1); for n = 1 the start when `strict`, else the centre.
std::vector<double> CropBoxPoints(double start, double end, int64_t n, bool strict);

// The h x w plane `src` bilinear at (y, x), or `pad` when the point lies
// outside [0, h - 1] x [0, w - 1].
double BilinearOrPad(const float* src, int64_t h, int64_t w, double y, double x, double pad);

}  // namespace coremlz::execute

#endif  // COREMLZ_EXECUTE_BILINEAR_H_
