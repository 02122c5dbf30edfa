// NeuralNetwork layers with one output per part of their input: split
// (nOutputs equal parts along axis -3) and splitND (numSplits equal parts,
// or splitSizes, along any axis; negative axes count from the end).
#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "execute/nn_layer.h"

namespace coremlz::execute {
namespace {

// x cut along axis `a` into consecutive parts of `sizes` (summing to the
// axis' length).
std::vector<Tensor> Cut(const Tensor& x, int64_t a, const std::vector<int64_t>& sizes) {
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < a; ++d) outer *= x.dim(d);
  for (int64_t d = a + 1; d < x.rank(); ++d) inner *= x.dim(d);
  const int64_t n = x.dim(a);
  std::vector<Tensor> parts;
  parts.reserve(sizes.size());
  int64_t begin = 0;
  for (int64_t size : sizes) {
    Shape shape = x.shape();
    shape[a] = size;
    Tensor y = Tensor::Zeros(DType::kFloat32, shape);
    float* dst = y.mutable_floats().data();
    for (int64_t o = 0; o < outer; ++o) {
      dst = std::copy_n(x.floats().data() + (o * n + begin) * inner, size * inner, dst);
    }
    begin += size;
    parts.push_back(std::move(y));
  }
  return parts;
}

}  // namespace

absl::StatusOr<NnKernel> BuildSplit(const NnLayerSpec& spec) {
  const int64_t n = spec.params.Int(1);
  if (n <= 0 || n != spec.output_count) {
    return spec.Invalid(absl::StrCat("nOutputs is ", n, " but the layer has ", spec.output_count, " outputs"));
  }
  const NnLayerLabel label = spec;
  return NnKernel([=](const std::vector<const Tensor*>& in) -> absl::StatusOr<std::vector<Tensor>> {
    const Tensor& x = *in[0];
    if (!x.is_float() || x.rank() < 3) return label.Invalid("expects a float input of rank >= 3");
    const int64_t a = x.rank() - 3, c = x.dim(a);
    if (c % n != 0) return label.Invalid(absl::StrCat(c, " channels do not split into ", n, " equal parts"));
    return Cut(x, a, std::vector<int64_t>(n, c / n));
  });
}

absl::StatusOr<NnKernel> BuildSplitND(const NnLayerSpec& spec) {
  const int64_t axis = spec.params.Int(1);
  const int64_t num = spec.params.Int(2);
  ASSIGN_OR_RETURN(std::vector<int64_t> sizes, spec.params.Ints(3));
  // splitSizes, when given, decides the count ("numSplits is ignored").
  const int64_t count = sizes.empty() ? num : static_cast<int64_t>(sizes.size());
  if (count <= 0 || count != spec.output_count) {
    return spec.Invalid(absl::StrCat("splits into ", count, " parts but the layer has ", spec.output_count,
                                     " outputs"));
  }
  for (int64_t s : sizes) {
    if (s < 0) return spec.Invalid("splitSizes has a negative size");
  }
  const NnLayerLabel label = spec;
  return NnKernel([=](const std::vector<const Tensor*>& in) -> absl::StatusOr<std::vector<Tensor>> {
    const Tensor& x = *in[0];
    if (!x.is_float() || x.rank() < 1) return label.Invalid("expects a float input of rank >= 1");
    const int64_t a = axis < 0 ? axis + x.rank() : axis;
    if (a < 0 || a >= x.rank()) return label.Invalid(absl::StrCat("axis ", axis, " is out of range"));
    const int64_t n = x.dim(a);
    std::vector<int64_t> parts = sizes;
    if (parts.empty()) {
      if (n % count != 0) return label.Invalid(absl::StrCat("axis of ", n, " does not split into ", count, " parts"));
      parts.assign(count, n / count);
    }
    int64_t total = 0;
    for (int64_t s : parts) {
      if (s > n) return label.Invalid(absl::StrCat("split size ", s, " exceeds the axis' ", n));
      total += s;
    }
    if (total != n) return label.Invalid(absl::StrCat("splitSizes sum to ", total, ", not the axis' ", n));
    return Cut(x, a, parts);
  });
}

}  // namespace coremlz::execute
