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

// The strides of an operand of `in_shape` as seen from `out` (one per dim of
// `out`, 0 along dims it stretches or lacks).
std::vector<int64_t> BroadcastStrides(absl::Span<const int64_t> in_shape, absl::Span<const int64_t> out);

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
    // Walks the output index, stepping each operand by its strides (0 along
    // stretched dims). Materialised offsets would take 16 bytes per output
    // element, four times the float result itself.
    const size_t rank = out.size();
    const std::vector<int64_t> sa = BroadcastStrides(a_shape, out), sb = BroadcastStrides(b_shape, out);
    std::vector<int64_t> idx(rank, 0);
    int64_t ia = 0, ib = 0;
    for (int64_t i = 0; i < n; ++i) {
      fn(i, ia, ib);
      for (size_t d = rank; d-- > 0;) {
        ++idx[d];
        ia += sa[d], ib += sb[d];
        if (idx[d] < out[d]) break;
        ia -= sa[d] * idx[d], ib -= sb[d] * idx[d];
        idx[d] = 0;
      }
    }
  }
}

}  // namespace coremlz::execute

#endif  // COREMLZ_EXECUTE_BROADCAST_H_
