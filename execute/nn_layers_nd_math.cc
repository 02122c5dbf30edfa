// NeuralNetwork ND layers that compute along axes: batchedMatmul,
// layerNormalization, the reduce* family (reduceSum, reduceMean, ...),
// argMax / argMin, topK, argSort, cumSum and dot. Axes may be negative; a result left with no
// axes is [1] (ND layers have no scalars). Indices are returned as floats,
// as every NeuralNetwork blob is.
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "Eigen/Core"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "execute/broadcast.h"
#include "execute/nn_layer.h"

namespace coremlz::execute {
namespace {

using RowMatrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

absl::Status FloatInput(const Tensor& x, const NnLayerLabel& label) {
  if (!x.is_float() || x.rank() < 1) return label.Invalid("expects a float input of rank >= 1");
  return absl::OkStatus();
}

// [outer, n, inner] around axis a.
void AroundAxis(const Shape& s, int64_t a, int64_t* outer, int64_t* n, int64_t* inner) {
  *outer = 1, *inner = 1;
  for (int64_t d = 0; d < a; ++d) *outer *= s[d];
  for (int64_t d = a + 1; d < static_cast<int64_t>(s.size()); ++d) *inner *= s[d];
  *n = s[a];
}

}  // namespace

// batchedMatmul: two inputs, a @ b with the batch axes broadcast (a 1-D a
// becomes [1, D], a 1-D b [D, 1]; transposeA / transposeB swap the last
// two axes); or one input times the weights [X1, X2] (+ bias) over its
// last axis. int8DynamicQuantize is computed in float, as innerProduct.
absl::StatusOr<NnKernel> BuildBatchedMatmul(const NnLayerSpec& spec) {
  const bool ta = spec.params.Bool(1), tb = spec.params.Bool(2);
  const NnLayerLabel label = spec;
  if (spec.input_count == 1) {
    const int64_t x1 = spec.params.Int(5), x2 = spec.params.Int(6);
    ASSIGN_OR_RETURN(const Tensor* w, spec.Weight("weights"));
    if (x1 <= 0 || x2 <= 0 || x1 > (1 << 30) || x2 > (1 << 30) || w->size() != x1 * x2) {
      return spec.Invalid("the weights do not match [weightMatrixFirstDimension, weightMatrixSecondDimension]");
    }
    const Tensor* bias = spec.params.Bool(7) ? spec.OptionalWeight("bias") : nullptr;
    if (spec.params.Bool(7) && (bias == nullptr || bias->size() != x2)) return spec.Invalid("needs a bias of X2 values");
    return NnKernel([=, w = *w, bias = bias ? *bias : Tensor()](
                        const std::vector<const Tensor*>& in) -> absl::StatusOr<std::vector<Tensor>> {
      const Tensor& x = *in[0];
      RETURN_IF_ERROR(FloatInput(x, label));
      if (x.dim(x.rank() - 1) != x1) return label.Invalid(absl::StrCat("expects a last axis of ", x1));
      Shape out = x.shape();
      out.back() = x2;
      ASSIGN_OR_RETURN(Tensor y, Tensor::Allocate(DType::kFloat32, out));
      const int64_t rows = x1 == 0 ? 0 : x.size() / x1;
      Eigen::Map<const RowMatrix> xm(x.floats().data(), rows, x1);
      Eigen::Map<const RowMatrix> wm(w.floats().data(), x1, x2);
      Eigen::Map<RowMatrix> ym(y.mutable_floats().data(), rows, x2);
      ym.noalias() = xm * wm;
      if (bias.size() > 0) ym.rowwise() += Eigen::Map<const Eigen::RowVectorXf>(bias.floats().data(), x2);
      return Outputs(std::move(y));
    });
  }
  if (spec.input_count != 2) return spec.Invalid("takes one or two inputs");
  return NnKernel([=](const std::vector<const Tensor*>& in) -> absl::StatusOr<std::vector<Tensor>> {
    RETURN_IF_ERROR(FloatInput(*in[0], label));
    RETURN_IF_ERROR(FloatInput(*in[1], label));
    Shape sa = in[0]->shape(), sb = in[1]->shape();
    if (sa.size() == 1) sa.insert(sa.begin(), 1);
    if (sb.size() == 1) sb.push_back(1);
    const size_t ra = sa.size(), rb = sb.size();
    const int64_t m = ta ? sa[ra - 1] : sa[ra - 2], k = ta ? sa[ra - 2] : sa[ra - 1];
    const int64_t kb = tb ? sb[rb - 1] : sb[rb - 2], n = tb ? sb[rb - 2] : sb[rb - 1];
    if (k != kb) return label.Invalid(absl::StrCat("inner dimensions ", k, " and ", kb, " differ"));
    const Shape ba(sa.begin(), sa.end() - 2), bb(sb.begin(), sb.end() - 2);
    absl::StatusOr<Shape> batch = BroadcastShapes(ba, bb);
    if (!batch.ok()) return label.Invalid(std::string(batch.status().message()));
    Shape out = *batch;
    out.push_back(m);
    out.push_back(n);
    ASSIGN_OR_RETURN(Tensor y, Tensor::Allocate(DType::kFloat32, out));
    const std::vector<int64_t> oa = BroadcastOffsets(ba, *batch), ob = BroadcastOffsets(bb, *batch);
    const int64_t sza = sa[ra - 2] * sa[ra - 1], szb = sb[rb - 2] * sb[rb - 1];
    for (size_t i = 0; i < oa.size(); ++i) {
      Eigen::Map<const RowMatrix> am(in[0]->floats().data() + oa[i] * sza, sa[ra - 2], sa[ra - 1]);
      Eigen::Map<const RowMatrix> bm(in[1]->floats().data() + ob[i] * szb, sb[rb - 2], sb[rb - 1]);
      Eigen::Map<RowMatrix> ym(y.mutable_floats().data() + i * m * n, m, n);
      if (ta && tb) {
        ym.noalias() = am.transpose() * bm.transpose();
      } else if (ta) {
        ym.noalias() = am.transpose() * bm;
      } else if (tb) {
        ym.noalias() = am * bm.transpose();
      } else {
        ym.noalias() = am * bm;
      }
    }
    return Outputs(std::move(y));
  });
}

// layerNormalization over the trailing axes normalizedShape names:
// gamma * (x - mean) / sqrt(var + eps) + beta (the biased variance).
absl::StatusOr<NnKernel> BuildLayerNormalization(const NnLayerSpec& spec) {
  ASSIGN_OR_RETURN(std::vector<int64_t> shape, spec.params.Ints(1));
  if (shape.empty()) return spec.Invalid("has no normalizedShape");
  RETURN_IF_ERROR(CheckShape(shape));
  const float eps = spec.params.Float(2);
  const int64_t count = NumElements(shape);
  const Tensor* gamma = spec.OptionalWeight("gamma");
  const Tensor* beta = spec.OptionalWeight("beta");
  if ((gamma != nullptr && gamma->size() != count) || (beta != nullptr && beta->size() != count)) {
    return spec.Invalid("gamma and beta must have normalizedShape's elements");
  }
  const NnLayerLabel label = spec;
  return NnKernel([=, gamma = gamma ? *gamma : Tensor(), beta = beta ? *beta : Tensor()](
                      const std::vector<const Tensor*>& in) -> absl::StatusOr<std::vector<Tensor>> {
    const Tensor& x = *in[0];
    RETURN_IF_ERROR(FloatInput(x, label));
    const size_t r = shape.size();
    if (x.rank() < static_cast<int64_t>(r) || !std::equal(shape.begin(), shape.end(), x.shape().end() - r)) {
      return label.Invalid("normalizedShape is not the input's trailing shape");
    }
    Tensor y = Tensor::Zeros(DType::kFloat32, x.shape());
    const int64_t groups = count == 0 ? 0 : x.size() / count;
    for (int64_t g = 0; g < groups; ++g) {
      const float* src = x.floats().data() + g * count;
      float* dst = y.mutable_floats().data() + g * count;
      double mean = 0, var = 0;
      for (int64_t i = 0; i < count; ++i) mean += src[i];
      mean /= count;
      for (int64_t i = 0; i < count; ++i) var += (src[i] - mean) * (src[i] - mean);
      var /= count;
      const double inv = 1 / std::sqrt(var + eps);
      for (int64_t i = 0; i < count; ++i) {
        const double v = (src[i] - mean) * inv;
        dst[i] = static_cast<float>((gamma.size() ? gamma.floats()[i] : 1.0) * v + (beta.size() ? beta.floats()[i] : 0.0));
      }
    }
    return Outputs(std::move(y));
  });
}

// reduceL1, reduceL2, reduceMax, reduceMin, reduceSum, reduceProd,
// reduceMean, reduceLogSum (log of the sum), reduceSumSquare and
// reduceLogSumExp over `axes` (or every axis with reduceAll).
absl::StatusOr<NnKernel> BuildReduceND(const NnLayerSpec& spec) {
  enum Mode { kL1, kL2, kMax, kMin, kSum, kProd, kMean, kLogSum, kSumSquare, kLogSumExp };
  static const auto* modes = new std::map<std::string, Mode>{
      {"reduceL1", kL1},     {"reduceL2", kL2},         {"reduceMax", kMax},           {"reduceMin", kMin},
      {"reduceSum", kSum},   {"reduceProd", kProd},     {"reduceMean", kMean},         {"reduceLogSum", kLogSum},
      {"reduceSumSquare", kSumSquare}, {"reduceLogSumExp", kLogSumExp},
  };
  auto it = modes->find(spec.type);
  if (it == modes->end()) return spec.Unimplemented("this reduction");
  const Mode mode = it->second;
  ASSIGN_OR_RETURN(std::vector<int64_t> axes, spec.params.Ints(1));
  const bool keep = spec.params.Bool(2), all = spec.params.Bool(3);
  if (!all && axes.empty()) return spec.Invalid("has no axes and reduceAll is not set");
  const NnLayerLabel label = spec;
  return NnKernel([=](const std::vector<const Tensor*>& in) -> absl::StatusOr<std::vector<Tensor>> {
    const Tensor& x = *in[0];
    RETURN_IF_ERROR(FloatInput(x, label));
    const int64_t r = x.rank();
    std::vector<bool> reduced(r, all);
    for (int64_t a : axes) {
      if (all) break;
      ASSIGN_OR_RETURN(int64_t d, Axis(a, r, label));
      reduced[d] = true;
    }
    Shape kept_shape(r);  // the output with every reduced axis at 1
    for (int64_t d = 0; d < r; ++d) kept_shape[d] = reduced[d] ? 1 : x.dim(d);
    const int64_t outputs = NumElements(kept_shape);
    std::vector<double> acc(outputs, mode == kProd ? 1.0 : 0.0);
    if (mode == kMax) acc.assign(outputs, -std::numeric_limits<double>::infinity());
    if (mode == kMin) acc.assign(outputs, std::numeric_limits<double>::infinity());
    std::vector<double> peak;
    if (mode == kLogSumExp) {  // the max first, for a stable sum of exps
      peak.assign(outputs, -std::numeric_limits<double>::infinity());
    }
    const std::vector<int64_t> strides = BroadcastStrides(kept_shape, x.shape());
    auto for_each = [&](auto fn) {
      std::vector<int64_t> idx(r, 0);
      int64_t o = 0;
      for (int64_t i = 0; i < x.size(); ++i) {
        fn(o, static_cast<double>(x.floats()[i]));
        for (int64_t d = r; d-- > 0;) {
          ++idx[d];
          o += strides[d];
          if (idx[d] < x.dim(d)) break;
          o -= strides[d] * idx[d];
          idx[d] = 0;
        }
      }
    };
    if (mode == kLogSumExp) for_each([&](int64_t o, double v) { peak[o] = std::max(peak[o], v); });
    for_each([&](int64_t o, double v) {
      switch (mode) {
        case kL1: acc[o] += std::fabs(v); break;
        case kL2: case kSumSquare: acc[o] += v * v; break;
        case kMax: acc[o] = std::max(acc[o], v); break;
        case kMin: acc[o] = std::min(acc[o], v); break;
        case kSum: case kMean: case kLogSum: acc[o] += v; break;
        case kProd: acc[o] *= v; break;
        case kLogSumExp: acc[o] += std::exp(v - peak[o]); break;
      }
    });
    const int64_t per = outputs == 0 ? 0 : x.size() / outputs;
    Tensor y = Tensor::Zeros(DType::kFloat32, kept_shape);
    for (int64_t o = 0; o < outputs; ++o) {
      double v = acc[o];
      if (mode == kL2) v = std::sqrt(v);
      if (mode == kMean) v /= per;
      if (mode == kLogSum) v = std::log(v);
      if (mode == kLogSumExp) v = std::isinf(peak[o]) ? peak[o] : peak[o] + std::log(v);
      y.mutable_floats()[o] = static_cast<float>(v);
    }
    if (!keep) {
      Shape out;
      for (int64_t d = 0; d < r; ++d) {
        if (!reduced[d]) out.push_back(x.dim(d));
      }
      if (out.empty()) out = {1};
      y.Reshape(out);
    }
    return Outputs(std::move(y));
  });
}

// argMax / argMin along `axis` (the first of equal extremes); removeDim
// drops the axis unless the input has rank 1.
absl::StatusOr<NnKernel> BuildArgMaxMin(const NnLayerSpec& spec) {
  const bool max = spec.type == "argMax";
  const int64_t axis = spec.params.Int(1);
  const bool remove = spec.params.Bool(2);
  const NnLayerLabel label = spec;
  return NnKernel([=](const std::vector<const Tensor*>& in) -> absl::StatusOr<std::vector<Tensor>> {
    const Tensor& x = *in[0];
    RETURN_IF_ERROR(FloatInput(x, label));
    ASSIGN_OR_RETURN(int64_t a, Axis(axis, x.rank(), label));
    int64_t outer, n, inner;
    AroundAxis(x.shape(), a, &outer, &n, &inner);
    if (n == 0) return label.Invalid("reduces an empty axis");
    Shape out = x.shape();
    out[a] = 1;
    Tensor y = Tensor::Zeros(DType::kFloat32, out);
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t i = 0; i < inner; ++i) {
        const float* p = x.floats().data() + o * n * inner + i;
        int64_t best = 0;
        for (int64_t k = 1; k < n; ++k) {
          if (max ? p[k * inner] > p[best * inner] : p[k * inner] < p[best * inner]) best = k;
        }
        y.mutable_floats()[o * inner + i] = static_cast<float>(best);
      }
    if (remove && x.rank() > 1) {
      out.erase(out.begin() + a);
      y.Reshape(out);
    }
    return Outputs(std::move(y));
  });
}

