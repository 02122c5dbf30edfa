#include "execute/reduction.h"

#include <algorithm>

#include "absl/status/status.h"
#include "common/status_macros.h"
#include "execute/op_registry.h"

namespace coremlz::execute {
namespace {

// Offsets of every index over `dims` (row-major), with element strides.
std::vector<int64_t> Offsets(const std::vector<int64_t>& dims, const std::vector<int64_t>& strides) {
  const int64_t n = NumElements(dims);
  std::vector<int64_t> out(n);
  std::vector<int64_t> idx(dims.size(), 0);
  int64_t off = 0;
  for (int64_t i = 0; i < n; ++i) {
    out[i] = off;
    for (size_t d = dims.size(); d-- > 0;) {
      ++idx[d];
      off += strides[d];
      if (idx[d] < dims[d]) break;
      off -= strides[d] * idx[d];
      idx[d] = 0;
    }
  }
  return out;
}

}  // namespace

absl::StatusOr<Reduction> PlanReduction(absl::Span<const int64_t> shape, absl::Span<const int64_t> axes) {
  const int64_t rank = static_cast<int64_t>(shape.size());
  Reduction r;
  std::vector<bool> reduced(rank, false);
  for (int64_t a : axes) {
    ASSIGN_OR_RETURN(int64_t axis, NormalizeAxis(a, rank));
    if (reduced[axis]) return absl::InvalidArgumentError("repeated axis");
    reduced[axis] = true;
  }
  std::vector<int64_t> stride(rank, 1);
  for (int64_t d = rank - 1; d > 0; --d) stride[d - 1] = stride[d] * shape[d];
  std::vector<int64_t> kept_dims, kept_strides, red_dims, red_strides;
  for (int64_t d = 0; d < rank; ++d) {
    if (reduced[d]) {
      r.axes.push_back(d);
      r.kept_shape.push_back(1);
      red_dims.push_back(shape[d]);
      red_strides.push_back(stride[d]);
    } else {
      r.kept_shape.push_back(shape[d]);
      r.dropped_shape.push_back(shape[d]);
      kept_dims.push_back(shape[d]);
      kept_strides.push_back(stride[d]);
    }
  }
  r.group_base = Offsets(kept_dims, kept_strides);
  r.member_offset = Offsets(red_dims, red_strides);
  return r;
}

}  // namespace coremlz::execute
