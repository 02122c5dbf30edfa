// Compression results cached by content. coremlz's output is a pure function
// of the uploaded bytes, the config, the target and the coremlz version, so a
// CI job that re-runs on an unchanged model can be answered from disk.
//
// Plans are cached the same way (ResultCachePlanKey; the entry holds the
// plan's outputs and, with apply, the compressed model).
//
// Key: SHA-256 over the version, the normalised config (its protobuf form,
// serialised deterministically, so YAML/JSON/flags that mean the same config
// share entries), the target, report_only, and every uploaded file's path,
// size and SHA-256 (already verified by the upload).
//
// Entry (one directory, <dir>/<key>/): artifact/ (the compressed model as it
// would be streamed), entry.pb (v1.CacheEntry: the artifact's file list with
// sizes and digests, in stream order, and the report) and entry.sha256
// (entry.pb's digest). Entries are written into a temporary directory and
// renamed into place, so a reader never sees half an entry; every hit
// re-verifies entry.pb, and every artifact file once placed for the call,
// against their digests before anything is served, and a damaged entry is
// removed and counted as corrupt (the call recomputes).
//
// Each artifact is hashed once per call: a miss records the digests the call
// computed to announce its files (Store does not hash again), and a hit's
// verification yields the digests it streams with.
//
// Bounded: entries are evicted least recently used first while the total
// exceeds max_bytes. An entry larger than max_bytes is never stored.
//
// Single flight: identical calls in flight compress once - the first becomes
// the leader; the others wait (asynchronously) for it and then look up.
#ifndef COREMLZ_SERVICE_RESULT_CACHE_H_
#define COREMLZ_SERVICE_RESULT_CACHE_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "api/result_store.h"
#include "coremlz/v1/compressor.pb.h"
#include "coremlz/v1/report.pb.h"

namespace prometheus {
class Registry;
template <typename T>
class Family;
class Counter;
class Gauge;
}  // namespace prometheus

namespace coremlz::service {

struct ResultCacheOptions {
  std::string dir;               // created if missing
  uint64_t max_bytes = 1ull << 30;
};

// The cache key of a Compress call (hex SHA-256).
std::string ResultCacheKey(const v1::CompressHeader& header, const v1::CompressionConfig& normalised_config,
                           const std::string& version);
// The cache key of a Plan call (hex SHA-256): the version, the files, and
// every header field that can change the outputs, with defaults resolved
// (samples 0 and 4 are one plan); the deadline and no_cache are not part
// of it.
std::string ResultCachePlanKey(const v1::PlanHeader& header, const std::string& version);

class ResultCache final : public api::ResultStore {
 public:
  // Opens (or creates) the cache directory: removes temporary leftovers of an
  // earlier process, indexes the entries, and evicts down to max_bytes.
  static absl::StatusOr<std::unique_ptr<ResultCache>> Open(const ResultCacheOptions& options,
                                                           prometheus::Registry* metrics = nullptr);

  // On a verified hit, places the artifact under `dest` (an empty directory;
  // hard links where possible, else copies), checks what it placed against
  // the entry's digests, and returns it with its file list and the report.
  // NOT_FOUND on a miss (also after a corrupt entry was removed).
  absl::StatusOr<Hit> Lookup(const std::string& key, const std::string& dest) override;

  // Stores a finished result: the artifact (an .mlpackage directory or a
  // single .mlmodel file; empty for report-only calls and plans not
  // applied), its files as api::DescribeModelFiles listed them (each file's
  // size is checked; its digest is recorded as given), and its report or
  // plan outputs.
  absl::Status Store(const std::string& key, const std::string& artifact_path, const std::vector<v1::FileInfo>& files,
                     const v1::Report& report, const v1::PlanOutputs& plan) override;
  using api::ResultStore::Store;

  // Single flight. Returns true if the caller should compute (it leads, and
  // must call Release(key) when done, stored or not); false if an identical
  // call is already computing: `on_done` runs (on the releasing thread, with
  // no cache lock held) once it has released, and the caller then looks up.
  bool Lead(const std::string& key, std::function<void()> on_done) override;
  void Release(const std::string& key) override;
  bool Holds(const std::string& key) const override;

  // Identifies the build whose results are cached: the version plus a digest
  // of this executable, so a rebuilt server never serves an older build's
  // output as its own.
  const std::string& build_id() const { return build_id_; }
  // ResultCacheKey with this cache's build_id().
  std::string KeyFor(const v1::CompressHeader& header, const v1::CompressionConfig& normalised_config) const override {
    return ResultCacheKey(header, normalised_config, build_id_);
  }
  std::string KeyFor(const v1::PlanHeader& header) const override { return ResultCachePlanKey(header, build_id_); }

  uint64_t bytes() const;
  size_t entries() const;
  void CountBypass() override;

 private:
  explicit ResultCache(ResultCacheOptions options) : options_(std::move(options)) {}
  void RegisterMetrics(prometheus::Registry* registry);
  void Count(const char* outcome);
  void EvictLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RemoveLocked(const std::string& key) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void UpdateGaugesLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  struct Entry {
    uint64_t bytes = 0;
    uint64_t last_used = 0;  // a logical clock; larger is more recent
  };
  ResultCacheOptions options_;
  std::string build_id_;
  mutable absl::Mutex mu_;
  std::map<std::string, Entry> entries_ ABSL_GUARDED_BY(mu_);
  uint64_t total_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t clock_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<std::string, std::vector<std::function<void()>>> in_flight_ ABSL_GUARDED_BY(mu_);

  prometheus::Family<prometheus::Counter>* requests_ = nullptr;
  prometheus::Counter* evictions_ = nullptr;
  prometheus::Gauge* bytes_gauge_ = nullptr;
  prometheus::Gauge* entries_gauge_ = nullptr;
};

}  // namespace coremlz::service

#endif  // COREMLZ_SERVICE_RESULT_CACHE_H_
