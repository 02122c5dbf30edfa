// Reductions over spans of floats that every technique starts with, written
// so the compiler vectorizes them (lane-wise partial results, no branches).
#ifndef COREMLZ_COMPRESS_REDUCE_H_
#define COREMLZ_COMPRESS_REDUCE_H_

#include "absl/types/span.h"

namespace coremlz::compress {

// True if no value is NaN or infinite.
bool AllFinite(absl::Span<const float> values);

// Folds the values into *lo / *hi with std::min / std::max semantics (NaNs
// are ignored; the sign of a zero extreme is unspecified). *lo and *hi carry
// the running result in and out, so runs of one block can be chained.
void MinMax(absl::Span<const float> values, float* lo, float* hi);

}  // namespace coremlz::compress

#endif  // COREMLZ_COMPRESS_REDUCE_H_
