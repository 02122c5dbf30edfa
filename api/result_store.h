// What the Compress and Plan reactors ask of a result cache: results keyed
// by content, verified on the way out, computed once by a leader while
// identical calls wait. The front's cache (service/result_cache.h) is one;
// a server without one passes none.
#ifndef COREMLZ_API_RESULT_STORE_H_
#define COREMLZ_API_RESULT_STORE_H_

#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "coremlz/v1/compressor.pb.h"
#include "coremlz/v1/config.pb.h"
#include "coremlz/v1/report.pb.h"

namespace coremlz::api {

class ResultStore {
 public:
  virtual ~ResultStore() = default;

  // The key of a Compress call with this header and normalised config.
  virtual std::string KeyFor(const v1::CompressHeader& header, const v1::CompressionConfig& normalised_config) const = 0;
  // The key of a Plan call with this header.
  virtual std::string KeyFor(const v1::PlanHeader& header) const = 0;

  struct Hit {
    std::string artifact_path;  // the model inside `dest` ("" when none was stored)
    // Its files as DescribeModelFiles lists them (paths relative to `root`,
    // sizes, SHA-256, in stream order), each digest checked against the
    // bytes placed in `dest`: stream them as they are, without hashing again.
    std::string root;
    std::vector<v1::FileInfo> files;
    v1::Report report;     // Compress's
    v1::PlanOutputs plan;  // Plan's
  };
  // On a verified hit, places the artifact under `dest` (an empty directory)
  // and returns it with the report; NOT_FOUND on a miss.
  virtual absl::StatusOr<Hit> Lookup(const std::string& key, const std::string& dest) = 0;
  // Stores a finished result: the artifact ("" for report-only calls and
  // plans not applied) with `files` as DescribeModelFiles listed them - the
  // digests the call announces to its client, recorded rather than computed
  // again (every hit verifies the stored bytes against them) - and the
  // report (Compress) or outputs (Plan).
  virtual absl::Status Store(const std::string& key, const std::string& artifact_path,
                             const std::vector<v1::FileInfo>& files, const v1::Report& report,
                             const v1::PlanOutputs& plan) = 0;
  absl::Status Store(const std::string& key, const std::string& artifact_path, const std::vector<v1::FileInfo>& files,
                     const v1::Report& report) {
    return Store(key, artifact_path, files, report, v1::PlanOutputs());
  }
  // Single flight. True: the caller computes and must Release(key) when
  // done; false: an identical call is computing, and `on_done` runs (with
  // no lock held) once it has released.
  virtual bool Lead(const std::string& key, std::function<void()> on_done) = 0;
  virtual void Release(const std::string& key) = 0;
  // Whether an entry is indexed under `key`: a lookup will probably hit
  // (it is not verified here). Cheap: for deciding whether work is worth
  // starting before the lookup can be made.
  virtual bool Holds(const std::string& key) const = 0;
  // Counts a call that computes although it may be cached (no_cache).
  virtual void CountBypass() = 0;
};

}  // namespace coremlz::api

#endif  // COREMLZ_API_RESULT_STORE_H_
