#include "format/blob_storage.h"

#include <algorithm>
#include <array>

#include <fcntl.h>
#include <unistd.h>

#include <random>
#include <string>
#include <vector>

#include "common/byte_order.h"
#include "common/file_util.h"
#include "format/blob_stream_reader.h"
#include "gtest/gtest.h"
#include "tests/testing/test_env.h"

namespace coremlz::format {
namespace {

std::string ReadOrDie(const std::string& path) {
  auto data = ReadFile(path);
  EXPECT_TRUE(data.ok()) << data.status();
  return data.ok() ? *data : std::string();
}

std::string MobilenetWeights() {
  return ReadOrDie(testing::ModelsDir() +
                   "/mobilenetv2_randinit/mobilenetv2_randinit.mlpackage/Data/com.apple.CoreML/weights/weight.bin");
}

std::string JointGoldenWeights() {
  return ReadOrDie(testing::GoldenDir() +
                   "/ios18_joint_prune50_palettize4.mlpackage/Data/com.apple.CoreML/weights/weight.bin");
}

// Re-emits every blob of `file` through the writer.
std::string Rewrite(const std::string& file) {
  auto reader = BlobStorageReader::Open(file, "in");
  EXPECT_TRUE(reader.ok()) << reader.status();
  auto blobs = reader->ListBlobs();
  EXPECT_TRUE(blobs.ok()) << blobs.status();
  std::string out;
  StringSink sink(&out);
  BlobStorageWriter writer(&sink, static_cast<uint32_t>(blobs->size()));
  for (const BlobMetadata& m : *blobs) {
    auto offset = writer.Append(m.type, reader->Data(m), m.element_count());
    EXPECT_TRUE(offset.ok()) << offset.status();
    EXPECT_EQ(*offset, m.offset);
  }
  EXPECT_TRUE(writer.Finish().ok());
  return out;
}

TEST(BlobStorageTest, ReadsRealWeightFile) {
  const std::string file = MobilenetWeights();
  auto reader = BlobStorageReader::Open(file, "mobilenet weight.bin");
  ASSERT_TRUE(reader.ok()) << reader.status();
  EXPECT_EQ(reader->header().count, 79u);
  auto blobs = reader->ListBlobs();
  ASSERT_TRUE(blobs.ok()) << blobs.status();
  ASSERT_EQ(blobs->size(), 79u);
  EXPECT_EQ(blobs->front().offset, 64u);
  EXPECT_EQ(blobs->front().data_offset, 128u);
  EXPECT_EQ(blobs->front().type, ElementType::kFloat16);
  EXPECT_EQ(blobs->front().size_in_bytes, 1728u);  // first conv: 32x3x3x3 fp16
  uint64_t total = 0;
  for (const auto& m : *blobs) total += m.size_in_bytes;
  EXPECT_GT(total, 6900000u);
  EXPECT_EQ(blobs->back().data_offset + blobs->back().size_in_bytes, file.size());
}

TEST(BlobStorageTest, ReadsSubByteBlobsWithPadding) {
  const std::string file = JointGoldenWeights();
  auto reader = BlobStorageReader::Open(file, "joint");
  ASSERT_TRUE(reader.ok());
  auto blobs = reader->ListBlobs();
  ASSERT_TRUE(blobs.ok()) << blobs.status();
  ASSERT_EQ(blobs->size(), 7u);
  EXPECT_EQ((*blobs)[0].type, ElementType::kUInt1);
  EXPECT_EQ((*blobs)[0].element_count(), 128u * 64 * 3 * 3);
  EXPECT_EQ((*blobs)[1].type, ElementType::kUInt4);
  EXPECT_EQ((*blobs)[1].padding_bits, 4u);
  EXPECT_EQ((*blobs)[1].element_count(), 36847u);
}

TEST(BlobStorageTest, WriterReproducesRealFilesByteForByte) {
  for (const std::string& file : {MobilenetWeights(), JointGoldenWeights()}) {
    EXPECT_EQ(Rewrite(file), file);
  }
}

TEST(BlobStorageTest, WriterChecksCountsAndSizes) {
  std::string out;
  StringSink sink(&out);
  BlobStorageWriter writer(&sink, 1);
  EXPECT_FALSE(writer.Append(ElementType::kFloat16, std::string(6, '\0'), 4).ok());  // 4 halves need 8 bytes
  EXPECT_FALSE(writer.Append(ElementType::kBool, std::string(4, '\0'), 4).ok());     // not storable
  ASSERT_TRUE(writer.Append(ElementType::kUInt3, std::string(2, '\0'), 5).ok());     // 15 bits -> 2 bytes, pad 1
  EXPECT_FALSE(writer.Append(ElementType::kUInt8, "x", 1).ok());                     // over the declared count
  ASSERT_TRUE(writer.Finish().ok());
  auto reader = BlobStorageReader::Open(out, "w");
  ASSERT_TRUE(reader.ok());
  auto m = reader->Metadata(64);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->padding_bits, 1u);
  EXPECT_EQ(m->element_count(), 5u);

