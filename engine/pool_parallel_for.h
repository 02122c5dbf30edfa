// compress::ParallelFor over the embedded engine's TaskPool: the threads
// that --threads gives and the rule on weights in flight leaves idle (a
// model of equal large weights compresses one at a time, so its memory stays
// that of one weight) help with the groups of the weight being compressed.
//
// The calling thread works through the pieces itself; helpers queued on the
// pool join in if and when a pool thread is free. Run never waits for a
// helper that has not started, so it cannot deadlock when every pool thread
// is busy (the caller is usually one of them), and it returns once the
// pieces are done and every helper that joined has left.
//
// coremlzd's workers lend it too (engine/worker_pool.cc), but there the
// threads belong to whole jobs first: a HelperGate admits a helper to each
// piece only while a worker slot (and the memory a piece may hold) is free,
// so a job that arrives takes its slot back after the pieces in hand.
#ifndef COREMLZ_ENGINE_POOL_PARALLEL_FOR_H_
#define COREMLZ_ENGINE_POOL_PARALLEL_FOR_H_

#include <cstdint>

#include "absl/functional/function_ref.h"
#include "compress/parallel_for.h"
#include "engine/task_pool.h"

namespace coremlz::engine {

// Whether a helper may take one more piece. Called from helper threads
// only (the caller always works); must be thread-safe.
class HelperGate {
 public:
  virtual ~HelperGate() = default;
  // true: the helper claims one piece, holding up to `bytes`, and then calls
  // Leave(bytes, ran), `ran` false when another thread had taken the last
  // piece first; false: it stops.
  virtual bool Enter(uint64_t bytes) = 0;
  virtual void Leave(uint64_t bytes, bool ran) = 0;
};

class PoolParallelFor : public compress::ParallelFor {
 public:
  // `helpers`: how many pool tasks to offer per Run (the pool's threads
  // less the caller's own, typically). `gate` (optional, must outlive every
  // Run: helpers that start after theirs returned leave without asking it):
  // asked before every piece a helper takes.
  PoolParallelFor(TaskPool* pool, int helpers, HelperGate* gate = nullptr)
      : pool_(pool), helpers_(helpers), gate_(gate) {}

  void Run(int64_t count, uint64_t piece_bytes, absl::FunctionRef<void(int64_t)> body) const override;

 private:
  TaskPool* const pool_;
  const int helpers_;
  HelperGate* const gate_;
};

}  // namespace coremlz::engine

#endif  // COREMLZ_ENGINE_POOL_PARALLEL_FOR_H_
