#include "engine/decompress.h"

#include <algorithm>
#include <set>

#include "absl/strings/str_cat.h"
#include "common/sha256.h"
#include "common/status_macros.h"
#include "engine/constexpr_ops.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "format/mil_program.h"

namespace coremlz::engine {
namespace mil = CoreML::Specification::MILSpec;
using format::ElementType;
using format::Tensor;

absl::StatusOr<Tensor> PackageValueReader::Read(const mil::Value& value) {
  if (value.has_immediatevalue()) return format::DecodeImmediateTensor(value);
  if (!value.has_blobfilevalue()) return absl::InvalidArgumentError("value has no data");
  ASSIGN_OR_RETURN(format::TensorTypeInfo info, format::ReadTensorType(value.type()));
  ASSIGN_OR_RETURN(const format::BlobStorageReader* file, package_->WeightFile(value.blobfilevalue().filename()));
  ASSIGN_OR_RETURN(format::BlobMetadata meta, file->Metadata(value.blobfilevalue().offset()));
  if (meta.type != info.type) {
    return absl::InvalidArgumentError(absl::StrCat("blob at offset ", meta.offset, " holds ",
                                                   format::ElementTypeName(meta.type), ", declared ",
                                                   format::ElementTypeName(info.type)));
  }
  return format::MakeTensor(info.type, info.shape, std::string(file->Data(meta)));
}

const Tensor* ConstexprEvaluator::Output(const std::string& name) const {
  auto alias = aliases_.find(name);
  auto it = outputs_.find(alias == aliases_.end() ? name : alias->second);
  return it == outputs_.end() ? nullptr : &it->second;
}

absl::Status ConstexprEvaluator::Evaluate(const mil::Operation& op) {
  ConstexprOpContext ctx(op, reader_, *this);
  ASSIGN_OR_RETURN(format::TensorTypeInfo first_output, ctx.OutputType(0));
  const ConstexprOpFn evaluate = FindConstexprOp(op.type());
  if (evaluate == nullptr) return ctx.Fail("unsupported constexpr op");
  ASSIGN_OR_RETURN(std::vector<Tensor> results, evaluate(ctx, first_output));

  if (static_cast<int>(results.size()) != op.outputs_size()) {
    return ctx.Fail(absl::StrCat("produces ", results.size(), " outputs; the op declares ", op.outputs_size()));
  }
  for (int i = 0; i < op.outputs_size(); ++i) {
    ASSIGN_OR_RETURN(format::TensorTypeInfo declared, ctx.OutputType(i));
    if (declared.shape != results[i].shape || declared.type != results[i].type) {
      return ctx.Fail(absl::StrCat("output ", i, " is ", format::ElementTypeName(results[i].type),
                                   format::ShapeString(results[i].shape), " but declared ",
                                   format::ElementTypeName(declared.type), format::ShapeString(declared.shape)));
    }
    outputs_[op.outputs(i).name()] = std::move(results[i]);
  }
  return absl::OkStatus();
}

namespace {
// The names a block reads outside its constexpr ops (or returns): a constexpr
// output missing from it is consumed only by other constexpr ops.
std::set<std::string> ReadOutsideConstexprOps(const mil::Block& block) {
  std::set<std::string> used;
  for (const mil::Operation& op : block.operations()) {
    if (format::IsConstexprOp(op.type())) continue;
    for (const auto& [k, arg] : op.inputs())
      for (const auto& b : arg.arguments())
        if (b.binding_case() == mil::Argument::Binding::kName) used.insert(b.name());
  }
  for (const std::string& o : block.outputs()) used.insert(o);
  return used;
}
}  // namespace

absl::StatusOr<std::vector<DecompressedWeight>> DecompressProgram(const mil::Program& program, ValueReader* reader) {
  std::vector<DecompressedWeight> out;
  RETURN_IF_ERROR(format::ForEachBlock(program, [&](const mil::Block* block, const format::BlockContext& ctx) -> absl::Status {
    const std::set<std::string> used_by_others = ReadOutsideConstexprOps(*block);
    ConstexprEvaluator eval(reader);
    for (const mil::Operation& op : block->operations()) {
      if (!format::IsConstexprOp(op.type())) continue;
      RETURN_IF_ERROR(eval.Evaluate(op));
      for (const mil::NamedValueType& o : op.outputs()) {
        const Tensor* t = eval.Output(o.name());
        if (t->type == ElementType::kUInt1) continue;  // masks are not weights
        out.push_back({ctx.function, o.name(), op.type(), used_by_others.count(o.name()) == 0, *t});
      }
    }
    return absl::OkStatus();
  }));
  return out;
}

namespace {

// A digest of what determines an op's outputs: its type, every parameter
// (values and blob references as written, names of earlier constexpr
// outputs by their own keys) and its declared output types. The op's name
// is left out: two ops that differ only in name compute the same values.
std::string OpKey(const mil::Operation& op, const std::map<std::string, std::string>& output_keys) {
  auto add_value = [](std::string* out, const mil::Value& v) {
    std::string bytes;
    google::protobuf::io::StringOutputStream raw(&bytes);
    google::protobuf::io::CodedOutputStream coded(&raw);
    coded.SetSerializationDeterministic(true);
    v.SerializeToCodedStream(&coded);
    coded.Trim();
    absl::StrAppend(out, bytes.size(), ":", bytes);
  };
  std::string text = absl::StrCat(op.type().size(), ":", op.type());
  std::vector<std::string> inputs;
  for (const auto& [k, arg] : op.inputs()) inputs.push_back(k);
  std::sort(inputs.begin(), inputs.end());
  for (const std::string& k : inputs) {
    absl::StrAppend(&text, "|in ", k.size(), ":", k);
    for (const mil::Argument::Binding& b : op.inputs().at(k).arguments()) {
      if (b.binding_case() == mil::Argument::Binding::kValue) {
        add_value(&text, b.value());
      } else {
        auto it = output_keys.find(b.name());
        absl::StrAppend(&text, "=", it != output_keys.end() ? it->second : absl::StrCat("name:", b.name()));
      }
    }
  }
  std::vector<std::string> attrs;
  for (const auto& [k, v] : op.attributes()) {
    if (k != "name") attrs.push_back(k);
  }
  std::sort(attrs.begin(), attrs.end());
  for (const std::string& k : attrs) {
    absl::StrAppend(&text, "|attr ", k.size(), ":", k);
    add_value(&text, op.attributes().at(k));
  }
  for (const mil::NamedValueType& o : op.outputs()) {
    std::string t;
    o.type().SerializeToString(&t);
    absl::StrAppend(&text, "|out ", t.size(), ":", t);
  }
  return Sha256Hex(text);
}

}  // namespace

absl::Status ForEachDecompressed(const mil::Program& program, ValueReader* reader,
                                 const std::function<absl::Status(const DecompressedOutput&)>& fn) {
  return format::ForEachBlock(program, [&](const mil::Block* block, const format::BlockContext& ctx) -> absl::Status {
    const std::set<std::string> used_by_others = ReadOutsideConstexprOps(*block);

    // First pass: keys, which ops repeat an earlier one, and how many
    // evaluated ops still read each kept output.
    struct Planned {
      const mil::Operation* op;
      std::string key;
      bool repeat;
    };
    std::vector<Planned> plan;
    std::map<std::string, std::string> output_keys;   // output name -> key
    std::map<std::string, std::string> first_output;  // key -> name of the first output with it
    std::map<std::string, int> readers;               // first output name -> evaluated ops reading it
    std::set<std::string> seen;
    for (const mil::Operation& op : block->operations()) {
      if (!format::IsConstexprOp(op.type())) continue;
      Planned p{&op, OpKey(op, output_keys), false};
      p.repeat = !seen.insert(p.key).second;
      for (int i = 0; i < op.outputs_size(); ++i) {
        const std::string key = absl::StrCat(p.key, "#", i);
        output_keys[op.outputs(i).name()] = key;
        first_output.emplace(key, op.outputs(i).name());
      }
      if (!p.repeat) {
        for (const auto& [k, arg] : op.inputs())
          for (const auto& b : arg.arguments())
            if (b.binding_case() == mil::Argument::Binding::kName) {
              auto it = output_keys.find(b.name());
              ++readers[it != output_keys.end() ? first_output[it->second] : b.name()];
            }
      }
      plan.push_back(std::move(p));
    }

    ConstexprEvaluator eval(reader);
    for (const Planned& p : plan) {
      const mil::Operation& op = *p.op;
      if (p.repeat) {
        for (int i = 0; i < op.outputs_size(); ++i) {
          const std::string& name = op.outputs(i).name();
          const std::string& first = first_output[output_keys[name]];
          eval.Alias(name, first);
          DecompressedOutput out{ctx.function, name, op.type(), used_by_others.count(name) == 0, output_keys[name], nullptr};
          // Masks are not weights (as in DecompressProgram).
          auto type = format::ReadTensorType(op.outputs(i).type());
          if (type.ok() && type->type == ElementType::kUInt1) continue;
          RETURN_IF_ERROR(fn(out));
        }
        continue;
      }
      RETURN_IF_ERROR(eval.Evaluate(op));
      for (int i = 0; i < op.outputs_size(); ++i) {
        const std::string& name = op.outputs(i).name();
        const Tensor* t = eval.Output(name);
        if (t->type != ElementType::kUInt1) {
          RETURN_IF_ERROR(fn({ctx.function, name, op.type(), used_by_others.count(name) == 0, output_keys[name], t}));
        }
        if (readers[name] == 0) eval.Forget(name);
      }
      // Inputs this op was the last to read.
      for (const auto& [k, arg] : op.inputs())
        for (const auto& b : arg.arguments())
          if (b.binding_case() == mil::Argument::Binding::kName) {
            auto it = output_keys.find(b.name());
            const std::string target = it != output_keys.end() ? first_output[it->second] : b.name();
            if (--readers[target] == 0) eval.Forget(target);
          }
    }
    return absl::OkStatus();
  });
}

}  // namespace coremlz::engine
