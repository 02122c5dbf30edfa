// libFuzzer target: weight.bin (MIL blob storage) through the random-access
// reader and the streaming reader, which must agree.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "format/blob_storage.h"
#include "format/blob_stream_reader.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace coremlz::format;
  if (size < 1) return 0;
  const size_t chunk = 1 + data[0] % 97;  // first byte: chunk size for the stream
  absl::string_view file(reinterpret_cast<const char*>(data + 1), size - 1);
  auto reader = BlobStorageReader::Open(file, "weight.bin");
  if (!reader.ok()) return 0;
  auto blobs = reader->ListBlobs();
  std::vector<uint64_t> offsets;
  std::vector<std::string> expected;
  if (blobs.ok()) {
    for (const auto& m : *blobs) {
      offsets.push_back(m.offset);
      expected.emplace_back(reader->Data(m));
      (void)m.element_count();
    }
  }
  // Arbitrary offsets too (bounded by the file).
  for (size_t i = 0; i + 8 <= file.size() && i < 256; i += 8) (void)reader->Metadata(static_cast<unsigned char>(file[i]) * 64);
  size_t got = 0;
  bool mismatch = false;
  BlobStreamReader stream(offsets, file.size(), "weight.bin", [&](const BlobMetadata& m, absl::string_view d) {
    if (got < expected.size() && expected[got] != d) mismatch = true;
    ++got;
    return absl::OkStatus();
  });
  absl::Status s;
  for (size_t pos = 0; pos < file.size() && s.ok(); pos += chunk) s = stream.Feed(file.substr(pos, chunk));
  if (s.ok()) s = stream.Finish();
  // The stream sees exactly what random access sees when the blobs are laid
  // out back to back (ListBlobs succeeded).
  if (blobs.ok() && s.ok() && (mismatch || got != expected.size())) __builtin_trap();
  return 0;
}