// topK along `axis`: the K largest (useBottomK: smallest) values in order,
// equal values by index, and their indices. A second input holds K.
absl::StatusOr<NnKernel> BuildTopK(const NnLayerSpec& spec) {
  const int64_t axis = spec.params.Int(1);
  const int64_t k_param = spec.params.Int(2);
  const bool bottom = spec.params.Bool(3);
  if (spec.output_count != 2) return spec.Invalid("must have two outputs (values, indices)");
  const NnLayerLabel label = spec;
  return NnKernel([=](const std::vector<const Tensor*>& in) -> absl::StatusOr<std::vector<Tensor>> {
    const Tensor& x = *in[0];
    RETURN_IF_ERROR(FloatInput(x, label));
    ASSIGN_OR_RETURN(int64_t a, Axis(axis, x.rank(), label));
    int64_t k = k_param;
    if (in.size() > 1) {
      if (!in[1]->is_float() || in[1]->size() != 1) return label.Invalid("K must be one value");
      const float v = in[1]->floats()[0];
      if (!(v >= 0 && v <= static_cast<float>(x.dim(a)))) return label.Invalid("K is out of range");
      k = static_cast<int64_t>(v);
    }
    int64_t outer, n, inner;
    AroundAxis(x.shape(), a, &outer, &n, &inner);
    if (k < 0 || k > n) return label.Invalid(absl::StrCat("K ", k, " is out of range for an axis of ", n));
    Shape out = x.shape();
    out[a] = k;
    Tensor values = Tensor::Zeros(DType::kFloat32, out), indices = Tensor::Zeros(DType::kFloat32, out);
    std::vector<int64_t> order(n);
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t i = 0; i < inner; ++i) {
        const float* p = x.floats().data() + o * n * inner + i;
        std::iota(order.begin(), order.end(), 0);
        // NaN last either way, as numpy and MIL's topk here place it (a
        // comparison with NaN is no ordering).
        auto key = [&](int64_t k) {
          const float v = p[k * inner];
          return std::isnan(v) ? (bottom ? INFINITY : -INFINITY) : v;
        };
        std::stable_sort(order.begin(), order.end(),
                         [&](int64_t l, int64_t r) { return bottom ? key(l) < key(r) : key(l) > key(r); });
        for (int64_t j = 0; j < k; ++j) {
          const int64_t at = (o * k + j) * inner + i;
          values.mutable_floats()[at] = p[order[j] * inner];
          indices.mutable_floats()[at] = static_cast<float>(order[j]);
        }
      }
    return Outputs(std::move(values), std::move(indices));
  });
}

