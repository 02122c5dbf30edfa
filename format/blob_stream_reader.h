// Extracts chosen blobs from a weight file that arrives as a byte stream (an
// upload), holding only the blob being assembled in memory. Blobs are
// delivered in file order; bytes between wanted blobs are skipped.
#ifndef COREMLZ_FORMAT_BLOB_STREAM_READER_H_
#define COREMLZ_FORMAT_BLOB_STREAM_READER_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "format/blob_storage.h"

namespace coremlz::format {

class BlobStreamReader {
 public:
  using BlobCallback = std::function<absl::Status(const BlobMetadata&, absl::string_view data)>;

  // `offsets`: metadata offsets wanted (any order; duplicates collapse).
  // `file_size`: the size the stream will have, known from the upload header,
  // so every record is bounds-checked before its data is buffered.
  BlobStreamReader(std::vector<uint64_t> offsets, uint64_t file_size, std::string label,
                   BlobCallback on_blob);

  absl::Status Feed(absl::string_view chunk);
  // Fails if the stream was shorter or longer than file_size or a wanted
  // blob was never completed.
  absl::Status Finish();

  uint64_t bytes_seen() const { return pos_; }
  // The blob count in the file header (0 until the header has been read).
  // More blobs than were wanted means some are read by no op.
  uint32_t declared_blob_count() const { return declared_blob_count_; }
  // The metadata offset of the blob being read (the one an error is about);
  // UINT64_MAX while in the file header or once every wanted blob was delivered.
  uint64_t current_blob() const {
    return phase_ != Phase::kHeader && next_ < offsets_.size() ? offsets_[next_] : UINT64_MAX;
  }
  // Bytes currently buffered (the metadata record or blob being assembled).
  size_t buffered() const { return buffer_.size(); }

 private:
  enum class Phase { kHeader, kSkipToMetadata, kMetadata, kSkipToData, kData, kTail };
  absl::Status Advance();
  absl::Status StartNextBlob();

  std::vector<uint64_t> offsets_;
  size_t next_ = 0;
  uint64_t file_size_;
  std::string label_;
  BlobCallback on_blob_;

  Phase phase_ = Phase::kHeader;
  uint64_t pos_ = 0;          // stream bytes consumed
  uint64_t target_ = 0;       // where the current phase ends
  uint64_t previous_end_ = kBlobHeaderSize;
  uint32_t declared_blob_count_ = 0;
  std::string buffer_;
  BlobMetadata current_;
  absl::Status error_;
};

}  // namespace coremlz::format

#endif  // COREMLZ_FORMAT_BLOB_STREAM_READER_H_
