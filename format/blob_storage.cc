#include "format/blob_storage.h"

#include "absl/hash/hash.h"
#include "absl/strings/str_cat.h"
#include "common/byte_order.h"
#include "common/status_macros.h"

namespace coremlz::format {
namespace {

// A damaged weight file is the caller's bad input (INVALID_ARGUMENT, never
// retried); DATA_LOSS is kept for bytes lost in transfer.
absl::Status Corrupt(absl::string_view label, uint64_t offset, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(label, " at offset ", offset, ": ", what));
}

}  // namespace

uint64_t BlobMetadata::element_count() const {
  const uint64_t bits = static_cast<uint64_t>(BitWidth(type));
  if (bits == 0) return 0;
  if (!IsSubByte(type)) return size_in_bytes / (bits / 8);
  return (size_in_bytes * 8 - padding_bits) / bits;
}

absl::StatusOr<BlobStorageHeader> DecodeBlobStorageHeader(absl::string_view bytes,
                                                          absl::string_view label) {
  if (bytes.size() < kBlobHeaderSize) {
    return Corrupt(label, 0, absl::StrCat("file is ", bytes.size(),
                                          " bytes, shorter than the 64-byte blob storage header"));
  }
  BlobStorageHeader header;
  header.count = DecodeFixed32(bytes.data());
  header.version = DecodeFixed32(bytes.data() + 4);
  for (int i = 0; i < 7; ++i) header.reserved[i] = DecodeFixed64(bytes.data() + 8 + 8 * i);
  if (header.version != kBlobStorageVersion) {
    return Corrupt(label, 4, absl::StrCat("unsupported blob storage version ", header.version,
                                          " (expected 2)"));
  }
  return header;
}

absl::StatusOr<BlobMetadata> DecodeBlobMetadata(absl::string_view record, uint64_t offset,
                                                absl::string_view label) {
  if (record.size() < kBlobMetadataSize) {
    return Corrupt(label, offset, "truncated blob metadata record");
  }
  const char* p = record.data();
  const uint32_t sentinel = DecodeFixed32(p);
  if (sentinel != kBlobSentinel) {
    return Corrupt(label, offset,
                   absl::StrCat("bad blob metadata sentinel 0x", absl::Hex(sentinel),
                                " (expected 0xdeadbeef); the offset does not point at a blob"));
  }
  const uint32_t code = DecodeFixed32(p + 4);
  std::optional<ElementType> type = FromBlobDType(code);
  if (!type.has_value()) return Corrupt(label, offset, absl::StrCat("unknown blob dtype code ", code));
  BlobMetadata m;
  m.offset = offset;
  m.type = *type;
  m.size_in_bytes = DecodeFixed64(p + 8);
  m.data_offset = DecodeFixed64(p + 16);
  m.padding_bits = DecodeFixed64(p + 24);
  for (int i = 0; i < 4; ++i) m.reserved[i] = DecodeFixed64(p + 32 + 8 * i);

  const int bits = BitWidth(m.type);
  if (m.size_in_bytes > (uint64_t{1} << 60)) {
    return Corrupt(label, offset, absl::StrCat("absurd blob size ", m.size_in_bytes));
  }
  if (IsSubByte(m.type)) {
    if (m.padding_bits >= 8) {
      return Corrupt(label, offset, absl::StrCat(m.padding_bits, " padding bits; must be under 8"));
    }
    if (m.size_in_bytes == 0 && m.padding_bits != 0) {
      return Corrupt(label, offset, "padding bits on an empty blob");
    }
    if ((m.size_in_bytes * 8 - m.padding_bits) % bits != 0) {
      return Corrupt(label, offset,
                     absl::StrCat(m.size_in_bytes, " bytes minus ", m.padding_bits,
                                  " padding bits is not a whole number of ",
                                  ElementTypeName(m.type), " elements"));
    }
  } else if (m.size_in_bytes % (bits / 8) != 0) {
    return Corrupt(label, offset, absl::StrCat("size ", m.size_in_bytes, " is not a multiple of the ",
                                               bits / 8, "-byte ", ElementTypeName(m.type),
                                               " element"));
  }
  return m;
}

std::string EncodeBlobStorageHeader(const BlobStorageHeader& header) {
  std::string out;
  out.reserve(kBlobHeaderSize);
  PutFixed32(&out, header.count);
  PutFixed32(&out, header.version);
  for (uint64_t r : header.reserved) PutFixed64(&out, r);
  return out;
}

std::string EncodeBlobMetadata(const BlobMetadata& m) {
  std::string out;
  out.reserve(kBlobMetadataSize);
  PutFixed32(&out, kBlobSentinel);
  PutFixed32(&out, static_cast<uint32_t>(*ToBlobDType(m.type)));
  PutFixed64(&out, m.size_in_bytes);
  PutFixed64(&out, m.data_offset);
  PutFixed64(&out, m.padding_bits);
  for (uint64_t r : m.reserved) PutFixed64(&out, r);
  return out;
}

absl::Status CheckBlobBounds(const BlobMetadata& m, uint64_t file_size, absl::string_view label) {
  if (m.data_offset < m.offset + kBlobMetadataSize) {
    return Corrupt(label, m.offset,
                   absl::StrCat("data offset ", m.data_offset, " overlaps its own metadata record"));
  }
  if (m.data_offset > file_size || m.size_in_bytes > file_size - m.data_offset) {
    return Corrupt(label, m.offset,
                   absl::StrCat("blob data [", m.data_offset, ", +", m.size_in_bytes,
                                ") runs past the end of the ", file_size, "-byte file"));
  }
  return absl::OkStatus();
}

