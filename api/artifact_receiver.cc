#include "api/artifact_receiver.h"

#include <filesystem>
#include <system_error>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/status_macros.h"

namespace coremlz::api {
namespace {

// Artifacts are what a server produced from a model the client sent, so the
// limits only guard against a broken peer, not against the model's size.
TransferLimits ArtifactLimits() {
  TransferLimits limits;
  limits.max_total_bytes = uint64_t{1} << 40;
  limits.max_files = 100000;
  return limits;
}

}  // namespace

ArtifactReceiver::ArtifactReceiver(std::string staging_dir)
    : staging_dir_(std::move(staging_dir)), files_(staging_dir_, ArtifactLimits()) {}

absl::Status ArtifactReceiver::Receive(const v1::CompressResponse& response) {
  if (!status_.ok()) return status_;
  if (response.has_artifact_file()) status_ = files_.Declare(response.artifact_file().info());
  else if (response.has_artifact_chunk()) status_ = files_.Add(response.artifact_chunk());
  return status_;
}

absl::StatusOr<std::string> ArtifactReceiver::Complete() {
  RETURN_IF_ERROR(status_);
  RETURN_IF_ERROR(files_.Finish());
  const auto& received = files_.files();
  if (received.size() == 1 && received[0].path() != "Manifest.json" &&
      received[0].path().find('/') == std::string::npos) {
    return JoinPath(staging_dir_, received[0].path());
  }
  return staging_dir_;
}

absl::Status CommitArtifact(const std::string& produced, const std::string& destination) {
  RETURN_IF_ERROR(RemoveAll(destination));
  std::error_code ec;
  std::filesystem::rename(produced, destination, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot commit the artifact: ", ec.message()));
  return absl::OkStatus();
}

}  // namespace coremlz::api
