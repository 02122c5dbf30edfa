// A call's place in the result cache (api/result_store.h): its key, and
// whether it leads the computation of that key while identical calls wait.
// Compress and Plan hold one under their call's mutex (api/upload_call.h);
// the class itself is not thread-safe. A leader gives its lead back exactly
// once: after storing its result, or when the call ends without one, so a
// call that fails never keeps identical ones waiting.
#ifndef COREMLZ_API_CACHE_SLOT_H_
#define COREMLZ_API_CACHE_SLOT_H_

#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "api/result_store.h"
#include "api/task_runner.h"

namespace coremlz::api {

class CacheSlot {
 public:
  // This call's result may be cached under `key`; `bypass`: it computes
  // even when an entry exists (its result still refreshes the entry).
  void Use(ResultStore* store, std::string key, bool bypass) {
    store_ = store;
    key_ = std::move(key);
    bypass_ = bypass;
    if (bypass_) store_->CountBypass();
  }
  bool enabled() const { return store_ != nullptr; }

  enum class Turn {
    kHit,      // a verified hit was placed under `dest`: answer with it
    kCompute,  // compute (this call leads, or nothing is cached)
    kWait,     // an identical call computes: `retry` runs once it is done
  };
  // The upload is complete: what this call does now. After kWait, the call
  // asks again when `retry` runs (from the releasing thread, no lock held).
  Turn Begin(const std::string& dest, std::function<void()> retry, ResultStore::Hit* hit) {
    if (store_ == nullptr || leading_) return Turn::kCompute;
    if (!bypass_) {
      absl::StatusOr<ResultStore::Hit> found = store_->Lookup(key_, dest);
      if (found.ok()) {
        *hit = *std::move(found);
        return Turn::kHit;
      }
    }
    if (!store_->Lead(key_, std::move(retry))) return Turn::kWait;
    leading_ = true;
    return Turn::kCompute;
  }

  // A job could start while the upload still arrives (before Begin can
  // look anything up): true when it may - nothing is stored under the key
  // (or this call bypasses the cache) and this call now leads the key, so
  // an identical call arriving meanwhile waits for it instead of computing
  // too. False when a stored entry or an identical call in flight will
  // probably answer this one: it then waits for its upload and Begin
  // decides, so no CPU is spent on a result the cache already holds.
  bool MayStartEarly() {
    if (store_ == nullptr || leading_) return true;
    if (!bypass_ && store_->Holds(key_)) return false;
    // Refused: Begin registers the real retry once the upload is complete.
    if (!store_->Lead(key_, [] {})) return false;
    leading_ = true;
    return true;
  }

  // The leader's result: stored on `tasks` (storing links or copies the
  // artifact, `files` as the call described them), which then gives the
  // lead back. `keep` (the job directory) lives until
  // the copy is done.
  void StoreResult(TaskRunner* tasks, std::shared_ptr<void> keep, std::string artifact_path,
                   std::vector<v1::FileInfo> files, v1::Report report, v1::PlanOutputs plan) {
    if (!leading_) return;
    leading_ = false;
    tasks->Post([store = store_, key = key_, keep = std::move(keep), artifact = std::move(artifact_path),
                 files = std::move(files), report = std::move(report), plan = std::move(plan)] {
      absl::Status s = store->Store(key, artifact, files, report, plan);
      if (!s.ok()) std::fprintf(stderr, "coremlzd: result not cached: %s\n", std::string(s.message()).c_str());
      store->Release(key);
    });
  }

  // The call ends without a result to store.
  void Release() {
    if (!leading_) return;
    leading_ = false;
    store_->Release(key_);
  }

 private:
  ResultStore* store_ = nullptr;  // null: this call is not cached
  std::string key_;
  bool bypass_ = false;
  bool leading_ = false;
};

}  // namespace coremlz::api

#endif  // COREMLZ_API_CACHE_SLOT_H_