  std::string short_out;
  StringSink short_sink(&short_out);
  BlobStorageWriter short_writer(&short_sink, 2);
  ASSERT_TRUE(short_writer.Append(ElementType::kUInt8, "ab", 2).ok());
  EXPECT_FALSE(short_writer.Finish().ok());
}

// Third-party files (Mosaic, DTLN) carry non-zero reserved fields in every
// blob record (Mosaic also a padding_bits field full of garbage for fp16
// blobs); re-emitting them writes the same blobs with zeros there.
TEST(BlobStorageTest, WriterZeroesReservedFieldsOfThirdPartyFiles) {
  const std::string file = ReadOrDie(testing::ModelsDir() +
                                     "/mosaic_mlcommons/Mosaic.mlpackage/Data/com.apple.CoreML/weights/weight.bin");
  auto in = BlobStorageReader::Open(file, "in");
  ASSERT_TRUE(in.ok()) << in.status();
  auto in_blobs = in->ListBlobs();
  ASSERT_TRUE(in_blobs.ok()) << in_blobs.status();
  int nonzero = 0;
  for (const BlobMetadata& m : *in_blobs) nonzero += m.reserved != std::array<uint64_t, 4>{};
  ASSERT_GT(nonzero, 0) << "the input is meant to have non-zero reserved fields";

  const std::string out = Rewrite(file);
  ASSERT_EQ(out.size(), file.size());
  auto rewritten = BlobStorageReader::Open(out, "out");
  ASSERT_TRUE(rewritten.ok());
  EXPECT_EQ(rewritten->header().reserved, (std::array<uint64_t, 7>{}));
  auto out_blobs = rewritten->ListBlobs();
  ASSERT_TRUE(out_blobs.ok()) << out_blobs.status();
  ASSERT_EQ(out_blobs->size(), in_blobs->size());
  for (size_t i = 0; i < out_blobs->size(); ++i) {
    const BlobMetadata& a = (*in_blobs)[i];
    const BlobMetadata& b = (*out_blobs)[i];
    EXPECT_EQ(b.reserved, (std::array<uint64_t, 4>{})) << "blob " << i;
    EXPECT_EQ(b.type, a.type);
    // Older writers left garbage in the padding field of whole-byte types.
    EXPECT_EQ(b.padding_bits, IsSubByte(a.type) ? a.padding_bits : 0) << "blob " << i;
    EXPECT_EQ(rewritten->Data(b), in->Data(a)) << "blob " << i;
  }
}

// A sink that streams bytes away and so cannot read them back.
class ForwardOnlySink : public ByteSink {
 public:
  absl::Status Append(absl::string_view data) override {
    bytes_.append(data.data(), data.size());
    return absl::OkStatus();
  }
  uint64_t size() const override { return bytes_.size(); }
  std::string bytes_;
};

// Reference: offsets an AppendShared sequence must return, by brute force
// over what was appended before.
TEST(BlobStorageTest, AppendSharedWritesEqualBlobsOnce) {
  struct Blob {
    ElementType type;
    std::string data;
    uint64_t count;
    std::string tag;
  };
  const std::string zeros(144, '\0'), ones(144, '\1');
  const std::vector<Blob> blobs = {
      {ElementType::kInt8, zeros, 144, "[144]"},
      {ElementType::kInt8, ones, 144, "[144]"},
      {ElementType::kInt8, zeros, 144, "[144]"},       // shared with 0
      {ElementType::kUInt8, zeros, 144, "[144]"},      // other dtype: new
      {ElementType::kInt8, zeros, 144, "[1,144]"},     // other tag (shape): new
      {ElementType::kInt8, ones, 144, "[144]"},        // shared with 1
      {ElementType::kUInt4, zeros.substr(0, 72), 144, "[144]"},
      {ElementType::kUInt4, zeros.substr(0, 72), 143, "[144]"},  // other count: new
  };
  std::string out;
  StringSink sink(&out);
  BlobStorageWriter writer(&sink, BlobStorageWriter::kCountAtFinish);
  std::vector<uint64_t> offsets;
  uint64_t shared_bytes = 0;
  for (size_t i = 0; i < blobs.size(); ++i) {
    const Blob& b = blobs[i];
    auto offset = writer.AppendShared(b.type, b.data, b.count, b.tag);
    ASSERT_TRUE(offset.ok()) << offset.status();
    uint64_t expected = 0;
    for (size_t j = 0; j < i && expected == 0; ++j) {
      const Blob& e = blobs[j];
      if (e.type == b.type && e.data == b.data && e.count == b.count && e.tag == b.tag) expected = offsets[j];
    }
    if (expected != 0) {
      EXPECT_EQ(*offset, expected) << "blob " << i;
      shared_bytes += b.data.size();
    } else {
      EXPECT_TRUE(std::find(offsets.begin(), offsets.end(), *offset) == offsets.end()) << "blob " << i;
    }
    offsets.push_back(*offset);
  }
  ASSERT_TRUE(writer.Finish().ok());
  EXPECT_EQ(writer.written(), 6u);
  EXPECT_EQ(writer.shared(), 2u);
  EXPECT_EQ(writer.shared_bytes(), shared_bytes);
  auto reader = BlobStorageReader::Open(out, "shared");
  ASSERT_TRUE(reader.ok()) << reader.status();
  EXPECT_EQ(reader->header().count, 6u);
  for (size_t i = 0; i < blobs.size(); ++i) {
    auto m = reader->Metadata(offsets[i]);
    ASSERT_TRUE(m.ok()) << m.status();
    EXPECT_EQ(m->type, blobs[i].type);
    EXPECT_EQ(reader->Data(*m), blobs[i].data);
  }

  // Without read-back nothing can be confirmed, so nothing is shared.
  ForwardOnlySink forward;
  BlobStorageWriter unshared(&forward, 2);
  auto a = unshared.AppendShared(ElementType::kInt8, zeros, 144, "t");
  auto b = unshared.AppendShared(ElementType::kInt8, zeros, 144, "t");
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE(*a, *b);
  EXPECT_TRUE(unshared.Finish().ok());
}

TEST(BlobStorageTest, FileSinkReadsBackWhatItWrote) {
  testing::ScratchDir scratch;
  auto sink = FileSink::Create(scratch.Join("w.bin"));
  ASSERT_TRUE(sink.ok()) << sink.status();
  BlobStorageWriter writer(sink->get(), BlobStorageWriter::kCountAtFinish);
  const std::string data(300, '\x5a');
  auto a = writer.AppendShared(ElementType::kUInt8, data, 300, "");
  auto b = writer.AppendShared(ElementType::kUInt8, data, 300, "");
  ASSERT_TRUE(a.ok() && b.ok()) << a.status() << b.status();
  EXPECT_EQ(*a, *b);
  auto c = writer.AppendShared(ElementType::kUInt8, std::string(300, '\x5b'), 300, "");
  ASSERT_TRUE(c.ok());
  EXPECT_NE(*c, *a);
  ASSERT_TRUE(writer.Finish().ok());
  ASSERT_TRUE((*sink)->Close().ok());
  auto file = ReadFile(scratch.Join("w.bin"));
  ASSERT_TRUE(file.ok());
  auto reader = BlobStorageReader::Open(*file, "w.bin");
  ASSERT_TRUE(reader.ok()) << reader.status();
  EXPECT_EQ(reader->header().count, 2u);
  EXPECT_EQ(file->size(), 64u + 64 + 320 + 64 + 300);
}

// Corruptions of a valid two-blob file; each must fail with a message that
// names the file and the offset.
class BlobCorruptionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    StringSink sink(&file_);
    BlobStorageWriter writer(&sink, 2);
    ASSERT_TRUE(writer.Append(ElementType::kFloat16, std::string(200, '\x11'), 100).ok());
    ASSERT_TRUE(writer.Append(ElementType::kUInt4, std::string(3, '\x22'), 5).ok());
    ASSERT_TRUE(writer.Finish().ok());
    second_ = 64 + 64 + 256;  // header, metadata, 200 bytes padded to 256
  }
  absl::Status Check(const std::string& bytes, uint64_t offset) {
    auto reader = BlobStorageReader::Open(bytes, "weights/weight.bin");
    if (!reader.ok()) return reader.status();
    return reader->Metadata(offset).status();
  }
  std::string file_;
  uint64_t second_ = 0;
};

