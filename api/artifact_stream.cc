#include "api/artifact_stream.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "api/transfer.h"
#include "common/file_util.h"

namespace coremlz::api {

void ArtifactStream::Start(std::vector<v1::FileInfo> files, std::string root) {
  files_ = std::move(files);
  root_ = std::move(root);
  active_ = !files_.empty();
}

void ArtifactStream::Close() {
  if (file_ != nullptr) std::fclose(file_);
  file_ = nullptr;
  active_ = false;
}

absl::Status ArtifactStream::Next(v1::CompressResponse* r) {
  if (index_ >= files_.size()) {
    Close();
    return absl::OkStatus();
  }
  const v1::FileInfo& info = files_[index_];
  if (file_ == nullptr && !header_sent_) {
    r->mutable_artifact_file()->set_file_index(static_cast<uint32_t>(index_));
    *r->mutable_artifact_file()->mutable_info() = info;
    header_sent_ = true;
    offset_ = 0;
    const std::string path = JoinPath(root_, info.path());
    file_ = std::fopen(path.c_str(), "rbe");
    if (file_ == nullptr) return absl::InternalError(absl::StrCat("cannot read the artifact file ", info.path()));
    return absl::OkStatus();
  }
  if (offset_ >= info.size()) {
    std::fclose(file_);
    file_ = nullptr;
    header_sent_ = false;
    ++index_;
    return Next(r);
  }
  const size_t want = static_cast<size_t>(std::min<uint64_t>(kMaxChunkBytes, info.size() - offset_));
  std::string data(want, '\0');
  if (std::fread(data.data(), 1, want, file_) != want) {
    return absl::InternalError(absl::StrCat("the artifact file ", info.path(), " is shorter than listed"));
  }
  auto* chunk = r->mutable_artifact_chunk();
  chunk->set_file_index(static_cast<uint32_t>(index_));
  chunk->set_offset(offset_);
  chunk->set_data(std::move(data));
  offset_ += want;
  return absl::OkStatus();
}

}  // namespace coremlz::api
