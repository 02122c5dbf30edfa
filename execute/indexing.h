// Helpers shared by the kernels that take element indices from a program's
// values (gather_nd, scatter*, one_hot, topk, ...): row-major strides and the
// check of one untrusted index against the dim it addresses.
#ifndef COREMLZ_EXECUTE_INDEXING_H_
#define COREMLZ_EXECUTE_INDEXING_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "execute/op_registry.h"
#include "execute/tensor.h"

namespace coremlz::execute {

// Elements to step over per unit of each dim of a row-major `shape`.
std::vector<int64_t> RowMajorStrides(const Shape& shape);

// `index` as a position in [0, dim). Before iOS17 the gather/scatter family
// counts a negative index from the end; from iOS17 on a negative index is
// out of range (coremltools' iOS17 scatter_gather.py). Out of range is
// INVALID_ARGUMENT, never a read or write outside the tensor.
absl::StatusOr<int64_t> ResolveIndex(const OpContext& ctx, int64_t index, int64_t dim);

}  // namespace coremlz::execute

#endif  // COREMLZ_EXECUTE_INDEXING_H_