// argSort along `axis` (stable: equal values by index; NaN last).
absl::StatusOr<NnKernel> BuildArgSort(const NnLayerSpec& spec) {
  const int64_t axis = spec.params.Int(1);
  const bool descending = spec.params.Bool(2);
  const NnLayerLabel label = spec;
  return NnKernel([=](const std::vector<const Tensor*>& in) -> absl::StatusOr<std::vector<Tensor>> {
    const Tensor& x = *in[0];
    RETURN_IF_ERROR(FloatInput(x, label));
    ASSIGN_OR_RETURN(int64_t a, Axis(axis, x.rank(), label));
    int64_t outer, n, inner;
    AroundAxis(x.shape(), a, &outer, &n, &inner);
    Tensor y = Tensor::Zeros(DType::kFloat32, x.shape());
    std::vector<int64_t> order(n);
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t i = 0; i < inner; ++i) {
        const float* p = x.floats().data() + o * n * inner + i;
        auto key = [&](int64_t k) {
          const float v = p[k * inner];
          return std::isnan(v) ? (descending ? -INFINITY : INFINITY) : v;
        };
        std::iota(order.begin(), order.end(), 0);
        std::stable_sort(order.begin(), order.end(),
                         [&](int64_t l, int64_t r) { return descending ? key(l) > key(r) : key(l) < key(r); });
        for (int64_t k = 0; k < n; ++k) y.mutable_floats()[(o * n + k) * inner + i] = static_cast<float>(order[k]);
      }
    return Outputs(std::move(y));
  });
}

