// Materialises Core ML's constexpr_* ops (both the iOS16 and the iOS18
// generations, and chains of them) into the dense tensors Core ML would
// compute at load time. This is the read path for compressed models: the
// inventory, the host validation runner and the tests all use it, and it is
// written against the op definitions, independently of the compressors.
#ifndef COREMLZ_ENGINE_DECOMPRESS_H_
#define COREMLZ_ENGINE_DECOMPRESS_H_

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "coreml/mil.pb.h"
#include "format/package.h"
#include "format/tensor.h"

namespace coremlz::engine {

// Reads the data of a MIL value, immediate or blob-backed.
class ValueReader {
 public:
  virtual ~ValueReader() = default;
  virtual absl::StatusOr<format::Tensor> Read(const CoreML::Specification::MILSpec::Value& value) = 0;
};

// Values of an opened package (blobs through its mapped weight files).
class PackageValueReader : public ValueReader {
 public:
  explicit PackageValueReader(format::MlPackage* package) : package_(package) {}
  absl::StatusOr<format::Tensor> Read(const CoreML::Specification::MILSpec::Value& value) override;

 private:
  format::MlPackage* package_;
};

// Evaluates constexpr ops one at a time; later ops may consume the outputs
// of earlier ones by name (e.g. constexpr_lut_to_sparse ->
// constexpr_sparse_to_dense).
class ConstexprEvaluator {
 public:
  explicit ConstexprEvaluator(ValueReader* reader) : reader_(reader) {}
  // Computes all outputs of `op` and remembers them under their names.
  absl::Status Evaluate(const CoreML::Specification::MILSpec::Operation& op);
  const format::Tensor* Output(const std::string& name) const;

 private:
  ValueReader* reader_;
  std::map<std::string, format::Tensor> outputs_;
};

struct DecompressedWeight {
  std::string function;
  std::string name;     // output name
  std::string op_type;  // the constexpr op that produced it
  bool intermediate = false;  // only consumed by other constexpr ops
  format::Tensor dense;
};

// Decompresses every constexpr op of the program, in program order.
absl::StatusOr<std::vector<DecompressedWeight>> DecompressProgram(
    const CoreML::Specification::MILSpec::Program& program, ValueReader* reader);

}  // namespace coremlz::engine

#endif  // COREMLZ_ENGINE_DECOMPRESS_H_
