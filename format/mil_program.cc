#include "format/mil_program.h"

#include <algorithm>
#include <map>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace coremlz::format {
namespace mil = CoreML::Specification::MILSpec;
namespace {

google::protobuf::RepeatedPtrField<mil::Operation>* MutableOrConst(mil::Block* b) {
  return b->mutable_operations();
}
const google::protobuf::RepeatedPtrField<mil::Operation>* MutableOrConst(const mil::Block* b) {
  return &b->operations();
}
google::protobuf::RepeatedPtrField<mil::Block>& Blocks(mil::Operation& op) { return *op.mutable_blocks(); }
const google::protobuf::RepeatedPtrField<mil::Block>& Blocks(const mil::Operation& op) { return op.blocks(); }
mil::Block* BlockOf(mil::Program* p, const std::string& f, const std::string& key) {
  return &(*(*p->mutable_functions())[f].mutable_block_specializations())[key];
}
const mil::Block* BlockOf(const mil::Program* p, const std::string& f, const std::string& key) {
  return &p->functions().at(f).block_specializations().at(key);
}

// Shared by the const and mutable walks.
template <typename BlockT, typename Fn>
absl::Status ForEachBlockIn(BlockT* block, BlockContext ctx, const Fn& fn) {
  if (ctx.depth > 64) return absl::InvalidArgumentError("program blocks nest deeper than 64 levels");
  RETURN_IF_ERROR(fn(block, ctx));
  BlockContext inner = ctx;
  ++inner.depth;
  for (auto& op : *MutableOrConst(block)) {
    for (auto& nested : Blocks(op)) RETURN_IF_ERROR(ForEachBlockIn(&nested, inner, fn));
  }
  return absl::OkStatus();
}

template <typename ProgramT, typename Fn>
absl::Status WalkProgram(ProgramT* program, const Fn& fn) {
  // Sorted for a deterministic order (proto maps are unordered).
  std::vector<std::string> names;
  for (const auto& [name, f] : program->functions()) names.push_back(name);
  std::sort(names.begin(), names.end());
  for (const std::string& name : names) {
    const mil::Function& f = program->functions().at(name);
    std::vector<std::string> keys;
    for (const auto& [key, b] : f.block_specializations()) keys.push_back(key);
    std::sort(keys.begin(), keys.end());
    for (const std::string& key : keys) {
      BlockContext ctx{name, key, 0};
      RETURN_IF_ERROR(ForEachBlockIn(BlockOf(program, name, key), ctx, fn));
    }
  }
  return absl::OkStatus();
}

// Reads a tensor value's type and storage facts, resolving blobs.
absl::StatusOr<HeldTensor> DescribeValue(const mil::Value& value, absl::string_view input,
                                         const BlobResolver& resolve) {
  HeldTensor held;
  held.input = std::string(input);
  ASSIGN_OR_RETURN(TensorTypeInfo info, ReadTensorType(value.type()));
  held.type = info.type;
  held.shape = info.shape;
  ASSIGN_OR_RETURN(uint64_t count, ElementCount(info.shape));
  if (value.has_blobfilevalue()) {
    held.in_blob = true;
    held.blob = {value.blobfilevalue().filename(), value.blobfilevalue().offset()};
    ASSIGN_OR_RETURN(BlobMetadata meta, resolve(held.blob));
    if (meta.type != info.type) {
      return absl::InvalidArgumentError(absl::StrCat(
          "declared ", ElementTypeName(info.type), " but the blob at offset ", held.blob.offset,
          " of ", held.blob.file_name, " holds ", ElementTypeName(meta.type)));
    }
    if (meta.element_count() != count) {
      return absl::InvalidArgumentError(absl::StrCat(
          "shape ", ShapeString(info.shape), " needs ", count, " elements but the blob at offset ",
          held.blob.offset, " of ", held.blob.file_name, " holds ", meta.element_count()));
    }
    held.stored_bytes = meta.size_in_bytes;
  } else if (value.has_immediatevalue()) {
    if (info.type == ElementType::kString) {
      held.stored_bytes = 0;
      for (const std::string& s : value.immediatevalue().tensor().strings().values()) held.stored_bytes += s.size();
    } else {
      ASSIGN_OR_RETURN(held.stored_bytes, StorageBytes(info.type, count));
    }
  } else {
    return absl::InvalidArgumentError("tensor value has neither immediate data nor a blob reference");
  }
  return held;
}

absl::Status WithOp(absl::Status s, const BlockContext& ctx, const mil::Operation& op, absl::string_view name) {
  if (s.ok()) return s;
  return absl::Status(s.code(), absl::StrCat("function ", ctx.function, ", op ", op.type(), " \"",
                                             name, "\": ", s.message()));
}

// One function body's names, for ValidateProgramGraph.
class GraphChecker {
 public:
  GraphChecker(const std::string& function, const mil::Function& f) : function_(function), f_(f) {}

