// Element-index helpers shared by the data-movement kernels (ops_shape.cc,
// ops_indexing.cc): each such op computes, for every output element, the flat
// index of the input element it takes, and Take copies accordingly.
#ifndef COREMLZ_EXECUTE_ELEMENT_INDEX_H_
#define COREMLZ_EXECUTE_ELEMENT_INDEX_H_

#include <cstdint>
#include <vector>

#include "execute/indexing.h"
#include "execute/tensor.h"

namespace coremlz::execute {

// out[i] = in[src[i]], or `fill` where src[i] < 0.
inline Tensor Take(const Tensor& in, Shape shape, const std::vector<int64_t>& src, double fill = 0) {
  Tensor out = Tensor::Zeros(in.dtype(), std::move(shape));
  const int64_t n = out.size();
  if (in.is_float()) {
    float* o = out.mutable_floats().data();
    for (int64_t i = 0; i < n; ++i) o[i] = src[i] < 0 ? static_cast<float>(fill) : in.floats()[src[i]];
  } else if (in.dtype() == DType::kString) {
    std::vector<std::string> v(n);
    for (int64_t i = 0; i < n; ++i) v[i] = src[i] < 0 ? "" : in.strings()[src[i]];
    return Tensor::String(out.shape(), std::move(v));
  } else {
    int32_t* o = out.mutable_ints().data();
    for (int64_t i = 0; i < n; ++i) o[i] = src[i] < 0 ? static_cast<int32_t>(fill) : in.ints()[src[i]];
  }
  return out;
}

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

}  // namespace coremlz::execute

#endif  // COREMLZ_EXECUTE_ELEMENT_INDEX_H_
