#include "execute/broadcast.h"

#include <algorithm>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace coremlz::execute {

absl::StatusOr<Shape> BroadcastShapes(absl::Span<const int64_t> a, absl::Span<const int64_t> b) {
  const size_t rank = std::max(a.size(), b.size());
  Shape out(rank);
  for (size_t i = 0; i < rank; ++i) {
    const int64_t da = i < rank - a.size() ? 1 : a[i - (rank - a.size())];
    const int64_t db = i < rank - b.size() ? 1 : b[i - (rank - b.size())];
    if (da != db && da != 1 && db != 1) {
      return absl::InvalidArgumentError(absl::StrCat("shapes ", format::ShapeString(a), " and ",
                                                     format::ShapeString(b), " do not broadcast"));
    }
    out[i] = da == 1 ? db : da;
  }
  // Two modest operands can broadcast to a huge result ([n,1] x [1,m]).
  RETURN_IF_ERROR(CheckShape(out));
  return out;
}

std::vector<int64_t> BroadcastStrides(absl::Span<const int64_t> in_shape, absl::Span<const int64_t> out) {
  const size_t rank = out.size();
  const size_t lead = rank - in_shape.size();
  std::vector<int64_t> stride(rank, 0);
  int64_t s = 1;
  for (size_t i = rank; i-- > lead;) {
    const int64_t d = in_shape[i - lead];
    stride[i] = d == 1 ? 0 : s;
    s *= d;
  }
  return stride;
}

std::vector<int64_t> BroadcastOffsets(absl::Span<const int64_t> in_shape, absl::Span<const int64_t> out) {
  const size_t rank = out.size();
  const std::vector<int64_t> stride = BroadcastStrides(in_shape, out);
  const int64_t n = NumElements(out);
  std::vector<int64_t> offsets(n);
  std::vector<int64_t> idx(rank, 0);
  int64_t off = 0;
  for (int64_t i = 0; i < n; ++i) {
    offsets[i] = off;
    for (size_t d = rank; d-- > 0;) {
      ++idx[d];
      off += stride[d];
      if (idx[d] < out[d]) break;
      off -= stride[d] * idx[d];
      idx[d] = 0;
    }
  }
  return offsets;
}

}  // namespace coremlz::execute