  absl::Status Check(const mil::Block& body) {
    for (const mil::NamedValueType& in : f_.inputs()) {
      if (!defined_.emplace(in.name(), Definer{nullptr}).second) {
        return Bad(absl::StrCat("the input \"", in.name(), "\" is declared twice"));
      }
    }
    RETURN_IF_ERROR(CollectDefinitions(body, 0));
    for (const mil::NamedValueType& in : f_.inputs()) visible_.insert(in.name());
    return CheckReads(body, 0);
  }

 private:
  struct Definer {
    const mil::Operation* op;  // null: a function input
  };

  absl::Status Bad(absl::string_view what) const {
    return absl::InvalidArgumentError(absl::StrCat("function ", function_, ": ", what));
  }
  static std::string Describe(const mil::Operation& op) {
    return absl::StrCat("op ", op.type(), " \"", OpName(op), "\"");
  }
  std::string DescribeDefiner(const Definer& d) const {
    return d.op == nullptr ? std::string("the function's input") : Describe(*d.op);
  }

  absl::Status CollectDefinitions(const mil::Block& block, int depth) {
    if (depth > 64) return Bad("blocks nest deeper than 64 levels");
    for (const mil::Operation& op : block.operations()) {
      for (const mil::NamedValueType& out : op.outputs()) {
        auto [it, fresh] = defined_.emplace(out.name(), Definer{&op});
        if (!fresh) {
          return Bad(absl::StrCat(Describe(op), " defines \"", out.name(), "\", which ", DescribeDefiner(it->second),
                                  " already defines: every value needs a name of its own"));
        }
      }
      for (const mil::Block& nested : op.blocks()) RETURN_IF_ERROR(CollectDefinitions(nested, depth + 1));
    }
    return absl::OkStatus();
  }

  absl::Status CheckReads(const mil::Block& block, int depth) {
    std::vector<std::string> added;
    for (const mil::NamedValueType& in : block.inputs()) {
      if (visible_.insert(in.name()).second) added.push_back(in.name());
    }
    for (int i = 0; i < block.operations_size(); ++i) {
      const mil::Operation& op = block.operations(i);
      for (const auto& [input, arg] : op.inputs()) {
        for (const mil::Argument::Binding& b : arg.arguments()) {
          if (b.binding_case() != mil::Argument::Binding::kName || visible_.count(b.name())) continue;
          return Bad(Unreadable(block, i, input, b.name()));
        }
      }
      for (const mil::Block& nested : op.blocks()) RETURN_IF_ERROR(CheckReads(nested, depth + 1));
      for (const mil::NamedValueType& out : op.outputs()) {
        if (visible_.insert(out.name()).second) added.push_back(out.name());
      }
    }
    for (const std::string& out : block.outputs()) {
      if (!visible_.count(out)) {
        return Bad(absl::StrCat(depth == 0 ? "the function's" : "a nested block's", " output \"", out,
                                "\" is not defined in its block"));
      }
    }
    for (const std::string& name : added) visible_.erase(name);
    return absl::OkStatus();
  }

  // Why op `i` of `block` cannot read `name`.
  std::string Unreadable(const mil::Block& block, int i, const std::string& input, const std::string& name) const {
    const mil::Operation& op = block.operations(i);
    const std::string reader = absl::StrCat(Describe(op), " reads \"", name, "\" (input \"", input, "\")");
    auto def = defined_.find(name);
    if (def == defined_.end()) return absl::StrCat(reader, ", which nothing defines");
    // Defined by this op or a later one of the same block: out of order, or
    // a cycle when the definer depends on the reader.
    int at = -1;
    for (int j = i; j < block.operations_size(); ++j) {
      if (&block.operations(j) == def->second.op) at = j;
    }
    if (at < 0) {
      return absl::StrCat(reader, ", which ", DescribeDefiner(def->second),
                          " defines where this op cannot see it (later, or inside another op's block)");
    }
    if (at == i || DependsOn(block, at, i)) {
      return absl::StrCat(reader, ", which ", DescribeDefiner(def->second),
                          " computes from its output: the ops form a cycle");
    }
    return absl::StrCat(reader, " before ", DescribeDefiner(def->second),
                        " defines it: ops must come in dependency order");
  }