// cumSum along `axis` (a second input, when given, holds the axis);
// excludeFinalSum shifts by one (an exclusive sum), reverse runs from the
// end.
absl::StatusOr<NnKernel> BuildCumSum(const NnLayerSpec& spec) {
  const int64_t axis_param = spec.params.Int(1);
  const bool exclusive = spec.params.Bool(2), reverse = spec.params.Bool(3);
  const NnLayerLabel label = spec;
  return NnKernel([=](const std::vector<const Tensor*>& in) -> absl::StatusOr<std::vector<Tensor>> {
    const Tensor& x = *in[0];
    RETURN_IF_ERROR(FloatInput(x, label));
    int64_t axis = axis_param;
    if (in.size() > 1) {
      if (!in[1]->is_float() || in[1]->size() != 1 || in[1]->floats()[0] != std::floor(in[1]->floats()[0]) ||
          std::fabs(in[1]->floats()[0]) > 64) {
        return label.Invalid("the axis input must be one integer");
      }
      axis = static_cast<int64_t>(in[1]->floats()[0]);
    }
    ASSIGN_OR_RETURN(int64_t a, Axis(axis, x.rank(), label));
    int64_t outer, n, inner;
    AroundAxis(x.shape(), a, &outer, &n, &inner);
    Tensor y = Tensor::Zeros(DType::kFloat32, x.shape());
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t i = 0; i < inner; ++i) {
        double sum = 0;
        for (int64_t s = 0; s < n; ++s) {
          const int64_t k = reverse ? n - 1 - s : s, at = (o * n + k) * inner + i;
          const float v = x.floats()[at];
          if (!exclusive) sum += v;
          y.mutable_floats()[at] = static_cast<float>(sum);
          if (exclusive) sum += v;
        }
      }
    return Outputs(std::move(y));
  });
}

