// The compressed model a Compress (or a worker's Run) stream sends back: its
// files are received into a staging directory, each checked (size, SHA-256)
// as it completes, and only a complete artifact is handed over to be
// committed - nothing half-written ever takes the output's place.
#ifndef COREMLZ_API_ARTIFACT_RECEIVER_H_
#define COREMLZ_API_ARTIFACT_RECEIVER_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "api/transfer.h"
#include "coremlz/v1/compressor.pb.h"

namespace coremlz::api {

class ArtifactReceiver {
 public:
  // `staging_dir` must exist and be empty.
  explicit ArtifactReceiver(std::string staging_dir);

  // Takes the artifact part of one response (a file announced, or a chunk)
  // and ignores the rest. Returns the first error so far: once there is
  // one, later parts are ignored and the caller should cancel the call.
  absl::Status Receive(const v1::CompressResponse& response);
  const absl::Status& status() const { return status_; }

  uint64_t bytes_declared() const { return files_.bytes_declared(); }
  uint64_t bytes_received() const { return files_.bytes_received(); }

  // After the stream ended well: checks every announced file arrived whole
  // and returns what to commit - the staging directory (a package arrives as
  // its tree) or its one file (a NeuralNetwork .mlmodel).
  absl::StatusOr<std::string> Complete();

 private:
  std::string staging_dir_;
  FileReceiver files_;
  absl::Status status_;
};

// Puts a completed artifact (`produced`, from Complete()) in the place of
// `destination`, replacing what is there: a rename, so the staging
// directory must be on the destination's file system.
absl::Status CommitArtifact(const std::string& produced, const std::string& destination);

}  // namespace coremlz::api

#endif  // COREMLZ_API_ARTIFACT_RECEIVER_H_
