// The memory budget checked while an upload arrives, before the weights do:
// a lone .mlmodel at the header (its size is all the estimate uses), a
// package as soon as its model spec is in (its weight files' sizes come
// from the header). Shared by Compress and Inspect.
#ifndef COREMLZ_API_UPLOAD_BUDGET_H_
#define COREMLZ_API_UPLOAD_BUDGET_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "api/transfer.h"
#include "engine/worker_pool.h"
#include "format/package.h"

namespace coremlz::api {

class UploadBudget {
 public:
  // `model_path` is the upload's model (the receiver's directory for a
  // package); `pool` answers whether the estimate fits its budget.
  UploadBudget(engine::WorkerPool* pool, uint64_t max_manifest_bytes, const FileReceiver* receiver,
               std::string model_path, bool package)
      : pool_(pool),
        max_manifest_bytes_(max_manifest_bytes),
        receiver_(receiver),
        model_path_(std::move(model_path)),
        package_(package) {}

  absl::Status AtHeader();
  // After each chunk; cheap until the manifest and the spec are complete.
  absl::Status AfterChunk();
  // The job's estimate once the upload is complete.
  absl::StatusOr<uint64_t> Estimate();
  // The estimate made while the upload arrives, once the spec is in (unset
  // before, and for a spec that could not be read).
  std::optional<uint64_t> early_estimate() const { return estimate_; }

 private:
  engine::WorkerPool* pool_;
  uint64_t max_manifest_bytes_;
  const FileReceiver* receiver_;
  std::string model_path_;
  bool package_;
  std::optional<format::PackageLayout> layout_;
  std::optional<uint64_t> estimate_;
  bool gave_up_ = false;
};

}  // namespace coremlz::api

#endif  // COREMLZ_API_UPLOAD_BUDGET_H_