// dot: the dot product of two [.., C, 1, 1] blobs over C (cosine
// similarity with cosineSimilarity), giving [.., 1, 1, 1].
absl::StatusOr<NnKernel> BuildDot(const NnLayerSpec& spec) {
  const bool cosine = spec.params.Bool(1);
  const NnLayerLabel label = spec;
  return NnKernel([=](const std::vector<const Tensor*>& in) -> absl::StatusOr<std::vector<Tensor>> {
    const Tensor &a = *in[0], &b = *in[1];
    if (!a.is_float() || !b.is_float() || a.shape() != b.shape() || a.rank() < 3 || a.dim(a.rank() - 1) != 1 ||
        a.dim(a.rank() - 2) != 1) {
      return label.Invalid("expects two float blobs of one shape [.., C, 1, 1]");
    }
    const int64_t c = a.dim(a.rank() - 3), batch = c == 0 ? 0 : a.size() / c;
    Shape out = a.shape();
    out[a.rank() - 3] = 1;
    Tensor y = Tensor::Zeros(DType::kFloat32, out);
    for (int64_t i = 0; i < batch; ++i) {
      double dot = 0, na = 0, nb = 0;
      for (int64_t k = 0; k < c; ++k) {
        const double u = a.floats()[i * c + k], v = b.floats()[i * c + k];
        dot += u * v, na += u * u, nb += v * v;
      }
      y.mutable_floats()[i] = static_cast<float>(cosine ? dot / std::sqrt(na * nb) : dot);
    }
    return Outputs(std::move(y));
  });
}

}  // namespace coremlz::execute
