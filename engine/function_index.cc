#include "engine/function_index.h"

#include "format/mil_program.h"
#include "format/tensor.h"

namespace coremlz::engine {
namespace mil = CoreML::Specification::MILSpec;

namespace {

std::optional<int64_t> ConstInt(const FunctionIndex& idx, const mil::Operation& op, const std::string& input) {
  auto in = op.inputs().find(input);
  if (in == op.inputs().end() || in->second.arguments_size() != 1) return std::nullopt;
  const mil::Argument::Binding& b = in->second.arguments(0);
  const mil::Value* v = nullptr;
  if (b.binding_case() == mil::Argument::Binding::kValue) {
    v = &b.value();
  } else {
    auto it = idx.const_values.find(b.name());
    if (it == idx.const_values.end()) return std::nullopt;
    v = it->second;
  }
  if (!v->has_immediatevalue()) return std::nullopt;
  auto t = format::DecodeImmediateTensor(*v);
  if (!t.ok()) return std::nullopt;
  auto ints = format::ToInts(format::View(*t));
  if (!ints.ok() || ints->size() != 1) return std::nullopt;
  return (*ints)[0];
}

// Output/input channel axes of a weight as its consumer uses it (Core ML
// tools' rules): conv_transpose stores [Cin, Cout/g, ...]; matmul depends on
// the side and the transpose flags; everything else is [Cout, Cin, ...].
std::pair<int, int> AxesFor(const FunctionIndex& idx, const mil::Operation& op, const std::string& input, size_t rank) {
  int out = 0, in = 1;
  if (op.type() == "conv_transpose") {
    out = 1;
    in = 0;
  } else if (op.type() == "matmul") {
    if (input == "y") {
      const bool t = ConstInt(idx, op, "transpose_y").value_or(0) != 0;
      out = t ? -2 : -1;
      in = t ? -1 : -2;
    } else {
      const bool t = ConstInt(idx, op, "transpose_x").value_or(0) != 0;
      out = t ? -1 : -2;
      in = t ? -2 : -1;
    }
  }
  const int r = static_cast<int>(rank);
  if (out < 0) out += r;
  if (in < 0) in += r;
  return {out, in};
}

}  // namespace

absl::StatusOr<ProgramIndex> IndexFunctions(const mil::Program& program) {
  ProgramIndex index;
  absl::Status walked = format::ForEachBlock(program, [&](const mil::Block* block, const format::BlockContext& ctx) -> absl::Status {
    FunctionIndex& fi = index[ctx.function];
    for (const std::string& o : block->outputs()) fi.block_outputs.insert(o);
    for (const mil::Operation& op : block->operations()) {
      if (op.type() == "const" && op.outputs_size() == 1) {
        auto val = op.attributes().find("val");
        if (val != op.attributes().end()) fi.const_values[op.outputs(0).name()] = &val->second;
      }
      for (const auto& [input, arg] : op.inputs()) {
        for (const auto& b : arg.arguments()) {
          if (b.binding_case() == mil::Argument::Binding::kName) fi.consumers[b.name()].push_back({&op, input});
        }
      }
    }
    return absl::OkStatus();
  });
  if (!walked.ok()) return walked;
  return index;
}

WeightUse DescribeUse(const FunctionIndex& fi, const std::string& name, size_t rank) {
  WeightUse use;
  auto consumers = fi.consumers.find(name);
  if (consumers == fi.consumers.end()) return use;
  for (const auto& [cop, input] : consumers->second) {
    ConsumerInfo ci;
    ci.op_type = cop->type();
    ci.op_name = format::OpName(*cop);
    ci.input = input;
    if (cop->type() == "conv" || cop->type() == "conv_transpose") ci.conv_groups = ConstInt(fi, *cop, "groups").value_or(1);
    use.feeds_constexpr |= format::IsConstexprOp(cop->type());
    use.consumers.push_back(ci);
  }
  // Channel axes must agree across consumers.
  for (size_t i = 0; i < consumers->second.size(); ++i) {
    auto [o, in] = AxesFor(fi, *consumers->second[i].first, consumers->second[i].second, rank);
    if (i == 0) {
      use.out_axis = o;
      use.in_axis = in;
    } else if (use.out_axis != o || use.in_axis != in) {
      use.out_axis = use.in_axis = -1;
    }
  }
  return use;
}

}  // namespace coremlz::engine
