// How far a Compress call's upload has arrived, for a job that started
// before it was complete (engine/arriving_input.h). The call updates it
// after every chunk, under the call's mutex; the job's worker thread waits
// on it for the bytes it reads next. Waiting is bounded by the call: a
// client that stalls trips --idle-timeout-seconds, a failed or cancelled
// call fails the wait with its error, and the job's control (deadline,
// cancellation) is polled while it waits.
#ifndef COREMLZ_API_UPLOAD_ARRIVAL_H_
#define COREMLZ_API_UPLOAD_ARRIVAL_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "api/transfer.h"
#include "engine/arriving_input.h"

namespace coremlz::api {

class UploadArrival final : public engine::ArrivingInput {
 public:
  // The upload's files, as the receiver declared them.
  explicit UploadArrival(const FileReceiver& receiver);

  // The receiver after a chunk: what may be read now.
  void Update(const FileReceiver& receiver);
  // Every file arrived and was checked.
  void Complete();
  // The upload (or the call) failed: every wait ends with `status`.
  void Fail(absl::Status status);

  absl::StatusOr<uint64_t> WaitForBytes(const std::string& relative, uint64_t bytes,
                                        engine::JobControl* control) override;
  absl::StatusOr<uint64_t> DeclaredSize(const std::string& relative) const override;
  absl::Status WaitComplete(engine::JobControl* control) override;

  // Time a worker spent blocked here (the metric of a worker held idle).
  absl::Duration waited() const;

 private:
  // Waits until `ready` holds (with mu_ held), the upload failed or the
  // control stopped.
  template <typename Ready>
  absl::Status Wait(Ready ready, engine::JobControl* control);

  struct File {  // declared path and size
    std::string path;
    uint64_t size;
  };
  const std::vector<File> files_;
  mutable absl::Mutex mu_;
  absl::CondVar cv_;
  size_t complete_ ABSL_GUARDED_BY(mu_) = 0;          // files received whole
  uint64_t current_bytes_ ABSL_GUARDED_BY(mu_) = 0;   // of files_[complete_]
  bool all_ ABSL_GUARDED_BY(mu_) = false;             // the upload is complete and checked
  absl::Status failed_ ABSL_GUARDED_BY(mu_);
  absl::Duration waited_ ABSL_GUARDED_BY(mu_);
};

}  // namespace coremlz::api

#endif  // COREMLZ_API_UPLOAD_ARRIVAL_H_