  // Whether op `from` of `block` reads, directly or through other ops of the
  // block, an output of op `target`.
  static bool DependsOn(const mil::Block& block, int from, int target) {
    absl::flat_hash_map<std::string, int> producer;
    for (int j = 0; j < block.operations_size(); ++j) {
      for (const mil::NamedValueType& out : block.operations(j).outputs()) producer.emplace(out.name(), j);
    }
    std::vector<bool> seen(block.operations_size(), false);
    std::vector<int> stack = {from};
    while (!stack.empty()) {
      const int j = stack.back();
      stack.pop_back();
      if (j == target) return true;
      if (seen[j]) continue;
      seen[j] = true;
      for (const auto& [input, arg] : block.operations(j).inputs()) {
        for (const mil::Argument::Binding& b : arg.arguments()) {
          if (b.binding_case() != mil::Argument::Binding::kName) continue;
          auto p = producer.find(b.name());
          if (p != producer.end()) stack.push_back(p->second);
        }
      }
    }
    return false;
  }

  const std::string& function_;
  const mil::Function& f_;
  absl::flat_hash_map<std::string, Definer> defined_;
  absl::flat_hash_set<std::string> visible_;
};

}  // namespace

absl::Status ValidateProgramGraph(const mil::Program& program) {
  std::vector<std::string> names;
  for (const auto& [name, f] : program.functions()) names.push_back(name);
  std::sort(names.begin(), names.end());
  for (const std::string& name : names) {
    const mil::Function& f = program.functions().at(name);
    std::vector<std::string> keys;
    for (const auto& [key, b] : f.block_specializations()) keys.push_back(key);
    std::sort(keys.begin(), keys.end());
    for (const std::string& key : keys) {
      // Each specialisation is a whole alternative body of the function.
      const std::string where = keys.size() > 1 ? absl::StrCat(name, " (", key, ")") : name;
      GraphChecker checker(where, f);
      RETURN_IF_ERROR(checker.Check(f.block_specializations().at(key)));
    }
  }
  return absl::OkStatus();
}

absl::Status ForEachBlock(mil::Program* program,
                          const std::function<absl::Status(mil::Block*, const BlockContext&)>& fn) {
  return WalkProgram(program, fn);
}

absl::Status ForEachBlock(const mil::Program& program,
                          const std::function<absl::Status(const mil::Block*, const BlockContext&)>& fn) {
  return WalkProgram(&program, fn);
}

std::string OpName(const mil::Operation& op) {
  auto it = op.attributes().find("name");
  if (it != op.attributes().end() && it->second.has_immediatevalue() &&
      it->second.immediatevalue().tensor().strings().values_size() == 1) {
    return it->second.immediatevalue().tensor().strings().values(0);
  }
  return op.outputs_size() > 0 ? op.outputs(0).name() : std::string();
}

absl::StatusOr<std::string> SingleOutputName(const mil::Operation& op) {
  if (op.outputs_size() != 1) {
    return absl::InvalidArgumentError(absl::StrCat(op.type(), " op has ", op.outputs_size(),
                                                   " outputs, expected 1"));
  }
  return op.outputs(0).name();
}

