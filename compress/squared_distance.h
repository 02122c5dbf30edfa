// The squared Euclidean distance between two points of `dim` coordinates,
// summed in double over the dimensions in order, whatever the operands'
// types (floats are widened exactly). The vector k-means pieces share it so
// that every comparison of distances rounds the same way.
#ifndef COREMLZ_COMPRESS_SQUARED_DISTANCE_H_
#define COREMLZ_COMPRESS_SQUARED_DISTANCE_H_

namespace coremlz::compress {

template <typename A, typename B>
inline double SquaredDistance(const A* a, const B* b, int dim) {
  double sum = 0;
  for (int t = 0; t < dim; ++t) {
    const double d = static_cast<double>(a[t]) - static_cast<double>(b[t]);
    sum += d * d;
  }
  return sum;
}

}  // namespace coremlz::compress

#endif  // COREMLZ_COMPRESS_SQUARED_DISTANCE_H_
