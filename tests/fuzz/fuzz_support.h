// Splits a fuzz input into a model spec and a weight file:
// [uint32 little-endian spec length][spec bytes][weight.bin bytes].
#ifndef COREMLZ_TESTS_FUZZ_FUZZ_SUPPORT_H_
#define COREMLZ_TESTS_FUZZ_FUZZ_SUPPORT_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>

#include "absl/strings/string_view.h"
#include "engine/decompress.h"
#include "format/blob_storage.h"
#include "format/package.h"
#include "format/tensor.h"
#include "google/protobuf/stubs/logging.h"

namespace coremlz::fuzz {

// protobuf logs every invalid UTF-8 string it parses; at thousands of runs a
// second that drowns the fuzzer's own output and halves its speed.
inline const bool kProtobufQuiet = [] {
  google::protobuf::SetLogHandler(nullptr);
  return true;
}();

struct SpecAndWeights {
  absl::string_view spec;
  absl::string_view weights;
};

inline bool Split(const uint8_t* data, size_t size, SpecAndWeights* out) {
  if (size < 4) return false;
  const uint32_t n = uint32_t{data[0]} | uint32_t{data[1]} << 8 | uint32_t{data[2]} << 16 | uint32_t{data[3]} << 24;
  if (n > size - 4) return false;
  out->spec = absl::string_view(reinterpret_cast<const char*>(data + 4), n);
  out->weights = absl::string_view(reinterpret_cast<const char*>(data + 4 + n), size - 4 - n);
  return true;
}

// A fuzz input read as an ML Program spec and its weight file; nullopt when
// the spec does not parse or holds no program. `file` views `data`.
struct ProgramInput {
  CoreML::Specification::Model model;
  absl::StatusOr<format::BlobStorageReader> file;
};

inline std::optional<ProgramInput> ParseProgramInput(const uint8_t* data, size_t size) {
  SpecAndWeights in;
  if (!Split(data, size, &in)) return std::nullopt;
  auto model = format::ParseModelSpec(in.spec, "model.mlmodel");
  if (!model.ok() || !model->has_mlprogram()) return std::nullopt;
  return ProgramInput{*std::move(model), format::BlobStorageReader::Open(in.weights, "weight.bin")};
}

// Reads values from the in-memory weight file (any file name maps to it).
class MemoryValueReader : public engine::ValueReader {
 public:
  explicit MemoryValueReader(const format::BlobStorageReader* file) : file_(file) {}
  absl::StatusOr<format::Tensor> Read(const CoreML::Specification::MILSpec::Value& value) override {
    if (value.has_immediatevalue()) return format::DecodeImmediateTensor(value);
    if (!value.has_blobfilevalue() || file_ == nullptr) return absl::NotFoundError("no blob");
    auto info = format::ReadTensorType(value.type());
    if (!info.ok()) return info.status();
    auto meta = file_->Metadata(value.blobfilevalue().offset());
    if (!meta.ok()) return meta.status();
    if (meta->type != info->type) return absl::InvalidArgumentError("dtype mismatch");
    return format::MakeTensor(info->type, info->shape, std::string(file_->Data(*meta)));
  }

 private:
  const format::BlobStorageReader* file_;
};

}  // namespace coremlz::fuzz

#endif  // COREMLZ_TESTS_FUZZ_FUZZ_SUPPORT_H_