absl::StatusOr<std::vector<ProgramWeight>> ListProgramWeights(const mil::Program& program,
                                                              const BlobResolver& resolve,
                                                              bool include_small) {
  std::vector<ProgramWeight> weights;
  // Per block: output name -> index in `weights`, for consumer lookup.
  struct BlobSpan {
    uint64_t begin, end;
    std::string owner;
  };
  std::map<std::string, std::vector<BlobSpan>> spans_by_file;
  absl::flat_hash_map<std::string, size_t> by_name;  // keyed "function/block/name"

  RETURN_IF_ERROR(ForEachBlock(program, [&](const mil::Block* block, const BlockContext& ctx) -> absl::Status {
    for (const mil::Operation& op : block->operations()) {
      const bool is_const = op.type() == "const";
      const bool is_constexpr = IsConstexprOp(op.type());
      // Record consumers of earlier weights.
      for (const auto& [input_name, arg] : op.inputs()) {
        for (const mil::Argument::Binding& b : arg.arguments()) {
          if (b.binding_case() != mil::Argument::Binding::kName) continue;
          auto it = by_name.find(absl::StrCat(ctx.function, "/", ctx.specialization, "/", b.name()));
          if (it != by_name.end()) weights[it->second].consumers.push_back(absl::StrCat(op.type(), ".", input_name));
        }
      }
      if (!is_const && !is_constexpr) continue;
      // const ops have one output; some constexpr ops (lut_to_sparse,
      // sparse_blockwise_shift_scale) have two: they are known by the op name.
      if (op.outputs_size() == 0 || (is_const && op.outputs_size() != 1)) {
        return absl::InvalidArgumentError(absl::StrCat(op.type(), " op in function ", ctx.function,
                                                       " has ", op.outputs_size(), " outputs"));
      }
      std::string name = OpName(op);
      ProgramWeight w;
      w.function = ctx.function;
      w.block = ctx.specialization;
      w.name = name;
      w.op_type = op.type();
      if (is_const) {
        auto val = op.attributes().find("val");
        if (val == op.attributes().end()) {
          return WithOp(absl::InvalidArgumentError("const op has no \"val\" attribute"), ctx, op, name);
        }
        if (!val->second.type().has_tensortype()) continue;  // tuples, lists: not weights
        auto held = DescribeValue(val->second, "val", resolve);
        if (!held.ok()) return WithOp(held.status(), ctx, op, name);
        if (!include_small) {
          auto n = ElementCount(held->shape);
          if (!held->in_blob && (held->type == ElementType::kString || held->type == ElementType::kBool ||
                                 (n.ok() && *n < 2))) {
            continue;
          }
        }
        w.type = held->type;
        w.shape = held->shape;
        w.tensors.push_back(*held);
      } else {
        auto out = ReadTensorType(op.outputs(0).type());
        if (!out.ok()) return WithOp(out.status(), ctx, op, name);
        w.type = out->type;
        w.shape = out->shape;
        // iOS18 constexpr ops bind their parameters as inputs; iOS16/17 ones
        // store them as attributes next to "name".
        std::vector<std::pair<std::string, const mil::Value*>> params;
        for (const auto& [input_name, arg] : op.inputs()) {
          for (const mil::Argument::Binding& b : arg.arguments()) {
            if (b.binding_case() == mil::Argument::Binding::kValue) params.emplace_back(input_name, &b.value());
          }
        }
        for (const auto& [attr_name, value] : op.attributes()) {
          if (attr_name != "name") params.emplace_back(attr_name, &value);
        }
        std::sort(params.begin(), params.end());
        for (const auto& [param, value] : params) {
          if (!value->type().has_tensortype()) continue;
          auto held = DescribeValue(*value, param, resolve);
          if (!held.ok()) return WithOp(held.status(), ctx, op, name);
          w.tensors.push_back(*held);
        }
      }
      for (const HeldTensor& t : w.tensors) {
        w.stored_bytes += t.stored_bytes;
        if (t.in_blob) {
          auto meta = resolve(t.blob);
          if (!meta.ok()) return WithOp(meta.status(), ctx, op, name);
          spans_by_file[t.blob.file_name].push_back(
              {meta->offset, meta->data_offset + meta->size_in_bytes, name});
        }
      }
      for (const mil::NamedValueType& out : op.outputs()) {
        by_name[absl::StrCat(ctx.function, "/", ctx.specialization, "/", out.name())] = weights.size();
      }
      weights.push_back(std::move(w));
    }
    return absl::OkStatus();
  }));

  // Distinct blobs must not overlap. The same offset referenced twice is a
  // shared weight, which is fine.
  for (auto& [file, spans] : spans_by_file) {
    std::sort(spans.begin(), spans.end(),
              [](const BlobSpan& a, const BlobSpan& b) { return a.begin < b.begin; });
    for (size_t i = 1; i < spans.size(); ++i) {
      if (spans[i].begin == spans[i - 1].begin) continue;
      if (spans[i].begin < spans[i - 1].end) {
        return absl::InvalidArgumentError(absl::StrCat(
            file, ": blob at offset ", spans[i].begin, " (\"", spans[i].owner,
            "\") overlaps the blob at offset ", spans[i - 1].begin, " (\"", spans[i - 1].owner,
            "\"), which ends at ", spans[i - 1].end));
      }
    }
  }
  return weights;
}

}  // namespace coremlz::format
