#include "engine/pool_parallel_for.h"

#include <algorithm>
#include <atomic>
#include <memory>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace coremlz::engine {
namespace {

// Shared with the helpers, which may start after Run returned (they then
// find it closed and leave without touching the body).
struct Pieces {
  std::atomic<int64_t> next{0};
  int64_t count = 0;
  absl::Mutex mu;
  bool closed ABSL_GUARDED_BY(mu) = false;
  int active ABSL_GUARDED_BY(mu) = 0;  // helpers inside the body loop
  const absl::FunctionRef<void(int64_t)>* body ABSL_GUARDED_BY(mu) = nullptr;

  bool Idle() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) { return active == 0; }

  void Work(absl::FunctionRef<void(int64_t)> run) {
    for (int64_t i = next.fetch_add(1); i < count; i = next.fetch_add(1)) run(i);
  }

  // A helper's loop: the gate is asked before each piece, and a piece is
  // claimed only once it said yes.
  void WorkGated(absl::FunctionRef<void(int64_t)> run, HelperGate* gate, uint64_t bytes) {
    while (next.load(std::memory_order_relaxed) < count && gate->Enter(bytes)) {
      const int64_t i = next.fetch_add(1);
      if (i < count) run(i);
      gate->Leave(bytes, i < count);
      if (i >= count) return;
    }
  }
};

}  // namespace

void PoolParallelFor::Run(int64_t count, uint64_t piece_bytes, absl::FunctionRef<void(int64_t)> body) const {
  if (count <= 0) return;
  const int helpers = static_cast<int>(std::min<int64_t>(helpers_, count - 1));
  if (pool_ == nullptr || helpers <= 0) {
    for (int64_t i = 0; i < count; ++i) body(i);
    return;
  }
  auto pieces = std::make_shared<Pieces>();
  pieces->count = count;
  {
    absl::MutexLock lock(&pieces->mu);
    pieces->body = &body;
  }
  for (int h = 0; h < helpers; ++h) {
    pool_->Submit([pieces, gate = gate_, piece_bytes] {
      const absl::FunctionRef<void(int64_t)>* run = nullptr;
      {
        absl::MutexLock lock(&pieces->mu);
        if (pieces->closed) return;
        ++pieces->active;
        run = pieces->body;
      }
      if (gate != nullptr) {
        pieces->WorkGated(*run, gate, piece_bytes);
      } else {
        pieces->Work(*run);
      }
      absl::MutexLock lock(&pieces->mu);
      --pieces->active;
    });
  }
  pieces->Work(body);
  absl::MutexLock lock(&pieces->mu);
  pieces->closed = true;
  // Helpers that joined finish the piece they hold; the body (on this
  // frame) stays valid until they have.
  pieces->mu.Await(absl::Condition(pieces.get(), &Pieces::Idle));
}

}  // namespace coremlz::engine