absl::StatusOr<BlobStorageReader> BlobStorageReader::Open(absl::string_view bytes,
                                                          std::string label) {
  ASSIGN_OR_RETURN(BlobStorageHeader header, DecodeBlobStorageHeader(bytes, label));
  // Every blob needs at least a metadata record: bounds the count before any
  // caller sizes a container from it.
  if (header.count > (bytes.size() - kBlobHeaderSize) / kBlobMetadataSize) {
    return Corrupt(label, 0, absl::StrCat("header claims ", header.count, " blobs; a ",
                                          bytes.size(), "-byte file cannot hold that many"));
  }
  return BlobStorageReader(bytes, std::move(label), header);
}

absl::StatusOr<BlobMetadata> BlobStorageReader::Metadata(uint64_t offset) const {
  if (offset < kBlobHeaderSize) {
    return Corrupt(label_, offset, "blob offset points into the file header");
  }
  if (offset > bytes_.size() || bytes_.size() - offset < kBlobMetadataSize) {
    return Corrupt(label_, offset,
                   absl::StrCat("blob metadata record runs past the end of the ", bytes_.size(),
                                "-byte file"));
  }
  ASSIGN_OR_RETURN(BlobMetadata m,
                   DecodeBlobMetadata(bytes_.substr(offset, kBlobMetadataSize), offset, label_));
  RETURN_IF_ERROR(CheckBlobBounds(m, bytes_.size(), label_));
  return m;
}

absl::StatusOr<std::vector<BlobMetadata>> BlobStorageReader::ListBlobs() const {
  std::vector<BlobMetadata> blobs;
  blobs.reserve(header_.count);
  uint64_t offset = kBlobHeaderSize;
  for (uint32_t i = 0; i < header_.count; ++i) {
    ASSIGN_OR_RETURN(BlobMetadata m, Metadata(offset));
    offset = AlignUp(m.data_offset + m.size_in_bytes);
    blobs.push_back(m);
  }
  return blobs;
}

absl::Status BlobStorageWriter::Start() {
  started_ = true;
  BlobStorageHeader header;
  header.count = expected_ == kCountAtFinish ? 0 : expected_;
  return sink_->Append(EncodeBlobStorageHeader(header));
}

absl::StatusOr<uint64_t> BlobStorageWriter::Append(ElementType type, absl::string_view data,
                                                   uint64_t element_count) {
  if (!ToBlobDType(type).has_value()) {
    return absl::InvalidArgumentError(
        absl::StrCat(ElementTypeName(type), " tensors cannot be stored in blob storage"));
  }
  ASSIGN_OR_RETURN(uint64_t expected_bytes, StorageBytes(type, element_count));
  if (expected_bytes != data.size()) {
    return absl::InvalidArgumentError(absl::StrCat(element_count, " ", ElementTypeName(type),
                                                   " elements need ", expected_bytes,
                                                   " bytes, got ", data.size()));
  }
  if (written_ >= expected_) {
    return absl::FailedPreconditionError(
        absl::StrCat("blob storage writer was sized for ", expected_, " blobs"));
  }
  if (!started_) RETURN_IF_ERROR(Start());

  static const char kZeros[kBlobAlignment] = {};
  const uint64_t here = sink_->size();
  const uint64_t metadata_offset = AlignUp(here);
  RETURN_IF_ERROR(sink_->Append(absl::string_view(kZeros, metadata_offset - here)));

  BlobMetadata m;  // reserved fields stay zero
  m.offset = metadata_offset;
  m.type = type;
  m.size_in_bytes = data.size();
  m.data_offset = metadata_offset + kBlobMetadataSize;
  m.padding_bits = IsSubByte(type) ? data.size() * 8 - element_count * BitWidth(type) : 0;
  RETURN_IF_ERROR(sink_->Append(EncodeBlobMetadata(m)));
  RETURN_IF_ERROR(sink_->Append(data));
  ++written_;
  return metadata_offset;
}

absl::StatusOr<uint64_t> BlobStorageWriter::AppendShared(ElementType type, absl::string_view data,
                                                         uint64_t element_count, absl::string_view tag) {
  const uint64_t hash = absl::HashOf(static_cast<int>(type), element_count, tag, data);
  std::vector<Written>& candidates = by_hash_[hash];
  std::string earlier;
  for (const Written& w : candidates) {
    if (w.type != type || w.element_count != element_count || w.size != data.size() || w.tag != tag) continue;
    absl::Status read = sink_->ReadBack(w.offset + kBlobMetadataSize, w.size, &earlier);
    if (absl::IsUnimplemented(read)) break;
    RETURN_IF_ERROR(read);
    if (earlier == data) {
      ++shared_;
      shared_bytes_ += data.size();
      return w.offset;
    }
  }
  ASSIGN_OR_RETURN(uint64_t offset, Append(type, data, element_count));
  candidates.push_back({offset, type, element_count, data.size(), std::string(tag)});
  return offset;
}

absl::Status BlobStorageWriter::Finish() {
  if (!started_) RETURN_IF_ERROR(Start());
  if (expected_ == kCountAtFinish) {
    BlobStorageHeader header;
    header.count = written_;
    return sink_->Patch(0, EncodeBlobStorageHeader(header));
  }
  if (written_ != expected_) {
    return absl::FailedPreconditionError(absl::StrCat("blob storage writer expected ", expected_,
                                                      " blobs, got ", written_));
  }
  return absl::OkStatus();
}

}  // namespace coremlz::format
