#include "compress/block_grid.h"

#include "absl/strings/str_cat.h"

namespace coremlz::compress {

absl::StatusOr<BlockGrid> BlockGrid::Make(absl::Span<const int64_t> shape, absl::Span<const int64_t> block_sizes) {
  if (shape.size() != block_sizes.size()) {
    return absl::InvalidArgumentError(absl::StrCat("block sizes have ", block_sizes.size(),
                                                   " entries for a rank-", shape.size(), " tensor"));
  }
  BlockGrid g;
  for (size_t a = 0; a < shape.size(); ++a) {
    const int64_t dim = shape[a];
    int64_t b = block_sizes[a];
    if (dim < 0 || b < 0) return absl::InvalidArgumentError("negative dimension or block size");
    if (b == 0) b = dim;
    if (dim > 0 && (b > dim || dim % b != 0)) {
      return absl::InvalidArgumentError(absl::StrCat("axis ", a, " of size ", dim,
                                                     " is not divisible by block size ", b));
    }
    g.shape_.push_back(dim);
    g.block_.push_back(b);
    g.grid_.push_back(dim == 0 ? 0 : dim / b);
    g.num_blocks_ *= g.grid_.back();
    g.num_elements_ *= dim;
  }
  return g;
}

}  // namespace coremlz::compress