TEST_F(BlobCorruptionTest, ValidFileReads) {
  EXPECT_TRUE(Check(file_, 64).ok());
  EXPECT_TRUE(Check(file_, second_).ok()) << Check(file_, second_);
}

TEST_F(BlobCorruptionTest, TruncatedHeader) {
  absl::Status s = Check(file_.substr(0, 40), 64);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("weights/weight.bin"), std::string::npos) << s;
  EXPECT_NE(s.message().find("header"), std::string::npos) << s;
}

TEST_F(BlobCorruptionTest, WrongVersion) {
  std::string bad = file_;
  EncodeFixed32(bad.data() + 4, 1);
  EXPECT_NE(Check(bad, 64).message().find("version 1"), std::string::npos);
}

TEST_F(BlobCorruptionTest, AbsurdCount) {
  std::string bad = file_;
  EncodeFixed32(bad.data(), 0xffffffff);
  EXPECT_NE(Check(bad, 64).message().find("cannot hold"), std::string::npos);
}

TEST_F(BlobCorruptionTest, WrongSentinel) {
  std::string bad = file_;
  bad[second_] ^= 1;
  absl::Status s = Check(bad, second_);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("sentinel"), std::string::npos) << s;
  EXPECT_NE(s.message().find("offset 384"), std::string::npos) << s;
}

