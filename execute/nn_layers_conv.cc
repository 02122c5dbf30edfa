// NeuralNetwork convolution (and deconvolution) and pooling layers, over the
// last three axes [C, H, W] with every leading axis as batch.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "execute/conv2d.h"
#include "execute/nn_layer.h"

namespace coremlz::execute {
namespace {

// Padding amounts of one spatial axis.
struct Pad {
  int64_t begin = 0, end = 0;
};

// How the padding of a conv or pooling layer is given.
struct PaddingSpec {
  enum Kind { kValid, kSame, kIncludeLastPixel } kind = kValid;
  Pad h, w;                     // valid / includeLastPixel amounts
  bool top_left_heavy = false;  // same: the odd pixel goes first
};

// ValidPadding { BorderAmounts paddingAmounts = 1 { repeated EdgeSizes
// borderAmounts = 10 { startEdgeSize = 1; endEdgeSize = 2 } } }, [H, W].
absl::StatusOr<PaddingSpec> ReadValid(const WireMessage& valid) {
  PaddingSpec p;
  ASSIGN_OR_RETURN(WireMessage amounts, valid.Message(1));
  ASSIGN_OR_RETURN(std::vector<WireMessage> edges, amounts.Messages(10));
  if (!edges.empty() && edges.size() != 2) {
    return absl::InvalidArgumentError("valid padding amounts must be given for [H, W]");
  }
  if (edges.size() == 2) {
    p.h = {edges[0].Int(1), edges[0].Int(2)};
    p.w = {edges[1].Int(1), edges[1].Int(2)};
  }
  return p;
}

// The padding oneof at `valid_field`, `valid_field + 1` (same) and, for
// pooling, `valid_field + 2` (includeLastPixel).
absl::StatusOr<PaddingSpec> ReadPadding(const WireMessage& params, int valid_field, bool pooling) {
  const std::vector<int> set = params.LengthDelimitedIn(valid_field, valid_field + (pooling ? 2 : 1));
  if (set.empty()) return PaddingSpec{};  // unset: valid without padding
  const int which = set.back();
  ASSIGN_OR_RETURN(WireMessage m, params.Message(which));
  if (which == valid_field) return ReadValid(m);
  PaddingSpec p;
  if (which == valid_field + 1) {
    p.kind = PaddingSpec::kSame;
    p.top_left_heavy = m.Varint(1) == 1;
    return p;
  }
  p.kind = PaddingSpec::kIncludeLastPixel;
  ASSIGN_OR_RETURN(std::vector<int64_t> amounts, m.Ints(10));
  if (!amounts.empty() && amounts.size() != 2) {
    return absl::InvalidArgumentError("includeLastPixel padding amounts must be given for [H, W]");
  }
  if (amounts.size() == 2) {
    p.h = {amounts[0], amounts[0]};
    p.w = {amounts[1], amounts[1]};
  }
  return p;
}

// "same": out = ceil(in / stride), padded to fit the (effective) kernel.
Pad SamePad(int64_t in, int64_t kernel, int64_t stride, bool top_left_heavy, int64_t* out) {
  *out = (in + stride - 1) / stride;
  const int64_t total = std::max<int64_t>(0, (*out - 1) * stride + kernel - in);
  const int64_t small = total / 2;
  return top_left_heavy ? Pad{total - small, small} : Pad{small, total - small};
}

// A pair of [H, W] values, `fallback` when the field is unset.
absl::StatusOr<std::pair<int64_t, int64_t>> Pair(const WireMessage& params, int field, int64_t fallback,
                                                 const NnLayerSpec& spec, const char* what) {
  ASSIGN_OR_RETURN(std::vector<int64_t> v, params.Ints(field));
  if (v.empty()) return std::make_pair(fallback, fallback);
  if (v.size() != 2 || v[0] <= 0 || v[1] <= 0) return spec.Invalid(absl::StrCat(what, " must be two positive values"));
  return std::make_pair(v[0], v[1]);
}

// Leading axes (all but the last three) folded into one batch.
struct Chw {
  int64_t batch = 1, c = 1, h = 1, w = 1;
};
absl::StatusOr<Chw> SplitChw(const Tensor& x, const NnLayerLabel& label) {
  if (x.rank() < 3 || !x.is_float()) return label.Invalid("expects a float input of rank >= 3");
  Chw s;
  for (int64_t i = 0; i + 3 < x.rank(); ++i) s.batch *= x.dim(i);
  s.c = x.dim(x.rank() - 3);
  s.h = x.dim(x.rank() - 2);
  s.w = x.dim(x.rank() - 1);
  return s;
}

Shape WithChw(const Tensor& x, int64_t c, int64_t h, int64_t w) {
  Shape s = x.shape();
  s[s.size() - 3] = c;
  s[s.size() - 2] = h;
  s[s.size() - 1] = w;
  return s;
}

// Conv2d over bands of output rows, so that its im2col buffer stays small
// on large images (EDSR's 540x960 input would need 600 MB at once).
void ConvInStrips(const Conv2dShape& s, absl::Span<const float> x, absl::Span<const float> w,
                  absl::Span<const float> bias, absl::Span<float> y) {
  constexpr int64_t kIm2colBudget = int64_t{1} << 22;  // floats
  const int64_t oh = s.out_h(), ow = s.out_w();
  const int64_t per_row = ow * (s.in_channels / s.groups) * s.kernel_h * s.kernel_w;
  const int64_t band = std::max<int64_t>(1, kIm2colBudget / std::max<int64_t>(1, per_row));
  if (band >= oh) {
    Conv2d(s, x, w, bias, y);
    return;
  }
  const int64_t kh = (s.kernel_h - 1) * s.dilation_h + 1;
  std::vector<float> in_band, out_band;
  for (int64_t b = 0; b < s.batch; ++b) {
    for (int64_t r0 = 0; r0 < oh; r0 += band) {
      const int64_t r1 = std::min(oh, r0 + band);
      // Input rows the band reads, and the padding left at its edges.
      const int64_t first = r0 * s.stride_h - s.pad_top, last = (r1 - 1) * s.stride_h - s.pad_top + kh;
      const int64_t in0 = std::max<int64_t>(0, first), in1 = std::min(s.in_h, last);
      Conv2dShape part = s;
      part.batch = 1;
      part.in_h = in1 - in0;
      part.pad_top = in0 - first;
      part.pad_bottom = last - in1;
      in_band.resize(static_cast<size_t>(s.in_channels * part.in_h * s.in_w));
      for (int64_t c = 0; c < s.in_channels; ++c) {
        const float* src = x.data() + ((b * s.in_channels + c) * s.in_h + in0) * s.in_w;
        std::copy(src, src + part.in_h * s.in_w, in_band.data() + c * part.in_h * s.in_w);
      }
      out_band.resize(static_cast<size_t>(s.out_channels * (r1 - r0) * ow));
      Conv2d(part, in_band, w, bias, absl::MakeSpan(out_band));
      for (int64_t c = 0; c < s.out_channels; ++c) {
        const float* src = out_band.data() + c * (r1 - r0) * ow;
        std::copy(src, src + (r1 - r0) * ow, y.data() + ((b * s.out_channels + c) * oh + r0) * ow);
      }
    }
  }
}

}  // namespace

absl::StatusOr<NnKernel> BuildConvolution(const NnLayerSpec& spec) {
  const WireMessage& p = spec.params;
  const int64_t out_channels = p.Int(1);
  const int64_t kernel_channels = p.Int(2);
  const int64_t groups = std::max<int64_t>(1, p.Int(10));
  ASSIGN_OR_RETURN(auto kernel, Pair(p, 20, 3, spec, "kernelSize"));
  ASSIGN_OR_RETURN(auto stride, Pair(p, 30, 1, spec, "stride"));
  ASSIGN_OR_RETURN(auto dilation, Pair(p, 40, 1, spec, "dilationFactor"));
  absl::StatusOr<PaddingSpec> padding = ReadPadding(p, 50, /*pooling=*/false);
  if (!padding.ok()) return spec.Invalid(std::string(padding.status().message()));
  const bool deconvolution = p.Bool(60);
  ASSIGN_OR_RETURN(std::vector<int64_t> output_shape, p.Ints(100));
  ASSIGN_OR_RETURN(const Tensor* weights, spec.Weight("weights"));
  const Tensor* bias = p.Bool(70) ? spec.OptionalWeight("bias") : nullptr;
  if (p.Bool(70) && bias == nullptr) return spec.Invalid("hasBias is set but there is no bias");
  if (out_channels <= 0 || kernel_channels <= 0 || out_channels % groups != 0) {
    return spec.Invalid("outputChannels, kernelChannels and nGroups disagree");
  }
  const int64_t in_channels = deconvolution ? kernel_channels : kernel_channels * groups;
  // [C_out, C_in / groups, kH, kW], or [C_in, C_out / groups, kH, kW] for
  // deconvolution.
  const int64_t kernel_elements =
      (deconvolution ? out_channels / groups : out_channels) * kernel_channels * kernel.first * kernel.second;
  if (weights->size() != kernel_elements) {
    return spec.Invalid("the weights do not match the kernel's shape");
  }
  if (bias != nullptr && bias->size() != out_channels) return spec.Invalid("bias must have outputChannels values");
  if (deconvolution && !output_shape.empty() && output_shape.size() != 2) {
    return spec.Invalid("outputShape must be [H_out, W_out]");
  }

  const NnLayerLabel label = spec;
  return NnKernel([=, pad = *padding, weights = *weights, bias = bias ? *bias : Tensor()](
                      const std::vector<const Tensor*>& in) -> absl::StatusOr<std::vector<Tensor>> {
    const Tensor& x = *in[0];
    ASSIGN_OR_RETURN(Chw s, SplitChw(x, label));
    if (s.c != in_channels) {
      return label.Invalid(absl::StrCat("expects ", in_channels, " input channels, got ", s.c));
    }
    ConvTransposeShape cs;
    cs.batch = s.batch;
    cs.in_channels = s.c;
    cs.in_h = s.h;
    cs.in_w = s.w;
    cs.out_channels = out_channels;
    cs.kernel_h = kernel.first;
    cs.kernel_w = kernel.second;
    cs.stride_h = stride.first;
    cs.stride_w = stride.second;
    cs.groups = groups;
    if (!deconvolution) {
      cs.dilation_h = dilation.first;
      cs.dilation_w = dilation.second;
      const int64_t kh = (kernel.first - 1) * dilation.first + 1, kw = (kernel.second - 1) * dilation.second + 1;
      if (pad.kind == PaddingSpec::kSame) {
        int64_t oh, ow;
        const Pad ph = SamePad(s.h, kh, stride.first, pad.top_left_heavy, &oh);
        const Pad pw = SamePad(s.w, kw, stride.second, pad.top_left_heavy, &ow);
        cs.pad_top = ph.begin, cs.pad_bottom = ph.end, cs.pad_left = pw.begin, cs.pad_right = pw.end;
      } else {
        cs.pad_top = pad.h.begin, cs.pad_bottom = pad.h.end, cs.pad_left = pad.w.begin, cs.pad_right = pad.w.end;
      }
      if (cs.out_h() <= 0 || cs.out_w() <= 0) return label.Invalid("the kernel is larger than the padded input");
      Tensor y = Tensor::Zeros(DType::kFloat32, WithChw(x, out_channels, cs.out_h(), cs.out_w()));
      ConvInStrips(cs, x.floats(), weights.floats(), bias.floats(), y.mutable_floats());
      return Outputs(std::move(y));
    }
    // Deconvolution: the full transposed convolution, then cropped by the
    // padding (dilation is ignored for deconvolution, as the spec says).
    const int64_t full_h = cs.full_h(), full_w = cs.full_w();
    int64_t out_h, out_w;
    Pad crop_h, crop_w;
    if (pad.kind == PaddingSpec::kSame) {
      out_h = s.h * stride.first;
      out_w = s.w * stride.second;
      if (out_h > full_h || out_w > full_w) return label.Unimplemented("'same' deconvolution with stride > kernel");
      const int64_t th = full_h - out_h, tw = full_w - out_w;
      crop_h = pad.top_left_heavy ? Pad{th - th / 2, th / 2} : Pad{th / 2, th - th / 2};
      crop_w = pad.top_left_heavy ? Pad{tw - tw / 2, tw / 2} : Pad{tw / 2, tw - tw / 2};
    } else {
      crop_h = pad.h;
      crop_w = pad.w;
      out_h = full_h - crop_h.begin - crop_h.end;
      out_w = full_w - crop_w.begin - crop_w.end;
    }
    if (!output_shape.empty() && (output_shape[0] != out_h || output_shape[1] != out_w)) {
      return label.Unimplemented("a deconvolution outputShape other than the one its padding implies");
    }
    if (out_h <= 0 || out_w <= 0) return label.Invalid("the padding crops the whole output");
    std::vector<float> full(static_cast<size_t>(s.batch * out_channels * full_h * full_w));
    ConvTranspose2d(cs, x.floats(), weights.floats(), bias.floats(), absl::MakeSpan(full));
    Tensor y = Tensor::Zeros(DType::kFloat32, WithChw(x, out_channels, out_h, out_w));
    float* dst = y.mutable_floats().data();
    for (int64_t plane = 0; plane < s.batch * out_channels; ++plane) {
      for (int64_t r = 0; r < out_h; ++r) {
        const float* src = full.data() + (plane * full_h + r + crop_h.begin) * full_w + crop_w.begin;
        std::copy(src, src + out_w, dst + (plane * out_h + r) * out_w);
      }
    }
    return Outputs(std::move(y));
  });
}

absl::StatusOr<NnKernel> BuildPooling(const NnLayerSpec& spec) {
  const WireMessage& p = spec.params;
  enum { kMax = 0, kAverage = 1, kL2 = 2 };
  const int type = static_cast<int>(p.Varint(1));
  if (type > kL2) return spec.Invalid(absl::StrCat("unknown pooling type ", type));
  ASSIGN_OR_RETURN(auto kernel, Pair(p, 10, 3, spec, "kernelSize"));
  ASSIGN_OR_RETURN(auto stride, Pair(p, 20, 1, spec, "stride"));
  absl::StatusOr<PaddingSpec> padding = ReadPadding(p, 30, /*pooling=*/true);
  if (!padding.ok()) return spec.Invalid(std::string(padding.status().message()));
  const bool exclude_padding = p.Bool(50);
  const bool global = p.Bool(60);

  const NnLayerLabel label = spec;
  return NnKernel([=, pad = *padding](const std::vector<const Tensor*>& in) -> absl::StatusOr<std::vector<Tensor>> {
    const Tensor& x = *in[0];
    ASSIGN_OR_RETURN(Chw s, SplitChw(x, label));
    int64_t kh = kernel.first, kw = kernel.second, sh = stride.first, sw = stride.second;
    Pad ph, pw;
    int64_t oh = 1, ow = 1;
    if (global) {
      kh = s.h, kw = s.w, sh = 1, sw = 1;
    } else if (pad.kind == PaddingSpec::kSame) {
      ph = SamePad(s.h, kh, sh, pad.top_left_heavy, &oh);
      pw = SamePad(s.w, kw, sw, pad.top_left_heavy, &ow);
    } else if (pad.kind == PaddingSpec::kValid) {
      ph = pad.h, pw = pad.w;
      oh = (s.h + ph.begin + ph.end - kh) / sh + 1;
      ow = (s.w + pw.begin + pw.end - kw) / sw + 1;
      if (s.h + ph.begin + ph.end < kh || s.w + pw.begin + pw.end < kw) {
        return label.Invalid("the kernel is larger than the padded input");
      }
    } else {
      // includeLastPixel: ceil division, but no window may start in the
      // end padding alone.
      ph = pad.h, pw = pad.w;
      auto out = [](int64_t in, int64_t k, int64_t st, int64_t pd) {
        int64_t o = (std::max<int64_t>(0, in + 2 * pd - k) + st - 1) / st + 1;
        if (pd > 0 && (o - 1) * st >= in + pd) --o;
        return o;
      };
      oh = out(s.h, kh, sh, ph.begin);
      ow = out(s.w, kw, sw, pw.begin);
    }
    Tensor y = Tensor::Zeros(DType::kFloat32, WithChw(x, s.c, oh, ow));
    const float* src = x.floats().data();
    float* dst = y.mutable_floats().data();
    for (int64_t plane = 0; plane < s.batch * s.c; ++plane) {
      const float* xp = src + plane * s.h * s.w;
      for (int64_t i = 0; i < oh; ++i) {
        const int64_t h0 = i * sh - ph.begin;
        const int64_t hs = std::max<int64_t>(h0, 0), he = std::min(h0 + kh, s.h);
        // Positions inside the padded extent count for an average that
        // includes padding; those past it (ceil mode) never do.
        const int64_t padded_h = std::min(h0 + kh, s.h + ph.end) - std::max(h0, -ph.begin);
        for (int64_t j = 0; j < ow; ++j) {
          const int64_t w0 = j * sw - pw.begin;
          const int64_t ws = std::max<int64_t>(w0, 0), we = std::min(w0 + kw, s.w);
          const int64_t padded_w = std::min(w0 + kw, s.w + pw.end) - std::max(w0, -pw.begin);
          double acc = type == kMax ? -std::numeric_limits<double>::infinity() : 0.0;
          for (int64_t r = hs; r < he; ++r) {
            for (int64_t c = ws; c < we; ++c) {
              const float v = xp[r * s.w + c];
              if (type == kMax) {
                acc = std::max<double>(acc, v);
              } else if (type == kAverage) {
                acc += v;
              } else {
                acc += static_cast<double>(v) * v;
              }
            }
          }
          const int64_t valid = std::max<int64_t>(0, he - hs) * std::max<int64_t>(0, we - ws);
          float out = 0;
          if (type == kMax) {
            out = valid > 0 ? static_cast<float>(acc) : 0.f;
          } else if (type == kAverage) {
            const int64_t count =
                exclude_padding ? valid : std::max<int64_t>(0, padded_h) * std::max<int64_t>(0, padded_w);
            out = count > 0 ? static_cast<float>(acc / count) : 0.f;
          } else {
            out = static_cast<float>(std::sqrt(acc));
          }
          dst[(plane * oh + i) * ow + j] = out;
        }
      }
    }
    return Outputs(std::move(y));
  });
}

}  // namespace coremlz::execute
