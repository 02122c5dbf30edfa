#include "format/blob_stream_reader.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace coremlz::format {

BlobStreamReader::BlobStreamReader(std::vector<uint64_t> offsets, uint64_t file_size,
                                   std::string label, BlobCallback on_blob)
    : offsets_(std::move(offsets)),
      file_size_(file_size),
      label_(std::move(label)),
      on_blob_(std::move(on_blob)) {
  std::sort(offsets_.begin(), offsets_.end());
  offsets_.erase(std::unique(offsets_.begin(), offsets_.end()), offsets_.end());
  target_ = kBlobHeaderSize;
}

absl::Status BlobStreamReader::StartNextBlob() {
  if (next_ == offsets_.size()) {
    phase_ = Phase::kTail;
    target_ = file_size_;
    return absl::OkStatus();
  }
  const uint64_t offset = offsets_[next_];
  if (offset < previous_end_) {
    return absl::InvalidArgumentError(absl::StrCat(
        label_, " at offset ", offset, ": blob overlaps the previous blob or the header (which end at ",
        previous_end_, ")"));
  }
  if (offset > file_size_ || file_size_ - offset < kBlobMetadataSize) {
    return absl::InvalidArgumentError(absl::StrCat(label_, " at offset ", offset,
                                            ": blob metadata record runs past the end of the ",
                                            file_size_, "-byte file"));
  }
  phase_ = Phase::kSkipToMetadata;
  target_ = offset;
  return absl::OkStatus();
}

absl::Status BlobStreamReader::Advance() {
  // Called whenever pos_ reached target_: move to the next phase.
  switch (phase_) {
    case Phase::kHeader: {
      ASSIGN_OR_RETURN(BlobStorageHeader header, DecodeBlobStorageHeader(buffer_, label_));
      declared_blob_count_ = header.count;
      buffer_.clear();
      return StartNextBlob();
    }
    case Phase::kSkipToMetadata:
      phase_ = Phase::kMetadata;
      target_ = pos_ + kBlobMetadataSize;
      return absl::OkStatus();
    case Phase::kMetadata: {
      ASSIGN_OR_RETURN(current_, DecodeBlobMetadata(buffer_, offsets_[next_], label_));
      buffer_.clear();
      RETURN_IF_ERROR(CheckBlobBounds(current_, file_size_, label_));
      phase_ = Phase::kSkipToData;
      target_ = current_.data_offset;
      return absl::OkStatus();
    }
    case Phase::kSkipToData:
      phase_ = Phase::kData;
      target_ = pos_ + current_.size_in_bytes;
      buffer_.reserve(current_.size_in_bytes);
      return absl::OkStatus();
    case Phase::kData: {
      RETURN_IF_ERROR(on_blob_(current_, buffer_));
      previous_end_ = current_.data_offset + current_.size_in_bytes;
      std::string().swap(buffer_);  // release the blob's memory now
      ++next_;
      return StartNextBlob();
    }
    case Phase::kTail:
      return absl::OkStatus();
  }
  return absl::OkStatus();
}

absl::Status BlobStreamReader::Feed(absl::string_view chunk) {
  if (!error_.ok()) return error_;
  auto fail = [this](absl::Status s) {
    error_ = s;
    return s;
  };
  if (chunk.size() > file_size_ - pos_) {
    return fail(absl::InvalidArgumentError(absl::StrCat(
        label_, ": stream is longer than its declared ", file_size_, " bytes")));
  }
  while (true) {
    // Phases that end exactly here (including zero-length ones) advance
    // without consuming input.
    while (pos_ == target_ && phase_ != Phase::kTail) {
      absl::Status s = Advance();
      if (!s.ok()) return fail(s);
    }
    if (chunk.empty()) return absl::OkStatus();
    const uint64_t take = std::min<uint64_t>(chunk.size(), target_ - pos_);
    if (phase_ == Phase::kHeader || phase_ == Phase::kMetadata || phase_ == Phase::kData) {
      buffer_.append(chunk.data(), take);
    }
    pos_ += take;
    chunk.remove_prefix(take);
  }
}

absl::Status BlobStreamReader::Finish() {
  if (!error_.ok()) return error_;
  if (file_size_ < kBlobHeaderSize) {
    return absl::InvalidArgumentError(absl::StrCat(label_, ": ", file_size_,
                                            " bytes is shorter than the 64-byte blob storage header"));
  }
  if (pos_ != file_size_) {
    return absl::DataLossError(absl::StrCat(label_, ": stream ended after ", pos_, " of ",
                                            file_size_, " declared bytes"));
  }
  RETURN_IF_ERROR(Feed({}));
  if (next_ != offsets_.size()) {
    return absl::InvalidArgumentError(absl::StrCat(label_, ": blob at offset ", offsets_[next_],
                                            " is incomplete"));
  }
  return absl::OkStatus();
}

}  // namespace coremlz::format
