#include "engine/op_spec.h"

#include <map>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace coremlz::engine {
namespace mil = CoreML::Specification::MILSpec;
using format::ElementType;

bool StoreInBlob(const format::Tensor& t, Target target) {
  if (t.element_count() < 10) return false;
  switch (t.type) {
    case ElementType::kFloat16:
    case ElementType::kFloat32:
    case ElementType::kUInt8:
    case ElementType::kInt8:
    case ElementType::kInt4:
    case ElementType::kUInt1:
    case ElementType::kUInt2:
    case ElementType::kUInt3:
    case ElementType::kUInt4:
    case ElementType::kUInt6:
      return true;
    case ElementType::kInt16:
    case ElementType::kUInt16:
    case ElementType::kInt32:
    case ElementType::kUInt32:
      return target >= Target::kIOS18;
    default:
      return false;
  }
}

absl::StatusOr<uint64_t> WriteBlob(format::BlobStorageWriter* writer, format::ElementType type, absl::string_view bytes,
                                   uint64_t element_count, const format::Shape& shape) {
  if (element_count < kShareMinElements) return writer->Append(type, bytes, element_count);
  return writer->AppendShared(type, bytes, element_count, format::ShapeString(shape));
}

mil::Value StringScalar(const std::string& s) {
  mil::Value v;
  v.mutable_type()->mutable_tensortype()->set_datatype(mil::STRING);
  v.mutable_immediatevalue()->mutable_tensor()->mutable_strings()->add_values(s);
  return v;
}

absl::StatusOr<std::vector<mil::Operation>> BuildOps(const std::vector<OpSpec>& specs, Target target,
                                                     format::BlobStorageWriter* writer, const std::string& file_name,
                                                     uint64_t* stored_bytes) {
  std::vector<mil::Operation> ops;
  // Values already built, for parameters that share them.
  std::map<std::pair<int, std::string>, mil::Value> built;
  for (size_t i = 0; i < specs.size(); ++i) {
    const OpSpec& spec = specs[i];
    mil::Operation op;
    op.set_type(spec.type);
    for (const OutputSpec& out : spec.outputs) {
      mil::NamedValueType* o = op.add_outputs();
      o->set_name(out.name);
      *o->mutable_type() = format::MakeTensorType(out.type, out.shape);
    }
    (*op.mutable_attributes())["name"] = StringScalar(spec.name);
    for (const ParamSpec& p : spec.params) {
      if (!p.bound_name.empty()) {
        if (spec.params_as_attributes) return absl::InternalError("iOS16 ops cannot bind parameters by name");
        (*op.mutable_inputs())[p.name].add_arguments()->set_name(p.bound_name);
        continue;
      }
      mil::Value value;
      if (p.share_op >= 0) {
        auto it = built.find({p.share_op, p.share_param});
        if (it == built.end()) return absl::InternalError("shared parameter refers to an unbuilt value");
        value = it->second;
      } else if (p.string_value.has_value()) {
        value = StringScalar(*p.string_value);
      } else if (p.tensor.has_value()) {
        const format::Tensor& t = *p.tensor;
        if (writer != nullptr && StoreInBlob(t, target)) {
          ASSIGN_OR_RETURN(uint64_t offset, WriteBlob(writer, t.type, t.bytes, t.element_count(), t.shape));
          value = format::MakeBlobValue(t.type, t.shape, file_name, offset);
        } else {
          ASSIGN_OR_RETURN(value, format::EncodeImmediateTensor(format::View(t)));
        }
        if (stored_bytes) *stored_bytes += t.bytes.size();
      } else {
        return absl::InternalError(absl::StrCat("parameter ", p.name, " of ", spec.name, " has no source"));
      }
      built[{static_cast<int>(i), p.name}] = value;
      if (spec.params_as_attributes) {
        (*op.mutable_attributes())[p.name] = value;
      } else {
        *(*op.mutable_inputs())[p.name].add_arguments()->mutable_value() = value;
      }
    }
    ops.push_back(std::move(op));
  }
  return ops;
}

}  // namespace coremlz::engine
