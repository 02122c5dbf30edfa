// 2-D convolution over NCHW float32 data: the numeric kernel behind MIL's
// conv (1-D convolutions run as H = 1). GEMM through Eigen: a 1x1 stride-1
// unpadded convolution multiplies the weights by the input directly; others
// go through im2col; depthwise convolutions (one input and one output
// channel per group) run a direct loop, where a GEMM would be 1 x K.
#ifndef COREMLZ_EXECUTE_CONV2D_H_
#define COREMLZ_EXECUTE_CONV2D_H_

#include <cstdint>

#include "absl/types/span.h"

namespace coremlz::execute {

struct Conv2dShape {
  int64_t batch = 1, in_channels = 1, in_h = 1, in_w = 1;
  int64_t out_channels = 1, kernel_h = 1, kernel_w = 1;
  int64_t stride_h = 1, stride_w = 1, dilation_h = 1, dilation_w = 1;
  int64_t pad_top = 0, pad_bottom = 0, pad_left = 0, pad_right = 0;
  int64_t groups = 1;

  int64_t out_h() const { return (in_h + pad_top + pad_bottom - ((kernel_h - 1) * dilation_h + 1)) / stride_h + 1; }
  int64_t out_w() const { return (in_w + pad_left + pad_right - ((kernel_w - 1) * dilation_w + 1)) / stride_w + 1; }
};

// x: [batch, in_channels, in_h, in_w]; weights: [out_channels,
// in_channels / groups, kernel_h, kernel_w]; bias: empty or [out_channels];
// out: [batch, out_channels, out_h, out_w]. The shape must be valid (channels
// divisible by groups, positive output size).
void Conv2d(const Conv2dShape& s, absl::Span<const float> x, absl::Span<const float> weights,
            absl::Span<const float> bias, absl::Span<float> out);

// Transposed 2-D convolution, uncropped: x: [batch, in_channels, in_h,
// in_w]; weights: [in_channels, out_channels / groups, kernel_h, kernel_w];
// out: [batch, out_channels, full_h, full_w] with full = (in - 1) * stride +
// (kernel - 1) * dilation + 1. The pad fields are ignored (callers crop).
// Bias is added everywhere.
struct ConvTransposeShape : Conv2dShape {
  int64_t full_h() const { return (in_h - 1) * stride_h + (kernel_h - 1) * dilation_h + 1; }
  int64_t full_w() const { return (in_w - 1) * stride_w + (kernel_w - 1) * dilation_w + 1; }
};
void ConvTranspose2d(const ConvTransposeShape& s, absl::Span<const float> x, absl::Span<const float> weights,
                     absl::Span<const float> bias, absl::Span<float> out);

}  // namespace coremlz::execute

#endif  // COREMLZ_EXECUTE_CONV2D_H_
