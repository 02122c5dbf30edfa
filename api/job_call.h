// What the reactors of job calls (Compress, Inspect, the worker's Run)
// share: the call's deadline, a private job directory, the disk-room check,
// and messages that name files as the caller uploaded them.
#ifndef COREMLZ_API_JOB_CALL_H_
#define COREMLZ_API_JOB_CALL_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "api/job_dirs.h"
#include "grpcpp/grpcpp.h"

namespace coremlz::api {

// Messages name files as the caller uploaded them ("Data/com.apple.CoreML/
// weights/weight.bin"), not by the server's private job directory.
grpc::Status ForCaller(const grpc::Status& s, const std::string& job_dir);

// The call's deadline (InfiniteFuture when it has none).
absl::Time DeadlineOf(const grpc::CallbackServerContext* ctx);

// A private job directory with "in" and "out" inside, removed when the last
// owner lets go of it. It is locked while it lives, so a server started
// after this process was killed removes it (job_dirs.h).
struct JobDir {
  explicit JobDir(std::unique_ptr<LockedJobDir> d) : dir(std::move(d)), path(dir->path()) {}
  std::unique_ptr<LockedJobDir> dir;
  std::string path;
};

absl::StatusOr<std::shared_ptr<JobDir>> MakeJobDir(const std::string& work_dir);

// Room on the job directory's file system for an upload of `declared` bytes
// and `output` more for what the job writes. Concurrent uploads are not
// reserved against each other; this keeps one hostile header from filling
// the disk, and a full disk stays a precise error rather than a failed write.
absl::Status CheckDiskRoom(const std::string& job_dir, uint64_t declared, uint64_t output);

}  // namespace coremlz::api

#endif  // COREMLZ_API_JOB_CALL_H_