TEST_F(BlobCorruptionTest, OffsetNotAtARecord) {
  EXPECT_NE(Check(file_, 128).message().find("sentinel"), std::string::npos);
  EXPECT_NE(Check(file_, 0).message().find("header"), std::string::npos);
  EXPECT_NE(Check(file_, file_.size() - 10).message().find("past the end"), std::string::npos);
  EXPECT_NE(Check(file_, uint64_t{1} << 62).message().find("past the end"), std::string::npos);
}

TEST_F(BlobCorruptionTest, UnknownDtype) {
  std::string bad = file_;
  EncodeFixed32(bad.data() + 64 + 4, 99);
  EXPECT_NE(Check(bad, 64).message().find("unknown blob dtype code 99"), std::string::npos);
}

TEST_F(BlobCorruptionTest, SizePastEndOfFile) {
  std::string bad = file_;
  EncodeFixed64(bad.data() + 64 + 8, 1 << 20);
  EXPECT_NE(Check(bad, 64).message().find("past the end"), std::string::npos);
  EncodeFixed64(bad.data() + 64 + 8, ~uint64_t{0} - 1);  // overflow when added to the offset
  EXPECT_FALSE(Check(bad, 64).ok());
}

TEST_F(BlobCorruptionTest, DataOverlappingItsMetadata) {
  std::string bad = file_;
  EncodeFixed64(bad.data() + 64 + 16, 100);
  EXPECT_NE(Check(bad, 64).message().find("overlaps its own metadata"), std::string::npos);
}

