// Index bookkeeping for ops that reduce or normalise over a set of axes
// (reduce_*, layer_norm, instance_norm): which input elements make up each
// reduced group.
#ifndef COREMLZ_EXECUTE_REDUCTION_H_
#define COREMLZ_EXECUTE_REDUCTION_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "execute/tensor.h"

namespace coremlz::execute {

struct Reduction {
  std::vector<int64_t> axes;    // normalised, sorted, unique
  Shape kept_shape;             // reduced dims set to 1
  Shape dropped_shape;          // reduced dims removed
  // Input offset of the first element of each group (one per output
  // element, row-major over the kept dims) and the offsets of a group's
  // elements relative to it (row-major over the reduced dims).
  std::vector<int64_t> group_base;
  std::vector<int64_t> member_offset;
};

// Axes may be negative; duplicates are INVALID_ARGUMENT.
absl::StatusOr<Reduction> PlanReduction(absl::Span<const int64_t> shape, absl::Span<const int64_t> axes);

}  // namespace coremlz::execute

#endif  // COREMLZ_EXECUTE_REDUCTION_H_
