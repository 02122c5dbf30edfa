// Sorting float weights in linear time: an LSD radix sort whose result is
// exactly std::stable_sort(v, std::less<float>()) for NaN-free input (0.0
// and -0.0 compare equal, so they keep their input order, as the stable
// sort keeps them). It replaced a comparison sort that was ~40 % of fp32
// k-means palettization.
#ifndef COREMLZ_COMPRESS_FLOAT_SORT_H_
#define COREMLZ_COMPRESS_FLOAT_SORT_H_

#include <vector>

#include "compress/cancel.h"

namespace coremlz::compress {

// Sorts `v` (no NaN) ascending, stably. Polls `cancel` (optional) every
// million elements; false when cancelled (`v` is then unspecified).
bool StableSortFloats(std::vector<float>& v, CancelCheck* cancel);

}  // namespace coremlz::compress

#endif  // COREMLZ_COMPRESS_FLOAT_SORT_H_
