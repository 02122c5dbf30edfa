// NeuralNetwork layers that normalise or rescale over the last three axes
// [C, H, W] (every leading axis is batch): lrn, l2normalize, mvn, scale,
// bias, and the old reduce layer (NeuralNetwork.proto's LRNLayerParams,
// L2NormalizeLayerParams, MeanVarianceNormalizeLayerParams,
// ScaleLayerParams, BiasLayerParams, ReduceLayerParams).
#include <algorithm>
#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "execute/nn_layer.h"

namespace coremlz::execute {
namespace {

struct Chw {
  int64_t batch = 1, c = 1, h = 1, w = 1;
  int64_t plane() const { return h * w; }
  int64_t item() const { return c * h * w; }
};

absl::StatusOr<Chw> ChwOf(const Tensor& x, const NnLayerLabel& label) {
  if (x.rank() < 3 || !x.is_float()) return label.Invalid("expects a float input of rank >= 3");
  Chw s;
  for (int64_t i = 0; i + 3 < x.rank(); ++i) s.batch *= x.dim(i);
  s.c = x.dim(x.rank() - 3), s.h = x.dim(x.rank() - 2), s.w = x.dim(x.rank() - 1);
  return s;
}

// A weight broadcast over [C, H, W] from one of the shapes the layers allow:
// [1], [C], [1, H, W] or [C, H, W]. Returns the element for (c, p), p the
// position within the plane.
struct ChwBroadcast {
  Shape shape;
  const Tensor* values = nullptr;
  absl::Status Check(const Chw& s, const NnLayerLabel& label) const {
    const int64_t c = shape.size() == 3 ? shape[0] : shape.size() == 1 ? shape[0] : -1;
    const bool spatial = shape.size() == 3 && (shape[1] != 1 || shape[2] != 1);
    if (c < 0 || (c != 1 && c != s.c) || (spatial && (shape[1] != s.h || shape[2] != s.w))) {
      return label.Invalid(absl::StrCat("a parameter of shape ", format::ShapeString(shape), " does not broadcast over [",
                                        s.c, ", ", s.h, ", ", s.w, "]"));
    }
    if (values->size() != NumElements(shape)) return label.Invalid("a parameter's values do not match its shape");
    return absl::OkStatus();
  }
  float At(int64_t c, int64_t p) const {
    const int64_t cs = shape[0] == 1 ? 0 : c;
    const bool spatial = shape.size() == 3 && (shape[1] != 1 || shape[2] != 1);
    const int64_t plane = spatial ? shape[1] * shape[2] : 1;
    return values->floats()[cs * plane + (spatial ? p : 0)];
  }
};

}  // namespace

// lrn: x / (k + alpha / localSize * sum of x_j^2)^beta over a window of
// localSize channels around c (PyTorch's: localSize / 2 before, the rest
// after, clipped to [0, C)).
absl::StatusOr<NnKernel> BuildLrn(const NnLayerSpec& spec) {
  const float alpha = spec.params.Float(1), beta = spec.params.Float(2);
  const int64_t size = spec.params.Int(3);
  float k = spec.params.Float(4);
  if (k == 0) k = 1;  // "Defaults to 1 if not set or 0"
  if (size < 1) return spec.Invalid("localSize must be positive");
  const NnLayerLabel label = spec;
  return NnKernel([=](const std::vector<const Tensor*>& in) -> absl::StatusOr<std::vector<Tensor>> {
    ASSIGN_OR_RETURN(Chw s, ChwOf(*in[0], label));
    Tensor y = Tensor::Zeros(DType::kFloat32, in[0]->shape());
    const float* x = in[0]->floats().data();
    float* o = y.mutable_floats().data();
    for (int64_t b = 0; b < s.batch; ++b)
      for (int64_t c = 0; c < s.c; ++c) {
        const int64_t lo = std::max<int64_t>(0, c - size / 2), hi = std::min<int64_t>(s.c - 1, c + (size - 1) / 2);
        for (int64_t p = 0; p < s.plane(); ++p) {
          double sum = 0;
          for (int64_t j = lo; j <= hi; ++j) {
            const double v = x[(b * s.c + j) * s.plane() + p];
            sum += v * v;
          }
          const int64_t at = (b * s.c + c) * s.plane() + p;
          o[at] = static_cast<float>(x[at] / std::pow(k + static_cast<double>(alpha) / size * sum, beta));
        }
      }
    return Outputs(std::move(y));
  });
}

// l2normalize: each item's [C, H, W] divided by sqrt(sum of squares + eps).
absl::StatusOr<NnKernel> BuildL2Normalize(const NnLayerSpec& spec) {
  float eps = spec.params.Float(1);
  if (eps == 0) eps = 1e-6f;  // "Defaults to 1e-6 if not set or set to 0"
  const NnLayerLabel label = spec;
  return NnKernel([=](const std::vector<const Tensor*>& in) -> absl::StatusOr<std::vector<Tensor>> {
    ASSIGN_OR_RETURN(Chw s, ChwOf(*in[0], label));
    Tensor y = Tensor::Zeros(DType::kFloat32, in[0]->shape());
    const float* x = in[0]->floats().data();
    float* o = y.mutable_floats().data();
    for (int64_t b = 0; b < s.batch; ++b) {
      double sq = 0;
      for (int64_t i = 0; i < s.item(); ++i) sq += static_cast<double>(x[b * s.item() + i]) * x[b * s.item() + i];
      const double inv = 1.0 / std::sqrt(sq + eps);
      for (int64_t i = 0; i < s.item(); ++i) o[b * s.item() + i] = static_cast<float>(x[b * s.item() + i] * inv);
    }
    return Outputs(std::move(y));
  });
}

// mvn: subtract the mean of each channel's [H, W] (or of the whole [C, H, W]
// with acrossChannels) and, with normalizeVariance, divide by sqrt(variance
// + eps) (the biased variance).
absl::StatusOr<NnKernel> BuildMvn(const NnLayerSpec& spec) {
  const bool across = spec.params.Bool(1), normalize = spec.params.Bool(2);
  float eps = spec.params.Float(3);
  if (eps == 0) eps = 1e-6f;  // "Defaults to 1e-6 if not set or set to 0"
  const NnLayerLabel label = spec;
  return NnKernel([=](const std::vector<const Tensor*>& in) -> absl::StatusOr<std::vector<Tensor>> {
    ASSIGN_OR_RETURN(Chw s, ChwOf(*in[0], label));
    Tensor y = Tensor::Zeros(DType::kFloat32, in[0]->shape());
    const float* x = in[0]->floats().data();
    float* o = y.mutable_floats().data();
    const int64_t group = across ? s.item() : s.plane();
    const int64_t groups = s.batch * (across ? 1 : s.c);
    for (int64_t g = 0; g < groups; ++g) {
      const float* src = x + g * group;
      double sum = 0, sq = 0;
      for (int64_t i = 0; i < group; ++i) sum += src[i];
      const double mean = group > 0 ? sum / group : 0;
      for (int64_t i = 0; i < group; ++i) sq += (src[i] - mean) * (src[i] - mean);
      const double scale = normalize ? 1.0 / std::sqrt((group > 0 ? sq / group : 0) + eps) : 1.0;
      for (int64_t i = 0; i < group; ++i) o[g * group + i] = static_cast<float>((src[i] - mean) * scale);
    }
    return Outputs(std::move(y));
  });
}

// scale: x * scale (+ bias), each broadcast over [C, H, W] from its shape.
absl::StatusOr<NnKernel> BuildScale(const NnLayerSpec& spec) {
  ASSIGN_OR_RETURN(std::vector<int64_t> shape_scale, spec.params.Ints(1));
  ASSIGN_OR_RETURN(std::vector<int64_t> shape_bias, spec.params.Ints(4));
  const bool has_bias = spec.params.Bool(3);
  ASSIGN_OR_RETURN(const Tensor* scale, spec.Weight("scale"));
  const Tensor* bias = has_bias ? spec.OptionalWeight("bias") : nullptr;
  if (has_bias && bias == nullptr) return spec.Invalid("hasBias is set but there is no bias");
  for (const auto* shape : {&shape_scale, &shape_bias}) {
    if (shape == &shape_bias && !has_bias) continue;
    if (shape->size() != 1 && shape->size() != 3) return spec.Invalid("shapes must be [1], [C], [1, H, W] or [C, H, W]");
  }
  const NnLayerLabel label = spec;
  return NnKernel([=, scale = *scale, bias = bias ? *bias : Tensor()](
                      const std::vector<const Tensor*>& in) -> absl::StatusOr<std::vector<Tensor>> {
    ASSIGN_OR_RETURN(Chw s, ChwOf(*in[0], label));
    const ChwBroadcast sc{Shape(shape_scale.begin(), shape_scale.end()), &scale};
    RETURN_IF_ERROR(sc.Check(s, label));
    const ChwBroadcast bi{Shape(shape_bias.begin(), shape_bias.end()), &bias};
    if (has_bias) RETURN_IF_ERROR(bi.Check(s, label));
    Tensor y = Tensor::Zeros(DType::kFloat32, in[0]->shape());
    const float* x = in[0]->floats().data();
    float* o = y.mutable_floats().data();
    for (int64_t b = 0; b < s.batch; ++b)
      for (int64_t c = 0; c < s.c; ++c)
        for (int64_t p = 0; p < s.plane(); ++p) {
          const int64_t at = (b * s.c + c) * s.plane() + p;
          o[at] = x[at] * sc.At(c, p) + (has_bias ? bi.At(c, p) : 0.0f);
        }
    return Outputs(std::move(y));
  });
}

// bias: x + bias, broadcast over [C, H, W] from its shape.
absl::StatusOr<NnKernel> BuildBias(const NnLayerSpec& spec) {
  ASSIGN_OR_RETURN(std::vector<int64_t> shape, spec.params.Ints(1));
  ASSIGN_OR_RETURN(const Tensor* bias, spec.Weight("bias"));
  if (shape.size() != 1 && shape.size() != 3) return spec.Invalid("shape must be [1], [C], [1, H, W] or [C, H, W]");
  const NnLayerLabel label = spec;
  return NnKernel(
      [=, bias = *bias](const std::vector<const Tensor*>& in) -> absl::StatusOr<std::vector<Tensor>> {
        ASSIGN_OR_RETURN(Chw s, ChwOf(*in[0], label));
        const ChwBroadcast bi{Shape(shape.begin(), shape.end()), &bias};
        RETURN_IF_ERROR(bi.Check(s, label));
        Tensor y = Tensor::Zeros(DType::kFloat32, in[0]->shape());
        const float* x = in[0]->floats().data();
        float* o = y.mutable_floats().data();
        for (int64_t b = 0; b < s.batch; ++b)
          for (int64_t c = 0; c < s.c; ++c)
            for (int64_t p = 0; p < s.plane(); ++p) {
              const int64_t at = (b * s.c + c) * s.plane() + p;
              o[at] = x[at] + bi.At(c, p);
            }
        return Outputs(std::move(y));
      });
}

// reduce (the old layer): over CHW, HW, C, H or W of the last three axes,
// which stay in the output with size 1. LOGSUM is sum(log(x + eps)) as the
// proto defines it; ARGMAX returns the index (as a float) along C, H or W.
absl::StatusOr<NnKernel> BuildReduce(const NnLayerSpec& spec) {
  enum { kSum, kAvg, kProd, kLogSum, kSumSquare, kL1, kL2, kMax, kMin, kArgmax };
  enum { kChw, kHw, kC, kH, kW };
  const int mode = static_cast<int>(spec.params.Varint(1));
  float eps = spec.params.Float(2);
  if (eps == 0) eps = 1e-6f;  // "Defaults to 1e-6 if not set or is set to 0"
  const int axis = static_cast<int>(spec.params.Varint(3));
  if (mode > kArgmax) return spec.Unimplemented(absl::StrCat("reduce mode ", mode));
  if (axis > kW) return spec.Invalid(absl::StrCat("unknown reduce axis ", axis));
  if (mode == kArgmax && (axis == kChw || axis == kHw)) return spec.Invalid("ARGMAX reduces along C, H or W only");
  const NnLayerLabel label = spec;
  return NnKernel([=](const std::vector<const Tensor*>& in) -> absl::StatusOr<std::vector<Tensor>> {
    ASSIGN_OR_RETURN(Chw s, ChwOf(*in[0], label));
    const bool rc = axis == kChw || axis == kC, rh = axis != kC && axis != kW, rw = axis != kC && axis != kH;
    const int64_t oc = rc ? 1 : s.c, oh = rh ? 1 : s.h, ow = rw ? 1 : s.w;
    const int64_t nc = rc ? s.c : 1, nh = rh ? s.h : 1, nw = rw ? s.w : 1;
    Shape out = in[0]->shape();
    out[out.size() - 3] = oc, out[out.size() - 2] = oh, out[out.size() - 1] = ow;
    Tensor y = Tensor::Zeros(DType::kFloat32, out);
    const float* x = in[0]->floats().data();
    float* o = y.mutable_floats().data();
    for (int64_t b = 0; b < s.batch; ++b)
      for (int64_t c = 0; c < oc; ++c)
        for (int64_t i = 0; i < oh; ++i)
          for (int64_t j = 0; j < ow; ++j) {
            double acc = mode == kProd ? 1 : mode == kMax ? -std::numeric_limits<double>::infinity()
                                       : mode == kMin ? std::numeric_limits<double>::infinity() : 0;
            int64_t best = 0, k = 0;
            for (int64_t dc = 0; dc < nc; ++dc)
              for (int64_t di = 0; di < nh; ++di)
                for (int64_t dj = 0; dj < nw; ++dj, ++k) {
                  const double v = x[((b * s.c + c + dc) * s.h + i + di) * s.w + j + dj];
                  switch (mode) {
                    case kSum: case kAvg: acc += v; break;
                    case kProd: acc *= v; break;
                    case kLogSum: acc += std::log(v + eps); break;
                    case kSumSquare: case kL2: acc += v * v; break;
                    case kL1: acc += std::fabs(v); break;
                    case kMax: acc = std::max(acc, v); break;
                    case kMin: acc = std::min(acc, v); break;
                    case kArgmax:
                      if (k == 0 || v > acc) acc = v, best = k;
                      break;
                  }
                }
            const int64_t n = nc * nh * nw;
            double r = acc;
            if (mode == kAvg) r = n > 0 ? acc / n : 0;
            if (mode == kL2) r = std::sqrt(acc);
            if (mode == kArgmax) r = static_cast<double>(best);
            o[((b * oc + c) * oh + i) * ow + j] = static_cast<float>(r);
          }
    return Outputs(std::move(y));
  });
}

}  // namespace coremlz::execute
