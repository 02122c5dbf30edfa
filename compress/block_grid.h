// A tensor cut into a grid of equally sized blocks, one block size per axis
// (0 or the full dimension meaning "the whole axis"). Per-tensor, per-channel
// and per-block granularities are all grids: per-channel on axis 0 of
// [C, K] is block sizes {1, 0}.
#ifndef COREMLZ_COMPRESS_BLOCK_GRID_H_
#define COREMLZ_COMPRESS_BLOCK_GRID_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace coremlz::compress {

class BlockGrid {
 public:
  // Fails if a block size does not divide its dimension or is negative.
  static absl::StatusOr<BlockGrid> Make(absl::Span<const int64_t> shape, absl::Span<const int64_t> block_sizes);

  const std::vector<int64_t>& shape() const { return shape_; }
  const std::vector<int64_t>& block() const { return block_; }
  // Number of blocks along each axis: shape / block.
  const std::vector<int64_t>& grid_shape() const { return grid_; }
  int64_t num_blocks() const { return num_blocks_; }
  int64_t num_elements() const { return num_elements_; }

  // Calls fn(block_index, first_element, length) for maximal runs of
  // consecutive (row-major) elements that lie in one block, in order.
  template <typename Fn>
  void ForEachRun(Fn&& fn) const;

 private:
  std::vector<int64_t> shape_, block_, grid_;
  int64_t num_blocks_ = 1;
  int64_t num_elements_ = 1;
};

template <typename Fn>
void BlockGrid::ForEachRun(Fn&& fn) const {
  const size_t rank = shape_.size();
  if (num_elements_ == 0) return;
  if (rank == 0) {
    fn(int64_t{0}, int64_t{0}, int64_t{1});
    return;
  }
  // Merge trailing axes that are not split into blocks: a run is then a whole
  // inner slab, or one block of the innermost split axis.
  size_t split = rank;  // first axis (from the end) whose block < dim
  int64_t inner = 1;
  while (split > 0 && block_[split - 1] == shape_[split - 1]) {
    inner *= shape_[split - 1];
    --split;
  }
  if (split == 0) {
    fn(int64_t{0}, int64_t{0}, num_elements_);
    return;
  }
  const size_t last = split - 1;  // innermost split axis
  const int64_t run = block_[last] * inner;
  const int64_t runs_per_row = grid_[last];
  // Odometer over axes [0, last).
  std::vector<int64_t> coord(last, 0);
  std::vector<int64_t> grid_stride(rank, 1);
  for (size_t a = rank - 1; a > 0; --a) grid_stride[a - 1] = grid_stride[a] * grid_[a];
  int64_t element = 0;
  while (true) {
    int64_t base = 0;
    for (size_t a = 0; a < last; ++a) base += (coord[a] / block_[a]) * grid_stride[a];
    for (int64_t r = 0; r < runs_per_row; ++r) {
      fn(base + r * grid_stride[last], element, run);
      element += run;
    }
    size_t a = last;
    while (a > 0) {
      --a;
      if (++coord[a] < shape_[a]) break;
      coord[a] = 0;
      if (a == 0) return;
    }
    if (last == 0) return;
  }
}

}  // namespace coremlz::compress

#endif  // COREMLZ_COMPRESS_BLOCK_GRID_H_
