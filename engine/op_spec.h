// A description of MIL operations to emit in place of a weight's const op,
// before their tensors have been written anywhere. The program rewriter turns
// OpSpecs into protos once blob offsets are known.
#ifndef COREMLZ_ENGINE_OP_SPEC_H_
#define COREMLZ_ENGINE_OP_SPEC_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/byte_sink.h"
#include "coreml/mil.pb.h"
#include "engine/target.h"
#include "format/blob_storage.h"
#include "format/tensor.h"

namespace coremlz::engine {

struct ParamSpec {
  std::string name;
  // Exactly one source: a tensor to store, the name of an earlier op's
  // output, or the very same value as another parameter (a shared blob).
  std::optional<format::Tensor> tensor;
  std::optional<std::string> string_value;  // a string scalar (e.g. a dtype name)
  std::string bound_name;
  int share_op = -1;  // index into the emission's ops
  std::string share_param;
};

struct OutputSpec {
  std::string name;
  format::ElementType type;
  format::Shape shape;
};

struct OpSpec {
  std::string type;
  std::string name;
  std::vector<ParamSpec> params;  // in Core ML's input order (blob write order)
  std::vector<OutputSpec> outputs;
  // iOS16/17 constexpr ops keep parameters as attributes; iOS18 ones as inputs.
  bool params_as_attributes = false;
};

// Core ML tools put a constant in the weight file when it has at least 10
// elements and a dtype blob storage handles (from iOS18 also 16/32-bit ints).
bool StoreInBlob(const format::Tensor& t, Target target);

// Core ML tools store a constant once when another of the same dtype, shape
// and values exists (its const_deduplication pass, run on every model it
// saves), but only from 100 elements on: smaller ones (a conv's 96 zero
// points, a 16-entry palette) are written per op.
inline constexpr uint64_t kShareMinElements = 100;

// Writes one tensor's blob by that rule: shared with an equal earlier blob
// of the same shape when it has kShareMinElements or more, else appended.
absl::StatusOr<uint64_t> WriteBlob(format::BlobStorageWriter* writer, format::ElementType type, absl::string_view bytes,
                                   uint64_t element_count, const format::Shape& shape);

// Writes the tensors of `ops` (in order; blobs through `writer` into the file
// named `file_name`) and returns the finished protos.
absl::StatusOr<std::vector<CoreML::Specification::MILSpec::Operation>> BuildOps(
    const std::vector<OpSpec>& ops, Target target, format::BlobStorageWriter* writer,
    const std::string& file_name, uint64_t* stored_bytes);

// A const op holding `value` (blob or immediate as StoreInBlob decides).
CoreML::Specification::MILSpec::Value StringScalar(const std::string& s);

}  // namespace coremlz::engine

#endif  // COREMLZ_ENGINE_OP_SPEC_H_
