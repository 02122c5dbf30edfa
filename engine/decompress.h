// Materialises Core ML's constexpr_* ops (both the iOS16 and the iOS18
// generations, and chains of them) into the dense tensors Core ML would
// compute at load time. This is the read path for compressed models: the
// inventory, the host validation runner and the tests all use it, and it is
// written against the op definitions, independently of the compressors.
#ifndef COREMLZ_ENGINE_DECOMPRESS_H_
#define COREMLZ_ENGINE_DECOMPRESS_H_

#include <functional>
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
  // By name or by an alias of it.
  const format::Tensor* Output(const std::string& name) const;
  // Later ops that read `name` get the output `target` (an op that repeats
  // an earlier one is not evaluated again).
  void Alias(const std::string& name, const std::string& target) { aliases_[name] = target; }
  // Drops an output no later op reads.
  void Forget(const std::string& name) { outputs_.erase(name); }

 private:
  ValueReader* reader_;
  std::map<std::string, format::Tensor> outputs_;
  std::map<std::string, std::string> aliases_;
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

// One output of a constexpr op, as ForEachDecompressed hands it out.
struct DecompressedOutput {
  std::string function;
  std::string name;     // output name
  std::string op_type;
  bool intermediate = false;  // only consumed by other constexpr ops
  // Equal for outputs of ops that repeat each other: same type, parameters,
  // blob references and (recursively) inputs, so the same values.
  std::string key;
  // The values; null when the op repeats an earlier one (whose output with
  // the same key came first) and was not evaluated again.
  const format::Tensor* dense = nullptr;
};

// Like DecompressProgram, but streaming: each output goes to `fn` as soon as
// it is computed and is kept only while a later op of its block still reads
// it, and an op that repeats an earlier one is not evaluated again. Memory
// is what one op needs plus the intermediates still to be read, however
// many ops read the same weight (many constexpr ops over one blob would
// otherwise each materialise it). Stops at the first error from `fn`.
absl::Status ForEachDecompressed(const CoreML::Specification::MILSpec::Program& program, ValueReader* reader,
                                 const std::function<absl::Status(const DecompressedOutput&)>& fn);

}  // namespace coremlz::engine

#endif  // COREMLZ_ENGINE_DECOMPRESS_H_
