// MIL blob storage: the weights/weight.bin file of an .mlpackage.
//
// Layout (all integers little-endian):
//   [0, 64)   header: uint32 count, uint32 version (= 2), 56 reserved bytes
//   then per blob, each record starting on a 64-byte boundary:
//     64-byte metadata: uint32 sentinel 0xDEADBEEF, uint32 dtype code,
//       uint64 size_in_bytes, uint64 data_offset, uint64 padding_bits
//       (unused trailing bits of sub-byte data), 4 reserved uint64
//     the data itself at data_offset (right after the metadata when written
//     by Core ML tools), zero padding up to the next 64-byte boundary.
//   The file ends right after the last blob's data.
// A program refers to a blob by the offset of its metadata record.
#ifndef COREMLZ_FORMAT_BLOB_STORAGE_H_
#define COREMLZ_FORMAT_BLOB_STORAGE_H_

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/byte_sink.h"
#include "format/element_type.h"

namespace coremlz::format {

inline constexpr uint64_t kBlobAlignment = 64;
inline constexpr uint64_t kBlobHeaderSize = 64;
inline constexpr uint64_t kBlobMetadataSize = 64;
inline constexpr uint32_t kBlobSentinel = 0xDEADBEEF;
inline constexpr uint32_t kBlobStorageVersion = 2;

inline uint64_t AlignUp(uint64_t offset) {
  return (offset + kBlobAlignment - 1) / kBlobAlignment * kBlobAlignment;
}

struct BlobStorageHeader {
  uint32_t count = 0;
  uint32_t version = kBlobStorageVersion;
  std::array<uint64_t, 7> reserved{};
};

struct BlobMetadata {
  uint64_t offset = 0;  // of this metadata record in the file
  ElementType type = ElementType::kFloat16;
  uint64_t size_in_bytes = 0;
  uint64_t data_offset = 0;
  uint64_t padding_bits = 0;
  std::array<uint64_t, 4> reserved{};

  // Elements stored: size in bits minus the padding, over the element width.
  uint64_t element_count() const;
};

// Decoding of single records. `label` names the file in error messages.
absl::StatusOr<BlobStorageHeader> DecodeBlobStorageHeader(absl::string_view bytes,
                                                          absl::string_view label);
// Checks sentinel, dtype code and the sub-byte padding rules; bounds against
// the file are the caller's job (it knows the file size).
absl::StatusOr<BlobMetadata> DecodeBlobMetadata(absl::string_view record, uint64_t offset,
                                                absl::string_view label);
std::string EncodeBlobStorageHeader(const BlobStorageHeader& header);
std::string EncodeBlobMetadata(const BlobMetadata& metadata);

// Checks that a decoded record's data lies inside a file of `file_size` bytes
// and after its own metadata.
absl::Status CheckBlobBounds(const BlobMetadata& metadata, uint64_t file_size,
                             absl::string_view label);

// Random access to a complete weight file held in memory (or mapped).
class BlobStorageReader {
 public:
  // `bytes` must outlive the reader. Validates the header.
  static absl::StatusOr<BlobStorageReader> Open(absl::string_view bytes, std::string label);

  const BlobStorageHeader& header() const { return header_; }
  uint64_t file_size() const { return bytes_.size(); }
  const std::string& label() const { return label_; }

  // The validated metadata record at `offset`.
  absl::StatusOr<BlobMetadata> Metadata(uint64_t offset) const;
  absl::string_view Data(const BlobMetadata& metadata) const {
    return bytes_.substr(metadata.data_offset, metadata.size_in_bytes);
  }

  // Walks header().count records from offset 64, each following the previous
  // blob's data at the next 64-byte boundary (the layout every writer uses).
  absl::StatusOr<std::vector<BlobMetadata>> ListBlobs() const;

 private:
  BlobStorageReader(absl::string_view bytes, std::string label, BlobStorageHeader header)
      : bytes_(bytes), label_(std::move(label)), header_(header) {}
  absl::string_view bytes_;
  std::string label_;
  BlobStorageHeader header_;
};

// Appends blobs to a sink in Core ML's layout. The header carries the blob
// count: either fixed up front (any sink), or - with kCountAtFinish - patched
// into the header by Finish() (sinks that support Patch()). Headers are
// written canonically: every reserved field zero, whatever the input had.
class BlobStorageWriter {
 public:
  static constexpr uint32_t kCountAtFinish = 0xffffffffu;
  BlobStorageWriter(ByteSink* sink, uint32_t blob_count) : sink_(sink), expected_(blob_count) {}

  // Writes one blob; returns the offset of its metadata record (the value a
  // BlobFileValue stores). `element_count` sets padding_bits for sub-byte
  // types.
  absl::StatusOr<uint64_t> Append(ElementType type, absl::string_view data, uint64_t element_count);

  // Like Append, but a blob whose dtype, element count, `tag` and bytes equal
  // an earlier AppendShared blob's is not written again: its offset is
  // returned (the caller's tag says what else must match, e.g. the shape).
  // Candidates are found by hash and confirmed by comparing the bytes read
  // back from the sink, so nothing is shared by a hash collision; a sink that
  // cannot read back gets every blob written.
  absl::StatusOr<uint64_t> AppendShared(ElementType type, absl::string_view data, uint64_t element_count,
                                        absl::string_view tag);

  // Fails unless exactly blob_count blobs were written.
  absl::Status Finish();

  uint32_t written() const { return written_; }
  // AppendShared calls answered with an earlier blob, and the data bytes
  // they did not write.
  uint64_t shared() const { return shared_; }
  uint64_t shared_bytes() const { return shared_bytes_; }

 private:
  struct Written {
    uint64_t offset;
    ElementType type;
    uint64_t element_count;
    uint64_t size;
    std::string tag;
  };
  absl::Status Start();
  ByteSink* sink_;
  uint32_t expected_;
  uint32_t written_ = 0;
  bool started_ = false;
  uint64_t shared_ = 0, shared_bytes_ = 0;
  // Hash of (dtype, tag, bytes) -> blobs written by AppendShared.
  std::unordered_map<uint64_t, std::vector<Written>> by_hash_;
};

}  // namespace coremlz::format

#endif  // COREMLZ_FORMAT_BLOB_STORAGE_H_