TEST_F(BlobCorruptionTest, BadSubBytePadding) {
  std::string bad = file_;
  EncodeFixed64(bad.data() + second_ + 24, 9);
  EXPECT_NE(Check(bad, second_).message().find("padding"), std::string::npos);
  EncodeFixed64(bad.data() + second_ + 24, 3);  // 24 - 3 = 21 bits: not whole uint4s
  EXPECT_NE(Check(bad, second_).message().find("whole number"), std::string::npos);
}

TEST_F(BlobCorruptionTest, OddSizeForMultiByteType) {
  std::string bad = file_;
  EncodeFixed64(bad.data() + 64 + 8, 199);
  EXPECT_NE(Check(bad, 64).message().find("multiple"), std::string::npos);
}

// --- streaming ---

struct Collected {
  std::vector<uint64_t> offsets;
  std::vector<std::string> data;
};

absl::Status StreamIn(const std::string& file, std::vector<uint64_t> offsets, size_t chunk, Collected* out,
                      uint64_t declared_size = 0) {
  BlobStreamReader reader(std::move(offsets), declared_size ? declared_size : file.size(), "upload",
                          [out](const BlobMetadata& m, absl::string_view data) {
                            out->offsets.push_back(m.offset);
                            out->data.emplace_back(data);
                            return absl::OkStatus();
                          });
  for (size_t pos = 0; pos < file.size(); pos += chunk) {
    absl::Status s = reader.Feed(absl::string_view(file).substr(pos, chunk));
    if (!s.ok()) return s;
  }
  return reader.Finish();
}

TEST(BlobStreamReaderTest, DeliversTheSameBlobsAsRandomAccessForAnyChunking) {
  const std::string file = MobilenetWeights();
  auto reader = BlobStorageReader::Open(file, "m");
  ASSERT_TRUE(reader.ok());
  auto blobs = reader->ListBlobs();
  ASSERT_TRUE(blobs.ok());
  std::vector<uint64_t> wanted;
  for (size_t i = 0; i < blobs->size(); i += 3) wanted.push_back((*blobs)[i].offset);
  wanted.push_back(wanted.front());  // duplicates collapse
  for (size_t chunk : {size_t{1} << 20, size_t{4097}, size_t{64}, size_t{7}}) {
    Collected got;
    ASSERT_TRUE(StreamIn(file, wanted, chunk, &got).ok());
    ASSERT_EQ(got.offsets.size(), (blobs->size() + 2) / 3);
    for (size_t i = 0; i < got.offsets.size(); ++i) {
      auto m = reader->Metadata(got.offsets[i]);
      ASSERT_TRUE(m.ok());
      ASSERT_EQ(got.data[i], reader->Data(*m)) << "chunk " << chunk;
    }
  }
}

TEST(BlobStreamReaderTest, TruncatedStreamIsDataLoss) {
  const std::string file = JointGoldenWeights();
  Collected got;
  absl::Status s = StreamIn(file.substr(0, file.size() - 100), {64, 9344, 77376}, 1000, &got, file.size());
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
  EXPECT_NE(s.message().find("ended after"), std::string::npos) << s;
}

TEST(BlobStreamReaderTest, LongerStreamThanDeclaredIsRejected) {
  const std::string file = JointGoldenWeights();
  Collected got;
  absl::Status s = StreamIn(file + "extra", {64}, 1000, &got, file.size());
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
}

TEST(BlobStreamReaderTest, OverlappingBlobsAreRejected) {
  // Point a second reference into the middle of the first blob's data.
  std::string file;
  StringSink sink(&file);
  BlobStorageWriter writer(&sink, 2);
  ASSERT_TRUE(writer.Append(ElementType::kUInt8, std::string(300, 'a'), 300).ok());
  ASSERT_TRUE(writer.Append(ElementType::kUInt8, std::string(10, 'b'), 10).ok());
  ASSERT_TRUE(writer.Finish().ok());
  // Forge a metadata record inside blob 0's data at offset 192.
  std::string forged = file;
  std::string record = EncodeBlobMetadata(BlobMetadata{192, ElementType::kUInt8, 10, 256, 0, {}});
  forged.replace(192, 64, record);
  Collected got;
  absl::Status s = StreamIn(forged, {64, 192}, 50, &got);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_NE(s.message().find("overlaps"), std::string::npos) << s;
}

