// One upload of a call that streams a model in: the header's file lists
// declared into directories, then the files' chunks in order, every path,
// size, limit and digest checked (api/transfer.h). Compress and Inspect
// upload into a locked job directory with room on disk checked up front and
// the memory budget consulted as the upload arrives (StartJob); the runner's
// Validate uploads two lists, the compressed model and the original, into
// directories of its own. The order of a stream's messages (header first,
// then chunks) and its stall limits are upload_stream.h's.
#ifndef COREMLZ_API_UPLOAD_SESSION_H_
#define COREMLZ_API_UPLOAD_SESSION_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "api/job_call.h"
#include "api/transfer.h"
#include "api/upload_budget.h"
#include "coremlz/v1/compressor.pb.h"
#include "engine/worker_pool.h"

namespace coremlz::api {

struct JobUploadOptions {
  std::string work_dir;  // where job directories go (default $TMPDIR)
  engine::WorkerPool* pool = nullptr;  // whose memory budget the upload must fit
  // Whether the job writes about as much again (Compress's output): the
  // disk must hold both before any byte is accepted.
  bool reserves_output = false;
};

class UploadSession {
 public:
  explicit UploadSession(TransferLimits limits) : limits_(limits) {}

  // A job call's upload: a new job directory with in/ and out/, the files
  // declared into in/, room on disk, and the memory budget at the header.
  // On an error the job directory, if made, stays with the session (its
  // path is what ForCaller takes out of messages).
  absl::Status StartJob(const JobUploadOptions& options, const google::protobuf::RepeatedPtrField<v1::FileInfo>& files);

  // Declares a list of files, received into `dir` (existing and empty).
  // Chunks number the files of all lists in the order they were declared.
  absl::Status Declare(const std::string& dir, const google::protobuf::RepeatedPtrField<v1::FileInfo>& files);

  // One chunk, to the list its file index falls in.
  absl::Status Add(const v1::FileChunk& chunk);
  // The memory budget after a chunk (job uploads; OK otherwise).
  absl::Status CheckMemory();

  bool complete() const { return bytes_received() == bytes_declared(); }
  // Every declared file arrived whole, with its digest.
  absl::Status Finish();
  // The status of a stream that ended before the upload was complete: the
  // incomplete file named, or DATA_LOSS.
  absl::Status EndedEarly();

  uint64_t bytes_received() const;
  uint64_t bytes_declared() const;
  size_t lists() const { return lists_.size(); }
  const FileReceiver& list(size_t i) const { return *lists_[i]; }

  // Job uploads: the job directory (shared with the work that reads
  // it), the uploaded model, whether it is a package, the job's memory
  // estimate once the upload is complete.
  const std::shared_ptr<JobDir>& job_dir() const { return job_dir_; }
  std::string job_dir_path() const { return job_dir_ ? job_dir_->path : std::string(); }
  const std::string& model_path() const { return model_path_; }
  bool is_package() const { return !lists_.empty() && model_path_ == lists_.front()->dir(); }
  absl::StatusOr<uint64_t> MemoryEstimate() { return budget_->Estimate(); }
  // The same while the upload still arrives: known once a package's spec is
  // in (unset before).
  std::optional<uint64_t> EarlyMemoryEstimate() const {
    return budget_ ? budget_->early_estimate() : std::nullopt;
  }

 private:
  TransferLimits limits_;
  // Declared before the receivers, so that they close their files before
  // the directory goes.
  std::shared_ptr<JobDir> job_dir_;
  std::vector<std::unique_ptr<FileReceiver>> lists_;
  std::string model_path_;
  std::unique_ptr<UploadBudget> budget_;  // reads lists_.front()
};

}  // namespace coremlz::api

#endif  // COREMLZ_API_UPLOAD_SESSION_H_
