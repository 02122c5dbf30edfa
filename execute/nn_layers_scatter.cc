// NeuralNetwork multi-index gather and the scatter family: gatherND,
// scatter (slices along an axis), scatterND (multi-indices into the leading
// axes) and scatterAlongAxis (numpy.put_along_axis). Indices arrive as
// floats (every blob is float), must be whole and in [-n, n), negative ones
// counting from the end; anything else is INVALID_ARGUMENT before an element
// is touched. Scatters start from the container and apply the updates in
// row-major order of `updates`, so a repeated index keeps the last update
// (SCATTER_UPDATE) or accumulates (the other ScatterModes).
#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "execute/indexing.h"
#include "execute/nn_layer.h"

namespace coremlz::execute {
namespace {


int64_t Product(const Shape& s, size_t begin, size_t end) {
  int64_t p = 1;
  for (size_t d = begin; d < end; ++d) p *= s[d];
  return p;
}

// ScatterMode: SCATTER_UPDATE, ADD, SUB, MUL, DIV, MAX, MIN.
void Apply(int64_t mode, float u, float& o) {
  switch (mode) {
    case 0:
      o = u;
      break;
    case 1:
      o += u;
      break;
    case 2:
      o -= u;
      break;
    case 3:
      o *= u;
      break;
    case 4:
      o /= u;
      break;
    case 5:
      o = std::max(o, u);
      break;
    default:
      o = std::min(o, u);
      break;
  }
}

// The updates must have shape `want`; a scalar `want` (every axis indexed)
// also takes a one-element updates.
absl::Status CheckUpdates(const Tensor& updates, const Shape& want, const NnLayerLabel& label) {
  if (updates.shape() == want || (want.empty() && updates.size() == 1 && updates.rank() <= 1)) return absl::OkStatus();
  return label.Invalid(absl::StrCat("updates must have shape [", absl::StrJoin(want, ", "), "]"));
}

}  // namespace

// gatherND: indices [I_0, ..., I_(K-1), I_K] hold I_K coordinates into
// params' leading axes; output indices.shape[:-1] + params.shape[I_K:].
absl::StatusOr<NnKernel> BuildGatherND(const NnLayerSpec& spec) {
  const NnLayerLabel label = spec;
  return NnKernel([=](const std::vector<const Tensor*>& in) -> absl::StatusOr<std::vector<Tensor>> {
    RETURN_IF_ERROR(NnFloatInputs(in, label));
    const Tensor &x = *in[0], &ids = *in[1];
    if (ids.rank() < 1) return label.Invalid("indices must have rank >= 1");
    const int64_t k = ids.dim(ids.rank() - 1);
    if (k < 1 || k > x.rank()) return label.Invalid(absl::StrCat("index depth ", k, " does not fit rank ", x.rank()));
    Shape out(ids.shape().begin(), ids.shape().end() - 1);
    out.insert(out.end(), x.shape().begin() + k, x.shape().end());
    if (out.empty()) out = {1};
    RETURN_IF_ERROR(CheckShape(out));
    ASSIGN_OR_RETURN(Tensor y, Tensor::Allocate(DType::kFloat32, out));
    const std::vector<int64_t> strides = RowMajorStrides(x.shape());
    const int64_t inner = Product(x.shape(), k, x.rank()), lookups = ids.size() / k;
    float* dst = y.mutable_floats().data();
    for (int64_t l = 0; l < lookups; ++l) {
      int64_t at = 0;
      for (int64_t j = 0; j < k; ++j) {
        ASSIGN_OR_RETURN(int64_t i, NnFloatIndex(ids.floats()[l * k + j], x.dim(j), label));
        at += i * strides[j];
      }
      dst = std::copy_n(x.floats().data() + at, inner, dst);
    }
    return Outputs(std::move(y));
  });
}

// scatter (axis, mode): updates data.shape[:axis] + indices.shape +
// data.shape[axis + 1:]; scatterND (mode): updates indices.shape[:-1] +
// data.shape[I_K:]; scatterAlongAxis (axis, mode): indices and updates of
// data's shape except along the axis.
absl::StatusOr<NnKernel> BuildScatter(const NnLayerSpec& spec) {
  const bool nd = spec.type == "scatterND";
  const int64_t axis = nd ? 0 : spec.params.Int(1);
  const int64_t mode = spec.params.Int(nd ? 1 : 2);
  if (mode < 0 || mode > 6) return spec.Invalid(absl::StrCat("unknown ScatterMode ", mode));
  const std::string type = spec.type;
  const NnLayerLabel label = spec;
  return NnKernel([=](const std::vector<const Tensor*>& in) -> absl::StatusOr<std::vector<Tensor>> {
    RETURN_IF_ERROR(NnFloatInputs(in, label));
    const Tensor &data = *in[0], &ids = *in[1], &updates = *in[2];
    Tensor out = data;
    float* o = out.mutable_floats().data();
    const float* u = updates.floats().data();
    if (type == "scatterND") {
      if (ids.rank() < 1) return label.Invalid("indices must have rank >= 1");
      const int64_t k = ids.dim(ids.rank() - 1);
      if (k < 1 || k > data.rank()) {
        return label.Invalid(absl::StrCat("index depth ", k, " does not fit rank ", data.rank()));
      }
      Shape want(ids.shape().begin(), ids.shape().end() - 1);
      want.insert(want.end(), data.shape().begin() + k, data.shape().end());
      RETURN_IF_ERROR(CheckUpdates(updates, want, label));
      const std::vector<int64_t> strides = RowMajorStrides(data.shape());
      const int64_t inner = Product(data.shape(), k, data.rank()), lookups = ids.size() / k;
      for (int64_t l = 0; l < lookups; ++l) {
        int64_t at = 0;
        for (int64_t j = 0; j < k; ++j) {
          ASSIGN_OR_RETURN(int64_t i, NnFloatIndex(ids.floats()[l * k + j], data.dim(j), label));
          at += i * strides[j];
        }
        for (int64_t e = 0; e < inner; ++e) Apply(mode, u[l * inner + e], o[at + e]);
      }
      return Outputs(std::move(out));
    }
    ASSIGN_OR_RETURN(int64_t a, Axis(axis, data.rank(), label));
    const int64_t n = data.dim(a), outer = Product(data.shape(), 0, a),
                  inner = Product(data.shape(), a + 1, data.rank());
    if (type == "scatter") {
      Shape want(data.shape().begin(), data.shape().begin() + a);
      want.insert(want.end(), ids.shape().begin(), ids.shape().end());
      want.insert(want.end(), data.shape().begin() + a + 1, data.shape().end());
      RETURN_IF_ERROR(CheckUpdates(updates, want, label));
      const int64_t m = ids.size();
      for (int64_t b = 0; b < outer; ++b)
        for (int64_t k = 0; k < m; ++k) {
          ASSIGN_OR_RETURN(int64_t i, NnFloatIndex(ids.floats()[k], n, label));
          for (int64_t e = 0; e < inner; ++e) Apply(mode, u[(b * m + k) * inner + e], o[(b * n + i) * inner + e]);
        }
      return Outputs(std::move(out));
    }
    // scatterAlongAxis
    if (ids.rank() != data.rank()) return label.Invalid("indices must have the container's rank");
    for (int64_t d = 0; d < data.rank(); ++d) {
      if (d != a && ids.dim(d) != data.dim(d)) return label.Invalid("indices differ from the container off the axis");
    }
    RETURN_IF_ERROR(CheckUpdates(updates, ids.shape(), label));
    const int64_t m = ids.dim(a);
    for (int64_t b = 0; b < outer; ++b)
      for (int64_t k = 0; k < m; ++k)
        for (int64_t e = 0; e < inner; ++e) {
          const int64_t at = (b * m + k) * inner + e;
          ASSIGN_OR_RETURN(int64_t i, NnFloatIndex(ids.floats()[at], n, label));
          Apply(mode, u[at], o[(b * n + i) * inner + e]);
        }
    return Outputs(std::move(out));
  });
}

}  // namespace coremlz::execute