TEST(BlobStreamReaderTest, CallbackErrorsStopTheStream) {
  const std::string file = JointGoldenWeights();
  BlobStreamReader reader({64}, file.size(), "x",
                          [](const BlobMetadata&, absl::string_view) { return absl::CancelledError("stop"); });
  EXPECT_EQ(reader.Feed(file).code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(reader.Feed("more").code(), absl::StatusCode::kCancelled);
}

TEST(BlobStreamReaderTest, HoldsOnlyOneBlobInMemory) {
  const std::string file = MobilenetWeights();
  auto reader = BlobStorageReader::Open(file, "m");
  auto blobs = reader->ListBlobs();
  std::vector<uint64_t> all;
  uint64_t largest = 0;
  for (const auto& m : *blobs) {
    all.push_back(m.offset);
    largest = std::max(largest, m.size_in_bytes);
  }
  size_t peak = 0;
  BlobStreamReader stream(all, file.size(), "m", [](const BlobMetadata&, absl::string_view) { return absl::OkStatus(); });
  for (size_t pos = 0; pos < file.size(); pos += 65536) {
    ASSERT_TRUE(stream.Feed(absl::string_view(file).substr(pos, 65536)).ok());
    peak = std::max(peak, stream.buffered());
  }
  ASSERT_TRUE(stream.Finish().ok());
  EXPECT_LE(peak, largest);
}

// Weight files of LLMs pass 4 GiB: offsets and sizes are 64-bit through the
// header, the records, random access and the stream reader. The file is
// sparse: a 5 GiB blob of holes, then a small blob whose record starts past
// 4 GiB.
TEST(BlobStorageTest, OffsetsAndSizesPast4GiB) {
  auto dir = MakeTempDirectory("coremlz-blob-4g-");
  ASSERT_TRUE(dir.ok()) << dir.status();
  const std::string path = *dir + "/weight.bin";
  const uint64_t big = uint64_t{5} << 30;  // fp16 elements' bytes, > UINT32_MAX
  BlobMetadata first;
  first.offset = kBlobHeaderSize;
  first.type = ElementType::kFloat16;
  first.size_in_bytes = big;
  first.data_offset = first.offset + kBlobMetadataSize;
  BlobMetadata second;
  second.offset = AlignUp(first.data_offset + big);
  second.type = ElementType::kFloat16;
  second.size_in_bytes = 128;
  second.data_offset = second.offset + kBlobMetadataSize;
  ASSERT_GT(second.offset, uint64_t{UINT32_MAX});
  std::string payload(128, '\0');
  for (size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<char>(i * 7 + 1);
  const uint64_t file_size = second.data_offset + payload.size();
  BlobStorageHeader header;
  header.count = 2;
  {
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ASSERT_GE(fd, 0);
    auto put = [&](uint64_t offset, const std::string& bytes) {
      ASSERT_EQ(::pwrite(fd, bytes.data(), bytes.size(), static_cast<off_t>(offset)),
                static_cast<ssize_t>(bytes.size()));
    };
    put(0, EncodeBlobStorageHeader(header));
    put(first.offset, EncodeBlobMetadata(first));
    put(second.offset, EncodeBlobMetadata(second));
    put(second.data_offset, payload);
    ASSERT_EQ(::close(fd), 0);
  }
  ASSERT_EQ(*FileSize(path), file_size);

  // Random access (mapped; holes are never touched).
  {
    auto mapped = MappedFile::Open(path);
    ASSERT_TRUE(mapped.ok()) << mapped.status();
    auto reader = BlobStorageReader::Open(mapped->bytes(), path);
    ASSERT_TRUE(reader.ok()) << reader.status();
    EXPECT_EQ(reader->file_size(), file_size);
    auto blobs = reader->ListBlobs();
    ASSERT_TRUE(blobs.ok()) << blobs.status();
    ASSERT_EQ(blobs->size(), 2u);
    EXPECT_EQ((*blobs)[0].size_in_bytes, big);
    EXPECT_EQ((*blobs)[0].element_count(), big / 2);
    EXPECT_EQ((*blobs)[1].offset, second.offset);
    EXPECT_EQ((*blobs)[1].data_offset, second.data_offset);
    EXPECT_EQ(reader->Data((*blobs)[1]), payload);
    auto direct = reader->Metadata(second.offset);
    ASSERT_TRUE(direct.ok()) << direct.status();
    EXPECT_EQ(direct->data_offset, second.data_offset);
  }

  // Streamed: the file's own bytes around the holes, zeros in between.
  {
    std::string delivered;
    uint64_t delivered_offset = 0;
    BlobStreamReader stream({second.offset}, file_size, path, [&](const BlobMetadata& m, absl::string_view data) {
      delivered_offset = m.offset;
      delivered = std::string(data);
      return absl::OkStatus();
    });
    int fd = ::open(path.c_str(), O_RDONLY);
    ASSERT_GE(fd, 0);
    std::string head(first.data_offset, '\0');
    ASSERT_EQ(::pread(fd, head.data(), head.size(), 0), static_cast<ssize_t>(head.size()));
    ASSERT_TRUE(stream.Feed(head).ok());
    const std::string zeros(4 << 20, '\0');
    for (uint64_t pos = first.data_offset; pos < second.offset;) {
      const uint64_t n = std::min<uint64_t>(zeros.size(), second.offset - pos);
      ASSERT_TRUE(stream.Feed(absl::string_view(zeros).substr(0, n)).ok());
      pos += n;
    }
    std::string tail(file_size - second.offset, '\0');
    ASSERT_EQ(::pread(fd, tail.data(), tail.size(), static_cast<off_t>(second.offset)),
              static_cast<ssize_t>(tail.size()));
    ::close(fd);
    ASSERT_TRUE(stream.Feed(tail).ok());
    ASSERT_TRUE(stream.Finish().ok());
    EXPECT_EQ(stream.bytes_seen(), file_size);
    EXPECT_EQ(delivered_offset, second.offset);
    EXPECT_EQ(delivered, payload);
  }
  ASSERT_TRUE(RemoveAll(*dir).ok());
}

// A sink that keeps what is appended but reports positions as if `base`
// bytes came first: the writer at 5 GiB into a file, without the 5 GiB.
class OffsetSink : public ByteSink {
 public:
  explicit OffsetSink(uint64_t base) : base_(base) {}
  absl::Status Append(absl::string_view data) override {
    bytes_.append(data.data(), data.size());
    return absl::OkStatus();
  }
  uint64_t size() const override { return base_ + bytes_.size(); }
  const std::string& bytes() const { return bytes_; }

 private:
  uint64_t base_;
  std::string bytes_;
};

TEST(BlobStorageTest, WriterRecordsOffsetsPast4GiB) {
  const uint64_t base = (uint64_t{6} << 30) + 17;  // not aligned: the writer pads
  OffsetSink sink(base);
  BlobStorageWriter writer(&sink, 1);
  const std::string data(64, '\x3c');
  auto offset = writer.Append(ElementType::kFloat16, data, 32);
  ASSERT_TRUE(offset.ok()) << offset.status();
  EXPECT_EQ(*offset, AlignUp(base + kBlobHeaderSize));
  ASSERT_TRUE(writer.Finish().ok());
  // The record sits at *offset - base in what was appended.
  const std::string record = sink.bytes().substr(*offset - base, kBlobMetadataSize);
  auto m = DecodeBlobMetadata(record, *offset, "sink");
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->data_offset, *offset + kBlobMetadataSize);
  EXPECT_GT(m->data_offset, uint64_t{UINT32_MAX});
  EXPECT_EQ(m->size_in_bytes, 64u);
  EXPECT_EQ(sink.bytes().substr(*offset - base + kBlobMetadataSize), data);
}

}  // namespace
}  // namespace coremlz::format
