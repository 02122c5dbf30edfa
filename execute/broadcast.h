// NumPy-style broadcasting of two operands, as every MIL elementwise binary
// op uses: shapes are aligned at the trailing dimension and a dimension of 1
// stretches to the other's size.
#ifndef COREMLZ_EXECUTE_BROADCAST_H_
#define COREMLZ_EXECUTE_BROADCAST_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "execute/tensor.h"

namespace coremlz::execute {

absl::StatusOr<Shape> BroadcastShapes(absl::Span<const int64_t> a, absl::Span<const int64_t> b);

// Element offset into an operand of `in_shape` for every element of `out`
// (row-major); `in_shape` must broadcast to `out`.
std::vector<int64_t> BroadcastOffsets(absl::Span<const int64_t> in_shape, absl::Span<const int64_t> out);

// Calls fn(out_index, a_index, b_index) for every output element.
template <typename Fn>
void ForEachBroadcast(absl::Span<const int64_t> a_shape, absl::Span<const int64_t> b_shape,
                      absl::Span<const int64_t> out, Fn fn) {
  const int64_t n = NumElements(out);
  const int64_t na = NumElements(a_shape), nb = NumElements(b_shape);
  if (na == n && nb == n) {
    for (int64_t i = 0; i < n; ++i) fn(i, i, i);
  } else if (na == n && nb == 1) {
    for (int64_t i = 0; i < n; ++i) fn(i, i, 0);
  } else if (na == 1 && nb == n) {
    for (int64_t i = 0; i < n; ++i) fn(i, 0, i);
  } else {
    const std::vector<int64_t> oa = BroadcastOffsets(a_shape, out);
    const std::vector<int64_t> ob = BroadcastOffsets(b_shape, out);
    for (int64_t i = 0; i < n; ++i) fn(i, oa[i], ob[i]);
  }
}

}  // namespace coremlz::execute

#endif  // COREMLZ_EXECUTE_BROADCAST_H_
