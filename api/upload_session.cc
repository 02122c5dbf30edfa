#include "api/upload_session.h"

#include "common/file_util.h"
#include "common/status_macros.h"

namespace coremlz::api {

absl::Status UploadSession::StartJob(const JobUploadOptions& options,
                                    const google::protobuf::RepeatedPtrField<v1::FileInfo>& files) {
  ASSIGN_OR_RETURN(job_dir_, MakeJobDir(options.work_dir));
  RETURN_IF_ERROR(Declare(JoinPath(job_dir_->path, "in"), files));
  ASSIGN_OR_RETURN(model_path_, lists_.front()->ModelPath());
  const uint64_t declared = bytes_declared();
  RETURN_IF_ERROR(CheckDiskRoom(job_dir_->path, declared, options.reserves_output ? declared : 0));
  budget_ = std::make_unique<UploadBudget>(options.pool, limits_.max_manifest_bytes, lists_.front().get(), model_path_,
                                           is_package());
  return budget_->AtHeader();
}

absl::Status UploadSession::Declare(const std::string& dir,
                                    const google::protobuf::RepeatedPtrField<v1::FileInfo>& files) {
  lists_.push_back(std::make_unique<FileReceiver>(dir, limits_));
  return lists_.back()->DeclareAll(files);
}

absl::Status UploadSession::Add(const v1::FileChunk& chunk) {
  // The last list takes every index beyond the others (and names one beyond
  // its own files).
  uint32_t index = chunk.file_index();
  for (size_t i = 0; i + 1 < lists_.size(); ++i) {
    const uint32_t n = static_cast<uint32_t>(lists_[i]->files().size());
    if (index < n) return lists_[i]->Add(chunk);
    index -= n;
  }
  if (index == chunk.file_index()) return lists_.back()->Add(chunk);
  v1::FileChunk renumbered = chunk;
  renumbered.set_file_index(index);
  return lists_.back()->Add(renumbered);
}

absl::Status UploadSession::CheckMemory() { return budget_ ? budget_->AfterChunk() : absl::OkStatus(); }

absl::Status UploadSession::Finish() {
  for (const auto& list : lists_) RETURN_IF_ERROR(list->Finish());
  return absl::OkStatus();
}

absl::Status UploadSession::EndedEarly() {
  absl::Status s = Finish();
  return s.ok() ? absl::DataLossError("the stream ended before the upload completed") : s;
}

uint64_t UploadSession::bytes_received() const {
  uint64_t total = 0;
  for (const auto& list : lists_) total += list->bytes_received();
  return total;
}

uint64_t UploadSession::bytes_declared() const {
  uint64_t total = 0;
  for (const auto& list : lists_) total += list->bytes_declared();
  return total;
}

}  // namespace coremlz::api
