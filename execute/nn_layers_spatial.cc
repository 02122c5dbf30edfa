// NeuralNetwork layers over the spatial axes [H, W] (the last two; every
// leading axis is batch): padding (constant, reflection, replication),
// crop (the one-input form), upsample (nearest with integer factors,
// bilinear in its three grid modes) and the old slice along C, H or W.
#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "execute/nn_layer.h"

namespace coremlz::execute {
namespace {

struct Hw {
  int64_t planes = 1, h = 1, w = 1;
};

absl::StatusOr<Hw> HwOf(const Tensor& x, const NnLayerLabel& label) {
  if (x.rank() < 2 || !x.is_float()) return label.Invalid("expects a float input of rank >= 2");
  Hw s;
  s.h = x.dim(x.rank() - 2), s.w = x.dim(x.rank() - 1);
  s.planes = s.h * s.w == 0 ? 0 : x.size() / (s.h * s.w);
  return s;
}

Shape WithHw(const Tensor& x, int64_t h, int64_t w) {
  Shape s = x.shape();
  s[s.size() - 2] = h, s[s.size() - 1] = w;
  return s;
}

// BorderAmounts { repeated EdgeSizes borderAmounts = 10 { start = 1; end = 2 } }
// as {top, bottom, left, right}; unset: zeros.
absl::StatusOr<std::vector<int64_t>> ReadBorders(const WireMessage& params, int field, const NnLayerSpec& spec) {
  ASSIGN_OR_RETURN(WireMessage amounts, params.Message(field));
  ASSIGN_OR_RETURN(std::vector<WireMessage> edges, amounts.Messages(10));
  if (edges.empty()) return std::vector<int64_t>{0, 0, 0, 0};
  if (edges.size() != 2) return spec.Invalid("border amounts must be given for [H, W]");
  std::vector<int64_t> v = {edges[0].Int(1), edges[0].Int(2), edges[1].Int(1), edges[1].Int(2)};
  for (int64_t a : v) {
    if (a < 0 || a > (int64_t{1} << 30)) return spec.Invalid("border amounts out of range");
  }
  return v;
}

}  // namespace

// padding: constant (value), reflection (the border pixel not repeated) or
// replication (the border pixel repeated), by [top, bottom, left, right].
absl::StatusOr<NnKernel> BuildPadding(const NnLayerSpec& spec) {
  enum { kConstant = 1, kReflection = 2, kReplication = 3 };
  const std::vector<int> set = spec.params.LengthDelimitedIn(1, 3);
  const int kind = set.empty() ? kConstant : set.back();
  float value = 0;
  if (kind == kConstant && !set.empty()) {
    ASSIGN_OR_RETURN(WireMessage c, spec.params.Message(kConstant));
    value = c.Float(1);
  }
  ASSIGN_OR_RETURN(std::vector<int64_t> pad, ReadBorders(spec.params, 10, spec));
  const NnLayerLabel label = spec;
  return NnKernel([=](const std::vector<const Tensor*>& in) -> absl::StatusOr<std::vector<Tensor>> {
    ASSIGN_OR_RETURN(Hw s, HwOf(*in[0], label));
    if (kind == kReflection && (pad[0] >= s.h || pad[1] >= s.h || pad[2] >= s.w || pad[3] >= s.w)) {
      return label.Invalid("reflection padding must be smaller than the input");
    }
    if (kind == kReplication && (s.h == 0 || s.w == 0)) return label.Invalid("cannot replicate an empty input");
    const int64_t oh = s.h + pad[0] + pad[1], ow = s.w + pad[2] + pad[3];
    ASSIGN_OR_RETURN(Tensor y, Tensor::Allocate(DType::kFloat32, WithHw(*in[0], oh, ow)));
    // Source index along one axis, or -1 for the constant.
    auto source = [&](int64_t i, int64_t before, int64_t n) -> int64_t {
      const int64_t j = i - before;
      if (j >= 0 && j < n) return j;
      if (kind == kConstant) return -1;
      if (kind == kReflection) return j < 0 ? -j : 2 * (n - 1) - j;
      return j < 0 ? 0 : n - 1;
    };
    const float* x = in[0]->floats().data();
    float* o = y.mutable_floats().data();
    for (int64_t p = 0; p < s.planes; ++p)
      for (int64_t i = 0; i < oh; ++i) {
        const int64_t si = source(i, pad[0], s.h);
        for (int64_t j = 0; j < ow; ++j) {
          const int64_t sj = source(j, pad[2], s.w);
          o[(p * oh + i) * ow + j] = si < 0 || sj < 0 ? value : x[(p * s.h + si) * s.w + sj];
        }
      }
    return Outputs(std::move(y));
  });
}

// crop with one input: cropAmounts [top, bottom, left, right] removed. (The
// two-input form, cropping to a second blob's size at `offset`, is refused
// by the input-count check.)
absl::StatusOr<NnKernel> BuildCrop(const NnLayerSpec& spec) {
  ASSIGN_OR_RETURN(std::vector<int64_t> crop, ReadBorders(spec.params, 1, spec));
  const NnLayerLabel label = spec;
  return NnKernel([=](const std::vector<const Tensor*>& in) -> absl::StatusOr<std::vector<Tensor>> {
    ASSIGN_OR_RETURN(Hw s, HwOf(*in[0], label));
    const int64_t oh = s.h - crop[0] - crop[1], ow = s.w - crop[2] - crop[3];
    if (oh < 1 || ow < 1) return label.Invalid("the crop removes the whole input");
    Tensor y = Tensor::Zeros(DType::kFloat32, WithHw(*in[0], oh, ow));
    const float* x = in[0]->floats().data();
    float* o = y.mutable_floats().data();
    for (int64_t p = 0; p < s.planes; ++p)
      for (int64_t i = 0; i < oh; ++i)
        for (int64_t j = 0; j < ow; ++j) o[(p * oh + i) * ow + j] = x[(p * s.h + i + crop[0]) * s.w + j + crop[2]];
    return Outputs(std::move(y));
  });
}

// upsample: output size = input * scalingFactor. Nearest: output i takes
// input i / factor. Bilinear: grid points per linearUpsampleMode (DEFAULT
// i * (in - in / out) / (out - 1), ALIGN_CORNERS_TRUE i * (in - 1) / (out -
// 1), ALIGN_CORNERS_FALSE (i + 0.5) * in / out - 0.5, clamped to [0, in - 1]).
// Fractional factors are refused: which input pixel a nearest output takes
// is not defined for them.
absl::StatusOr<NnKernel> BuildUpsample(const NnLayerSpec& spec) {
  ASSIGN_OR_RETURN(std::vector<int64_t> factor, spec.params.Ints(1));
  ASSIGN_OR_RETURN(std::vector<float> fractional, spec.params.Floats(7));
  const bool bilinear = spec.params.Varint(5) == 1;
  const int grid_mode = static_cast<int>(spec.params.Varint(6));
  if (!fractional.empty()) return spec.Unimplemented("fractionalScalingFactor");
  if (factor.empty()) factor = {1, 1};
  if (factor.size() != 2 || factor[0] < 1 || factor[1] < 1 || factor[0] > 4096 || factor[1] > 4096) {
    return spec.Invalid("scalingFactor must be two positive values");
  }
  if (grid_mode > 2) return spec.Invalid(absl::StrCat("unknown linearUpsampleMode ", grid_mode));
  const NnLayerLabel label = spec;
  return NnKernel([=](const std::vector<const Tensor*>& in) -> absl::StatusOr<std::vector<Tensor>> {
    ASSIGN_OR_RETURN(Hw s, HwOf(*in[0], label));
    const int64_t oh = s.h * factor[0], ow = s.w * factor[1];
    ASSIGN_OR_RETURN(Tensor y, Tensor::Allocate(DType::kFloat32, WithHw(*in[0], oh, ow)));
    const float* x = in[0]->floats().data();
    float* o = y.mutable_floats().data();
    if (!bilinear) {
      for (int64_t p = 0; p < s.planes; ++p)
        for (int64_t i = 0; i < oh; ++i)
          for (int64_t j = 0; j < ow; ++j) o[(p * oh + i) * ow + j] = x[(p * s.h + i / factor[0]) * s.w + j / factor[1]];
      return Outputs(std::move(y));
    }
    auto grid = [&](int64_t n, int64_t out) {
      std::vector<double> g(out);
      const double xin = static_cast<double>(n), xout = static_cast<double>(out);
      for (int64_t i = 0; i < out; ++i) {
        double p;
        if (grid_mode == 0) p = out == 1 ? 0 : i * (xin - xin / xout) / (xout - 1);
        else if (grid_mode == 1) p = out == 1 ? 0 : i * (xin - 1) / (xout - 1);
        else p = (i + 0.5) * xin / xout - 0.5;
        g[i] = std::min(xin - 1, std::max(0.0, p));
      }
      return g;
    };
    const std::vector<double> gy = grid(s.h, oh), gx = grid(s.w, ow);
    for (int64_t p = 0; p < s.planes; ++p) {
      const float* src = x + p * s.h * s.w;
      for (int64_t i = 0; i < oh; ++i) {
        const int64_t y0 = static_cast<int64_t>(gy[i]), y1 = std::min(y0 + 1, s.h - 1);
        const double fy = gy[i] - y0;
        for (int64_t j = 0; j < ow; ++j) {
          const int64_t x0 = static_cast<int64_t>(gx[j]), x1 = std::min(x0 + 1, s.w - 1);
          const double fx = gx[j] - x0;
          const double top = src[y0 * s.w + x0] * (1 - fx) + src[y0 * s.w + x1] * fx;
          const double bottom = src[y1 * s.w + x0] * (1 - fx) + src[y1 * s.w + x1] * fx;
          o[(p * oh + i) * ow + j] = static_cast<float>(top * (1 - fy) + bottom * fy);
        }
      }
    }
    return Outputs(std::move(y));
  });
}

// slice (the old layer): [startIndex, endIndex) by stride along C, H or W
// (axis -3, -2, -1); negative indices count from the end.
absl::StatusOr<NnKernel> BuildSlice(const NnLayerSpec& spec) {
  const int64_t start = spec.params.Int(1), end = spec.params.Int(2);
  const int64_t stride = spec.params.Int(3) == 0 ? 1 : spec.params.Int(3);
  const int axis = static_cast<int>(spec.params.Varint(4));
  if (stride < 1) return spec.Invalid("stride must be positive");
  if (axis > 2) return spec.Invalid(absl::StrCat("unknown slice axis ", axis));
  const NnLayerLabel label = spec;
  return NnKernel([=](const std::vector<const Tensor*>& in) -> absl::StatusOr<std::vector<Tensor>> {
    const Tensor& x = *in[0];
    if (!x.is_float() || x.rank() < 3 - axis) return label.Invalid("expects a float input with the sliced axis");
    const int64_t a = x.rank() - 3 + axis, n = x.dim(a);
    const int64_t b = std::clamp<int64_t>(start < 0 ? start + n : start, 0, n);
    const int64_t e = std::clamp<int64_t>(end < 0 ? end + n : end, 0, n);
    const int64_t count = e > b ? 1 + (e - b - 1) / stride : 0;
    if (count == 0) return label.Invalid("the slice is empty");
    int64_t outer = 1, inner = 1;
    for (int64_t d = 0; d < a; ++d) outer *= x.dim(d);
    for (int64_t d = a + 1; d < x.rank(); ++d) inner *= x.dim(d);
    Shape out = x.shape();
    out[a] = count;
    Tensor y = Tensor::Zeros(DType::kFloat32, out);
    const float* src = x.floats().data();
    float* o = y.mutable_floats().data();
    for (int64_t q = 0; q < outer; ++q)
      for (int64_t k = 0; k < count; ++k)
        std::copy_n(src + (q * n + b + k * stride) * inner, inner, o + (q * count + k) * inner);
    return Outputs(std::move(y));
  });
}

}  // namespace coremlz::execute
