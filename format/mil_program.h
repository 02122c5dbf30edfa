// Walking an ML Program: functions -> block specialisations -> operations
// (recursively through nested blocks), and the tensor constants it holds.
#ifndef COREMLZ_FORMAT_MIL_PROGRAM_H_
#define COREMLZ_FORMAT_MIL_PROGRAM_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "coreml/mil.pb.h"
#include "format/blob_storage.h"
#include "format/tensor.h"

namespace coremlz::format {

// Where a value's bytes live.
struct BlobRef {
  std::string file_name;  // as written in the program ("@model_path/weights/weight.bin")
  uint64_t offset = 0;    // of the blob's metadata record
};

// A tensor held by an operation: the `val` of a const op, or an inline value
// bound to an input of any other op (constexpr_* ops carry their compressed
// data this way).
struct HeldTensor {
  std::string input;  // "val" for const ops, else the input name ("indices", "lut", ...)
  ElementType type;
  Shape shape;
  bool in_blob = false;
  BlobRef blob;
  uint64_t stored_bytes = 0;  // packed data bytes (blob size or immediate storage)
};

// A constant-producing operation: `const` or a `constexpr_*` decompression
// op. For the latter, `type`/`shape` are of its (dense) output.
struct ProgramWeight {
  std::string function;
  std::string block;  // specialisation key, e.g. "CoreML8"
  std::string name;   // output name
  std::string op_type;
  ElementType type;
  Shape shape;
  std::vector<HeldTensor> tensors;
  uint64_t stored_bytes = 0;  // sum over `tensors`
  // "<op type>.<input name>" of every operation reading this output.
  std::vector<std::string> consumers;
};

// Resolves a blob reference to its validated metadata (bounds, sentinel...).
using BlobResolver = std::function<absl::StatusOr<BlobMetadata>(const BlobRef&)>;

// Lists every const op holding a tensor (scalars and strings included only if
// `include_small`: otherwise tensors under 2 elements and non-numeric ones are
// skipped) and every constexpr_* op. Blob-backed tensors are resolved and
// checked: dtype and element count must match the declared type, and no two
// distinct blobs of a file may overlap.
absl::StatusOr<std::vector<ProgramWeight>> ListProgramWeights(
    const CoreML::Specification::MILSpec::Program& program, const BlobResolver& resolve,
    bool include_small = false);

// Calls `fn` for every block of the program, outer blocks first.
struct BlockContext {
  std::string function;
  std::string specialization;
  int depth = 0;  // 0 for a function's top-level block
};
absl::Status ForEachBlock(CoreML::Specification::MILSpec::Program* program,
                          const std::function<absl::Status(CoreML::Specification::MILSpec::Block*,
                                                           const BlockContext&)>& fn);
absl::Status ForEachBlock(const CoreML::Specification::MILSpec::Program& program,
                          const std::function<absl::Status(const CoreML::Specification::MILSpec::Block*,
                                                           const BlockContext&)>& fn);

// Checks that each function (each block specialisation on its own) is a
// well-formed graph, so that a compressor never rewrites - and writes out - a
// program Core ML cannot load:
//  * no name is defined twice in a function: op outputs are unique across
//    the function's blocks, nested ones included, and differ from the
//    function's inputs;
//  * every name an op reads is defined before it, in its block or an
//    enclosing one (a function input, an earlier op, a nested block's
//    inputs); ops that read each other's outputs - a cycle - fail this;
//  * every block output names a value in scope.
// INVALID_ARGUMENT naming the function, the op (type and name) and the value.
absl::Status ValidateProgramGraph(const CoreML::Specification::MILSpec::Program& program);

// The op's "name" attribute, or its first output's name.
std::string OpName(const CoreML::Specification::MILSpec::Operation& op);

// Name of the single output of `op` (const ops always have exactly one).
absl::StatusOr<std::string> SingleOutputName(const CoreML::Specification::MILSpec::Operation& op);

inline bool IsConstexprOp(absl::string_view type) { return type.substr(0, 10) == "constexpr_"; }

}  // namespace coremlz::format

#endif  // COREMLZ_FORMAT_MIL_PROGRAM_H_
