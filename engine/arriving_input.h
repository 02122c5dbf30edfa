// A job's input that is still arriving: coremlzd may start a compression
// while the upload streams in (docs/performance.md, "Compression while the
// upload arrives"). The engine asks for a byte range of a file before it
// reads it, and for the whole input - every file's size and digest checked -
// before it writes anything, so a job never produces a model from bytes that
// later turn out corrupt or cut short.
#ifndef COREMLZ_ENGINE_ARRIVING_INPUT_H_
#define COREMLZ_ENGINE_ARRIVING_INPUT_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/job_control.h"

namespace coremlz::engine {

class ArrivingInput {
 public:
  virtual ~ArrivingInput() = default;
  // Blocks until at least the first `bytes` bytes of `relative` (a
  // package-relative path) can be read from disk, and returns how many can
  // (bytes == 0: the file exists). The upload's error when it failed, the
  // control's StopStatus when the job was stopped.
  virtual absl::StatusOr<uint64_t> WaitForBytes(const std::string& relative, uint64_t bytes, JobControl* control) = 0;
  // The size `relative` will have (the upload's declaration); NOT_FOUND when
  // the upload does not hold it.
  virtual absl::StatusOr<uint64_t> DeclaredSize(const std::string& relative) const = 0;
  // Blocks until the whole upload arrived and was checked; errors as above.
  virtual absl::Status WaitComplete(JobControl* control) = 0;
};

}  // namespace coremlz::engine

#endif  // COREMLZ_ENGINE_ARRIVING_INPUT_H_
