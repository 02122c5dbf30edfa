// Element-index helpers shared by the data-movement kernels (ops_shape.cc,
// ops_indexing.cc): each such op says, for every output element, the flat
// index of the input element it takes, and TakeEach copies accordingly.
#ifndef COREMLZ_EXECUTE_ELEMENT_INDEX_H_
#define COREMLZ_EXECUTE_ELEMENT_INDEX_H_

#include <cstdint>
#include <string>
#include <vector>

#include "execute/indexing.h"
#include "execute/tensor.h"

namespace coremlz::execute {

// Calls fn(index, flat) for every index of `shape` in row-major order.
template <typename Fn>
inline void ForEachIndex(const Shape& shape, Fn fn) {
  const int64_t n = NumElements(shape);
  std::vector<int64_t> idx(shape.size(), 0);
  for (int64_t i = 0; i < n; ++i) {
    fn(idx, i);
    for (size_t d = shape.size(); d-- > 0;) {
      if (++idx[d] < shape[d]) break;
      idx[d] = 0;
    }
  }
}

// A tensor of `shape` whose element at (index, flat position i) is
// in[offset(index, i)], or `fill` where the offset is negative. Offsets are
// computed as the copy goes, never stored: a vector of them takes twice the
// output's bytes (Mosaic's last transpose needed 64 MiB of them for 32 MiB).
template <typename OffsetFn>
inline Tensor TakeEach(const Tensor& in, Shape shape, OffsetFn offset, double fill = 0) {
  if (in.dtype() == DType::kString) {
    std::vector<std::string> v(NumElements(shape));
    ForEachIndex(shape, [&](const std::vector<int64_t>& idx, int64_t i) {
      const int64_t s = offset(idx, i);
      if (s >= 0) v[i] = in.strings()[s];
    });
    return Tensor::String(std::move(shape), std::move(v));
  }
  Tensor out = Tensor::Zeros(in.dtype(), std::move(shape));
  if (in.is_float()) {
    const float* x = in.floats().data();
    float* o = out.mutable_floats().data();
    const float f = static_cast<float>(fill);
    ForEachIndex(out.shape(), [&](const std::vector<int64_t>& idx, int64_t i) {
      const int64_t s = offset(idx, i);
      o[i] = s < 0 ? f : x[s];
    });
  } else {
    const int32_t* x = in.ints().data();
    int32_t* o = out.mutable_ints().data();
    const int32_t f = static_cast<int32_t>(fill);
    ForEachIndex(out.shape(), [&](const std::vector<int64_t>& idx, int64_t i) {
      const int64_t s = offset(idx, i);
      o[i] = s < 0 ? f : x[s];
    });
  }
  return out;
}

}  // namespace coremlz::execute

#endif  // COREMLZ_EXECUTE_ELEMENT_INDEX_H_
