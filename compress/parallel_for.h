// A way to run independent pieces of one kernel at once. The kernels know
// nothing of threads: a caller that has idle threads (the engine's pool,
// engine/pool_parallel_for.h) passes one in, and grouped palettization then
// solves its groups' palettes side by side. Results may not depend on it:
// every piece writes only its own part of the output.
#ifndef COREMLZ_COMPRESS_PARALLEL_FOR_H_
#define COREMLZ_COMPRESS_PARALLEL_FOR_H_

#include <cstdint>

#include "absl/functional/function_ref.h"

namespace coremlz::compress {

class ParallelFor {
 public:
  virtual ~ParallelFor() = default;
  // Calls body(i) once for every i in [0, count), perhaps on several
  // threads at once and in any order; returns when every call has returned.
  // body must be safe to run concurrently for distinct i. `piece_bytes`:
  // the most memory one call of body holds (an implementation that runs
  // pieces beside other work under a memory budget charges it).
  virtual void Run(int64_t count, uint64_t piece_bytes, absl::FunctionRef<void(int64_t)> body) const = 0;
};

}  // namespace coremlz::compress

#endif  // COREMLZ_COMPRESS_PARALLEL_FOR_H_
