#include "execute/conv2d.h"

#include <algorithm>
#include <vector>

#include "Eigen/Core"

namespace coremlz::execute {
namespace {

using RowMatrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using ConstMap = Eigen::Map<const RowMatrix>;
using Map = Eigen::Map<RowMatrix>;

// One image, one channel, one kernel: direct loop for depthwise convolution.
void DepthwiseChannel(const Conv2dShape& s, const float* x, const float* w, float bias, float* out) {
  const int64_t oh = s.out_h(), ow = s.out_w();
  for (int64_t oy = 0; oy < oh; ++oy) {
    for (int64_t ox = 0; ox < ow; ++ox) {
      float acc = bias;
      for (int64_t ky = 0; ky < s.kernel_h; ++ky) {
        const int64_t iy = oy * s.stride_h - s.pad_top + ky * s.dilation_h;
        if (iy < 0 || iy >= s.in_h) continue;
        const float* row = x + iy * s.in_w;
        const float* wrow = w + ky * s.kernel_w;
        for (int64_t kx = 0; kx < s.kernel_w; ++kx) {
          const int64_t ix = ox * s.stride_w - s.pad_left + kx * s.dilation_w;
          if (ix < 0 || ix >= s.in_w) continue;
          acc += row[ix] * wrow[kx];
        }
      }
      out[oy * ow + ox] = acc;
    }
  }
}

// Columns of one group for output rows [oy_begin, oy_end): row (c, ky, kx),
// column (oy - oy_begin, ox); zeros for padding.
void Im2Col(const Conv2dShape& s, const float* x, int64_t channels, int64_t oy_begin, int64_t oy_end, float* col) {
  const int64_t ow = s.out_w(), columns = (oy_end - oy_begin) * ow;
  for (int64_t c = 0; c < channels; ++c) {
    for (int64_t ky = 0; ky < s.kernel_h; ++ky) {
      for (int64_t kx = 0; kx < s.kernel_w; ++kx) {
        float* dst = col + ((c * s.kernel_h + ky) * s.kernel_w + kx) * columns;
        for (int64_t oy = oy_begin; oy < oy_end; ++oy) {
          const int64_t iy = oy * s.stride_h - s.pad_top + ky * s.dilation_h;
          float* drow = dst + (oy - oy_begin) * ow;
          if (iy < 0 || iy >= s.in_h) {
            std::fill(drow, drow + ow, 0.0f);
            continue;
          }
          const float* src = x + (c * s.in_h + iy) * s.in_w;
          const int64_t shift = kx * s.dilation_w - s.pad_left;  // ix = ox * stride + shift
          if (s.stride_w == 1) {
            // A contiguous run of the input row between zero borders: the
            // usual 3x3 convolution's case, copied rather than tested per element.
            const int64_t lo = std::clamp<int64_t>(-shift, 0, ow), hi = std::clamp<int64_t>(s.in_w - shift, lo, ow);
            std::fill(drow, drow + lo, 0.0f);
            std::copy(src + lo + shift, src + hi + shift, drow + lo);
            std::fill(drow + hi, drow + ow, 0.0f);
            continue;
          }
          for (int64_t ox = 0; ox < ow; ++ox) {
            const int64_t ix = ox * s.stride_w + shift;
            drow[ox] = (ix < 0 || ix >= s.in_w) ? 0.0f : src[ix];
          }
        }
      }
    }
  }
}

// The im2col buffer is built for a band of output rows at a time, so a
// convolution over a large image needs this much scratch, not patch x
// spatial floats (Mosaic's 3x3 convolutions at 384x384 would need hundreds
// of MB), while each band stays wide enough for an efficient GEMM.
constexpr int64_t kIm2ColBudgetFloats = int64_t{1} << 21;  // 8 MiB

}  // namespace

void Conv2d(const Conv2dShape& s, absl::Span<const float> x, absl::Span<const float> weights,
            absl::Span<const float> bias, absl::Span<float> out) {
  const int64_t oh = s.out_h(), ow = s.out_w(), spatial = oh * ow;
  const int64_t cin_g = s.in_channels / s.groups, cout_g = s.out_channels / s.groups;
  const int64_t patch = cin_g * s.kernel_h * s.kernel_w;
  const bool pointwise = s.kernel_h == 1 && s.kernel_w == 1 && s.stride_h == 1 && s.stride_w == 1 &&
                         s.pad_top == 0 && s.pad_bottom == 0 && s.pad_left == 0 && s.pad_right == 0;
  const bool depthwise = cin_g == 1 && cout_g == 1;
  const int64_t band_rows = std::clamp<int64_t>(kIm2ColBudgetFloats / std::max<int64_t>(1, patch * ow), 1, oh);
  std::vector<float> col;
  if (!pointwise && !depthwise) col.resize(patch * band_rows * ow);
  for (int64_t n = 0; n < s.batch; ++n) {
    const float* xn = x.data() + n * s.in_channels * s.in_h * s.in_w;
    float* on = out.data() + n * s.out_channels * spatial;
    for (int64_t g = 0; g < s.groups; ++g) {
      const float* xg = xn + g * cin_g * s.in_h * s.in_w;
      const float* wg = weights.data() + g * cout_g * patch;
      float* og = on + g * cout_g * spatial;
      if (depthwise && !pointwise) {
        DepthwiseChannel(s, xg, wg, bias.empty() ? 0.0f : bias[g], og);
        continue;
      }
      Map result(og, cout_g, spatial);
      if (pointwise) {
        result.noalias() = ConstMap(wg, cout_g, patch) * ConstMap(xg, patch, spatial);
      } else {
        for (int64_t oy = 0; oy < oh; oy += band_rows) {
          const int64_t end = std::min(oh, oy + band_rows), columns = (end - oy) * ow;
          Im2Col(s, xg, cin_g, oy, end, col.data());
          result.middleCols(oy * ow, columns).noalias() = ConstMap(wg, cout_g, patch) * ConstMap(col.data(), patch, columns);
        }
      }
      if (!bias.empty()) {
        for (int64_t c = 0; c < cout_g; ++c) result.row(c).array() += bias[g * cout_g + c];
      }
    }
  }
}

void ConvTranspose2d(const ConvTransposeShape& s, absl::Span<const float> x, absl::Span<const float> weights,
                     absl::Span<const float> bias, absl::Span<float> out) {
  const int64_t fh = s.full_h(), fw = s.full_w(), in_spatial = s.in_h * s.in_w;
  const int64_t cin_g = s.in_channels / s.groups, cout_g = s.out_channels / s.groups;
  const int64_t patch = cout_g * s.kernel_h * s.kernel_w;
  RowMatrix cols(patch, in_spatial);
  for (int64_t n = 0; n < s.batch; ++n) {
    float* on = out.data() + n * s.out_channels * fh * fw;
    for (int64_t c = 0; c < s.out_channels; ++c) {
      std::fill(on + c * fh * fw, on + (c + 1) * fh * fw, bias.empty() ? 0.0f : bias[c]);
    }
    for (int64_t g = 0; g < s.groups; ++g) {
      // Every input pixel's contribution to every (out channel, ky, kx), then
      // scattered onto the output (col2im).
      ConstMap xg(x.data() + (n * s.in_channels + g * cin_g) * in_spatial, cin_g, in_spatial);
      ConstMap wg(weights.data() + g * cin_g * patch, cin_g, patch);
      cols.noalias() = wg.transpose() * xg;
      for (int64_t co = 0; co < cout_g; ++co) {
        float* plane = on + (g * cout_g + co) * fh * fw;
        for (int64_t ky = 0; ky < s.kernel_h; ++ky) {
          for (int64_t kx = 0; kx < s.kernel_w; ++kx) {
            const float* row = cols.data() + ((co * s.kernel_h + ky) * s.kernel_w + kx) * in_spatial;
            for (int64_t iy = 0; iy < s.in_h; ++iy) {
              float* orow = plane + (iy * s.stride_h + ky * s.dilation_h) * fw + kx * s.dilation_w;
              for (int64_t ix = 0; ix < s.in_w; ++ix) orow[ix * s.stride_w] += row[iy * s.in_w + ix];
            }
          }
        }
      }
    }
  }
}

}  // namespace coremlz::execute
