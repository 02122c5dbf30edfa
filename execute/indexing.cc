#include "execute/indexing.h"

#include "absl/strings/str_cat.h"

namespace coremlz::execute {

std::vector<int64_t> RowMajorStrides(const Shape& shape) {
  std::vector<int64_t> strides(shape.size(), 1);
  for (size_t d = shape.size(); d-- > 1;) strides[d - 1] = strides[d] * shape[d];
  return strides;
}

absl::StatusOr<int64_t> ResolveIndex(const OpContext& ctx, int64_t index, int64_t dim) {
  const int64_t resolved = (index < 0 && ctx.opset() < 17) ? index + dim : index;
  if (resolved < 0 || resolved >= dim) {
    return ctx.Invalid(absl::StrCat("index ", index, " is out of range for a dim of ", dim,
                                    ctx.opset() >= 17 && index < 0 ? " (negative indices are out of range from iOS17)" : ""));
  }
  return resolved;
}

}  // namespace coremlz::execute
