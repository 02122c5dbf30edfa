#include "execute/program_executor.h"

#include <algorithm>
#include <functional>
#include <set>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "format/mil_program.h"

namespace coremlz::execute {

namespace MIL = CoreML::Specification::MILSpec;

// One non-constant op, ready to run.
struct ProgramExecutor::Step {
  // State ops need the session's buffers and control flow runs nested
  // blocks, so the executor runs those itself.
  enum class Kind { kKernel, kReadState, kWriteState, kWhileLoop, kCond };
  Kind kind = Kind::kKernel;
  int state = -1;  // index into inputs_ of the state a state op works on
  std::string type;
  std::string location;  // "op 'x' (type t) in function f, block b, op #n"
  int opset = 15;
  OpKernel kernel = nullptr;
  // Input name -> slots (variadic inputs hold several).
  std::vector<std::pair<std::string, std::vector<int>>> args;
  std::vector<OutputDecl> outputs;
  std::vector<int> output_slots;
  std::vector<int> free_after;  // intermediates whose last use is this op
  // while_loop: {condition, body}; cond: {true branch, false branch}.
  std::vector<Block> blocks;
};

// A nested block: its inputs (loop variables), its ops, what it returns, and
// the values it makes (released when a run of the block ends).
struct ProgramExecutor::Block {
  std::vector<int> input_slots;
  std::vector<Step> steps;
  std::vector<int> output_slots;
  std::vector<int> locals;
};

struct ProgramExecutor::RunState {
  std::vector<std::shared_ptr<const Tensor>> values;
  Session* session = nullptr;
  RunStats stats;
  int64_t live = 0;
  int64_t live_bytes = 0;
};

ProgramExecutor::~ProgramExecutor() = default;

namespace {

// "CoreML8" -> 18: the iOS generation of an opset name.
int OpsetVersion(const std::string& opset) {
  int n = 0;
  if (absl::StartsWith(opset, "CoreML") && absl::SimpleAtoi(opset.substr(6), &n)) return n + 10;
  return 15;
}

absl::StatusOr<OutputDecl> DeclOf(const std::string& name, const MIL::ValueType& type, bool* is_state) {
  const MIL::ValueType* t = &type;
  if (is_state) *is_state = false;
  if (t->has_statetype()) {
    if (is_state) *is_state = true;
    t = &t->statetype().wrappedtype();
  }
  if (t->has_listtype()) {
    OutputDecl d;
    d.name = name;
    d.dtype = DType::kList;
    return d;
  }
  if (!t->has_tensortype()) {
    return absl::InvalidArgumentError(absl::StrCat("value '", name, "' is not a tensor or a list (tuples and dictionaries are not supported)"));
  }
  const MIL::TensorType& tt = t->tensortype();
  auto et = format::FromMilDataType(tt.datatype());
  if (!et) return absl::InvalidArgumentError(absl::StrCat("value '", name, "' has an unknown data type"));
  OutputDecl d;
  d.name = name;
  d.dtype = ComputeType(*et);
  d.shape_known = tt.rank() >= 0 && tt.dimensions_size() == tt.rank();
  for (const MIL::Dimension& dim : tt.dimensions()) {
    if (dim.has_constant()) {
      d.shape.push_back(static_cast<int64_t>(dim.constant().size()));
    } else {
      d.shape.push_back(-1);
      d.shape_known = false;
    }
  }
  return d;
}

absl::StatusOr<Tensor> ReadValue(const MIL::Value& value, engine::ValueReader* reader) {
  if (value.has_immediatevalue() && value.immediatevalue().has_tensor() &&
      value.immediatevalue().tensor().has_strings()) {
    return StringsFromImmediate(value);
  }
  ASSIGN_OR_RETURN(format::Tensor stored, reader->Read(value));
  return FromStored(stored);
}

absl::Status WithLocation(const absl::Status& s, const std::string& location) {
  return absl::Status(s.code(), absl::StrCat(location, ": ", s.message()));
}

int64_t Bytes(const Tensor& t) { return t.size() * (t.dtype() == DType::kString ? 16 : 4); }

// A program is untrusted: a loop whose condition never turns false must end.
constexpr int64_t kMaxLoopIterations = int64_t{1} << 20;

// Only these take list values; any other kernel given a list is refused
// rather than reading a list as an empty tensor.
bool TakesLists(const std::string& type) {
  return type == "make_list" || type == "identity" || absl::StartsWith(type, "list_");
}

}  // namespace

std::string DefaultFunction(const CoreML::Specification::Model& model) {
  const auto& functions = model.mlprogram().functions();
  const std::string& named = model.description().defaultfunctionname();
  if (!named.empty()) return named;
  if (functions.count("main") || functions.size() != 1) return "main";
  return functions.begin()->first;
}

absl::StatusOr<std::unique_ptr<ProgramExecutor>> ProgramExecutor::Load(format::MlPackage* package,
                                                                       const std::string& function) {
  const CoreML::Specification::Model& model = package->model();
  if (!model.has_mlprogram()) {
    return absl::UnimplementedError(
        "the model is not an ML Program; NeuralNetwork models are not executed by the reference executor yet");
  }
  engine::PackageValueReader reader(package);
  return Load(model.mlprogram(), &reader, function.empty() ? DefaultFunction(model) : function);
}

absl::StatusOr<std::unique_ptr<ProgramExecutor>> ProgramExecutor::Load(const MIL::Program& program,
                                                                       engine::ValueReader* reader,
                                                                       const std::string& function) {
  auto fit = program.functions().find(function);
  if (fit == program.functions().end()) {
    std::vector<std::string> names;
    for (const auto& [name, f] : program.functions()) names.push_back(name);
    return absl::InvalidArgumentError(absl::StrCat("the program has no function '", function, "' (it has: ",
                                                   absl::StrJoin(names, ", "), ")"));
  }
  const MIL::Function& fn = fit->second;
  std::string block_key = fn.opset();
  auto bit = fn.block_specializations().find(block_key);
  if (bit == fn.block_specializations().end()) {
    if (fn.block_specializations().size() != 1) {
      return absl::InvalidArgumentError(absl::StrCat("function '", function, "' has no block for its opset '", fn.opset(), "'"));
    }
    bit = fn.block_specializations().begin();
    block_key = bit->first;
  }
  const MIL::Block& block = bit->second;
  const int opset = OpsetVersion(block_key);

  std::unique_ptr<ProgramExecutor> ex(new ProgramExecutor);
  ex->function_ = function;
  absl::flat_hash_map<std::string, int> slot_of;
  auto new_slot = [&](const std::string& name) -> absl::StatusOr<int> {
    if (slot_of.count(name)) return absl::InvalidArgumentError(absl::StrCat("value '", name, "' is defined twice"));
    const int slot = static_cast<int>(ex->constants_.size());
    ex->constants_.emplace_back();
    slot_of[name] = slot;
    return slot;
  };

  for (const MIL::NamedValueType& in : fn.inputs()) {
    bool is_state = false;
    ASSIGN_OR_RETURN(OutputDecl d, DeclOf(in.name(), in.type(), &is_state));
    ASSIGN_OR_RETURN(int slot, new_slot(in.name()));
    ex->inputs_.push_back({d.name, d.dtype, d.shape, is_state});
    ex->input_slots_.push_back(slot);
  }

  engine::ConstexprEvaluator constexprs(reader);
  const OpRegistry& registry = OpRegistry::Default();
  std::vector<std::string> missing;  // "type" of every op without a kernel
  std::string first_missing;
  std::function<absl::Status(const MIL::Operation&, Step::Kind, const std::string&, const std::string&, Step*)>
      compile_nested;
  std::function<absl::Status(const MIL::Block&, const std::string&, std::vector<Step>*, std::vector<int>*)> compile;
  // while_loop: blocks {condition, body}, each taking the loop variables;
  // the condition returns one bool, the body the next loop variables.
  // cond: blocks {true, false}, no inputs, each returning the op's outputs.
  compile_nested = [&](const MIL::Operation& op, Step::Kind kind, const std::string& location,
                       const std::string& label, Step* step) -> absl::Status {
    const bool loop = kind == Step::Kind::kWhileLoop;
    auto arg = std::find_if(step->args.begin(), step->args.end(),
                            [&](const auto& a) { return a.first == (loop ? "loop_vars" : "pred"); });
    if (arg == step->args.end()) {
      return absl::InvalidArgumentError(absl::StrCat(location, ": no '", loop ? "loop_vars" : "pred", "' input"));
    }
    const size_t vars = loop ? arg->second.size() : 0;
    if (!loop && arg->second.size() != 1) return absl::InvalidArgumentError(absl::StrCat(location, ": 'pred' must be one value"));
    if (op.blocks_size() != 2) {
      return absl::UnimplementedError(absl::StrCat(location, ": a ", op.type(), " with ", op.blocks_size(),
                                                   " blocks is not implemented by the reference executor (2 expected)"));
    }
    // Both blocks of a loop may name their inputs alike (converters do).
    std::map<std::string, int> block_inputs;
    for (int b = 0; b < 2; ++b) {
      const MIL::Block& nested = op.blocks(b);
      Block compiled;
      if (static_cast<size_t>(nested.inputs_size()) != vars) {
        return absl::InvalidArgumentError(absl::StrCat(location, ": block ", b, " takes ", nested.inputs_size(),
                                                       " inputs, expected ", vars));
      }
      for (const MIL::NamedValueType& in : nested.inputs()) {
        RETURN_IF_ERROR(DeclOf(in.name(), in.type(), nullptr).status());
        auto shared = block_inputs.find(in.name());
        if (shared != block_inputs.end()) {
          compiled.input_slots.push_back(shared->second);
          continue;
        }
        ASSIGN_OR_RETURN(int slot, new_slot(in.name()));
        block_inputs[in.name()] = slot;
        compiled.input_slots.push_back(slot);
      }
      RETURN_IF_ERROR(compile(nested, absl::StrCat(label, "/", format::OpName(op), "[", b, "]"), &compiled.steps,
                              &compiled.locals));
      for (const std::string& name : nested.outputs()) {
        auto it = slot_of.find(name);
        if (it == slot_of.end()) {
          return absl::InvalidArgumentError(absl::StrCat(location, ": block ", b, " returns '", name, "', which is not defined"));
        }
        compiled.output_slots.push_back(it->second);
      }
      const size_t want = loop ? (b == 0 ? 1 : vars) : static_cast<size_t>(op.outputs_size());
      if (compiled.output_slots.size() != want) {
        return absl::InvalidArgumentError(absl::StrCat(location, ": block ", b, " returns ", compiled.output_slots.size(),
                                                       " values, expected ", want));
      }
      step->blocks.push_back(std::move(compiled));
    }
    if (loop && static_cast<size_t>(op.outputs_size()) != vars) {
      return absl::InvalidArgumentError(absl::StrCat(location, ": ", op.outputs_size(), " outputs for ", vars, " loop variables"));
    }
    return absl::OkStatus();
  };
  // Compiles `block`'s ops into `steps`; values it defines are added to
  // `locals` when it is nested (null for the function's own block).
  compile = [&](const MIL::Block& block, const std::string& label, std::vector<Step>* steps,
                std::vector<int>* locals) -> absl::Status {
  for (int index = 0; index < block.operations_size(); ++index) {
    const MIL::Operation& op = block.operations(index);
    const std::string location = absl::StrCat("op '", format::OpName(op), "' (type ", op.type(), ") in function ",
                                              function, ", block ", label, ", op #", index);
    if (op.type() == "const") {
      ASSIGN_OR_RETURN(std::string name, format::SingleOutputName(op));
      auto val = op.attributes().find("val");
      if (val == op.attributes().end()) return absl::InvalidArgumentError(absl::StrCat(location, ": no 'val'"));
      auto t = ReadValue(val->second, reader);
      if (!t.ok()) return WithLocation(t.status(), location);
      ASSIGN_OR_RETURN(int slot, new_slot(name));
      ex->constants_[slot] = std::make_shared<const Tensor>(std::move(*t));
      continue;
    }
    if (format::IsConstexprOp(op.type())) {
      absl::Status s = constexprs.Evaluate(op);
      if (!s.ok()) {
        // An unknown constexpr op is an op we do not implement, not a bad program.
        if (s.code() == absl::StatusCode::kUnimplemented ||
            absl::StrContains(s.message(), "unsupported constexpr op")) {
          if (first_missing.empty()) first_missing = location;
          missing.push_back(op.type());
          for (const MIL::NamedValueType& o : op.outputs()) {
            if (!slot_of.count(o.name())) (void)new_slot(o.name());
          }
          continue;
        }
        return WithLocation(s, location);
      }
      for (const MIL::NamedValueType& o : op.outputs()) {
        const format::Tensor* stored = constexprs.Output(o.name());
        if (!stored) return absl::InternalError(absl::StrCat(location, ": no value for '", o.name(), "'"));
        auto t = FromStored(*stored);
        if (!t.ok()) return WithLocation(t.status(), location);
        ASSIGN_OR_RETURN(int slot, new_slot(o.name()));
        ex->constants_[slot] = std::make_shared<const Tensor>(std::move(*t));
      }
      continue;
    }
    Step step;
    step.type = op.type();
    step.location = location;
    step.opset = opset;
    if (op.type() == "read_state") step.kind = Step::Kind::kReadState;
    if (op.type() == "write_state") step.kind = Step::Kind::kWriteState;
    if (op.type() == "while_loop") step.kind = Step::Kind::kWhileLoop;
    if (op.type() == "cond") step.kind = Step::Kind::kCond;
    step.kernel = op.blocks_size() > 0 ? nullptr : registry.Find(op.type());
    if (!step.kernel && step.kind == Step::Kind::kKernel) {
      if (first_missing.empty()) first_missing = location;
      missing.push_back(op.type());
      // Name what nested blocks (loop and branch bodies) would need too.
      std::function<void(const MIL::Operation&)> nested = [&](const MIL::Operation& o) {
        for (const MIL::Block& b : o.blocks()) {
          for (const MIL::Operation& inner : b.operations()) {
            if (inner.type() != "const" && !format::IsConstexprOp(inner.type()) &&
                (inner.blocks_size() > 0 || !registry.Find(inner.type()))) {
              missing.push_back(inner.type());
            }
            nested(inner);
          }
        }
      };
      nested(op);
    }
    // Inputs in name order (the proto map's order is unspecified).
    std::vector<std::string> input_names;
    for (const auto& [name, arg] : op.inputs()) input_names.push_back(name);
    std::sort(input_names.begin(), input_names.end());
    for (const std::string& name : input_names) {
      const MIL::Argument& arg = op.inputs().at(name);
      std::vector<int> slots;
      for (const MIL::Argument::Binding& b : arg.arguments()) {
        if (b.binding_case() == MIL::Argument::Binding::kName) {
          auto it = slot_of.find(b.name());
          if (it == slot_of.end()) {
            return absl::InvalidArgumentError(absl::StrCat(location, ": input '", name, "' names '", b.name(),
                                                           "', which is not defined before it"));
          }
          slots.push_back(it->second);
        } else if (b.binding_case() == MIL::Argument::Binding::kValue) {
          auto t = ReadValue(b.value(), reader);
          if (!t.ok()) return WithLocation(t.status(), location);
          const int slot = static_cast<int>(ex->constants_.size());
          ex->constants_.push_back(std::make_shared<const Tensor>(std::move(*t)));
          slots.push_back(slot);
        } else {
          return absl::InvalidArgumentError(absl::StrCat(location, ": input '", name, "' has an empty binding"));
        }
      }
      step.args.emplace_back(name, std::move(slots));
    }
    if (step.kind == Step::Kind::kWhileLoop || step.kind == Step::Kind::kCond) {
      RETURN_IF_ERROR(compile_nested(op, step.kind, location, label, &step));
    } else if (step.kind != Step::Kind::kKernel) {
      // The "input" argument names a state input of the function.
      auto in = std::find_if(step.args.begin(), step.args.end(), [](const auto& a) { return a.first == "input"; });
      if (in != step.args.end() && in->second.size() == 1) {
        for (size_t i = 0; i < ex->input_slots_.size(); ++i) {
          if (ex->input_slots_[i] == in->second[0] && ex->inputs_[i].is_state) step.state = static_cast<int>(i);
        }
      }
      if (step.state < 0) return absl::InvalidArgumentError(absl::StrCat(location, ": 'input' must name a state input"));
      const size_t want_outputs = step.kind == Step::Kind::kReadState ? 1 : 0;
      if (static_cast<size_t>(op.outputs_size()) != want_outputs) {
        return absl::InvalidArgumentError(absl::StrCat(location, ": must have ", want_outputs, " outputs"));
      }
    }
    for (const MIL::NamedValueType& o : op.outputs()) {
      auto d = DeclOf(o.name(), o.type(), nullptr);
      if (!d.ok()) {
        // Non-tensor outputs only matter if we could run the op.
        if (!step.kernel) d = OutputDecl{o.name()};
        else return WithLocation(d.status(), location);
      }
      ASSIGN_OR_RETURN(int slot, new_slot(o.name()));
      step.outputs.push_back(*d);
      step.output_slots.push_back(slot);
      if (locals) locals->push_back(slot);
    }
    steps->push_back(std::move(step));
  }
  return absl::OkStatus();
  };
  RETURN_IF_ERROR(compile(block, block_key, &ex->steps_, nullptr));
  if (!missing.empty()) {
    std::set<std::string> distinct(missing.begin(), missing.end());
    return absl::UnimplementedError(absl::StrCat(first_missing, " is not implemented by the reference executor",
                                                 " (op types without a kernel in this function: ",
                                                 absl::StrJoin(distinct, ", "), ")"));
  }

  for (const std::string& name : block.outputs()) {
    auto it = slot_of.find(name);
    if (it == slot_of.end()) {
      return absl::InvalidArgumentError(absl::StrCat("function '", function, "' returns '", name, "', which is not defined"));
    }
    ex->output_names_.push_back(name);
    ex->output_slots_.push_back(it->second);
  }

  for (const auto& [name, slot] : slot_of) {
    if (ex->constants_[slot]) ex->constant_slots_[name] = slot;
  }

  // Last use of each intermediate; outputs and constants are never freed.
  const int slots = static_cast<int>(ex->constants_.size());
  std::vector<int> last_use(slots, -1);
  std::vector<bool> keep(slots, false);
  for (int s : ex->output_slots_) keep[s] = true;
  for (int s : ex->input_slots_) keep[s] = true;  // owned by the caller
  for (int s = 0; s < slots; ++s) {
    if (ex->constants_[s]) keep[s] = true;
  }
  // A value read inside a nested block is in use until its op ends.
  std::function<void(const Step&, int)> mark_uses = [&](const Step& step, int at) {
    for (const auto& [name, arg_slots] : step.args) {
      for (int s : arg_slots) last_use[s] = at;
    }
    for (const Block& b : step.blocks) {
      for (int s : b.output_slots) last_use[s] = std::max(last_use[s], at);
      for (const Step& inner : b.steps) mark_uses(inner, at);
    }
  };
  for (size_t i = 0; i < ex->steps_.size(); ++i) {
    for (int s : ex->steps_[i].output_slots) last_use[s] = static_cast<int>(i);  // unused results die at once
    mark_uses(ex->steps_[i], static_cast<int>(i));
  }
  for (int s = 0; s < slots; ++s) {
    if (!keep[s] && last_use[s] >= 0) ex->steps_[last_use[s]].free_after.push_back(s);
  }
  return ex;
}

bool ProgramExecutor::is_stateful() const {
  for (const InputDecl& d : inputs_) {
    if (d.is_state) return true;
  }
  return false;
}

absl::StatusOr<std::map<std::string, Tensor>> ProgramExecutor::Run(const std::map<std::string, Tensor>& inputs,
                                                                   RunStats* stats) const {
  Session fresh;
  return Run(inputs, &fresh, stats);
}

absl::Status ProgramExecutor::BindInputs(const std::map<std::string, Tensor>& inputs, Session* session,
                                         std::vector<std::shared_ptr<const Tensor>>* bound) const {
  std::vector<std::shared_ptr<const Tensor>>& values = *bound;
  std::set<std::string> known;
  for (size_t i = 0; i < inputs_.size(); ++i) {
    const InputDecl& decl = inputs_[i];
    if (decl.is_state) {
      auto [it, created] = session->states_.try_emplace(decl.name);
      if (created) {
        if (NumElements(decl.shape) < 0 || std::count(decl.shape.begin(), decl.shape.end(), -1) > 0) {
          session->states_.erase(it);
          return absl::InvalidArgumentError(absl::StrCat("state '", decl.name, "' has no fixed shape to start from"));
        }
        absl::StatusOr<Tensor> zeros = Tensor::Allocate(decl.dtype, decl.shape);
        if (!zeros.ok()) {
          session->states_.erase(it);
          return absl::Status(zeros.status().code(), absl::StrCat("state '", decl.name, "': ", zeros.status().message()));
        }
        it->second = *std::move(zeros);
      }
      if (it->second.dtype() != decl.dtype || it->second.shape() != decl.shape) {
        return absl::InvalidArgumentError(absl::StrCat("state '", decl.name, "' holds ", DTypeName(it->second.dtype()),
                                                       format::ShapeString(it->second.shape()), ", the function declares ",
                                                       DTypeName(decl.dtype), format::ShapeString(decl.shape)));
      }
      // Aliases the session's buffer (a std::map node: its address is stable).
      values[input_slots_[i]] = std::shared_ptr<const Tensor>(&it->second, [](const Tensor*) {});
      continue;
    }
    known.insert(decl.name);
    auto it = inputs.find(decl.name);
    if (it == inputs.end()) return absl::InvalidArgumentError(absl::StrCat("missing input '", decl.name, "'"));
    const Tensor& t = it->second;
    if (t.dtype() != decl.dtype) {
      return absl::InvalidArgumentError(absl::StrCat("input '", decl.name, "' is ", DTypeName(t.dtype()),
                                                     ", the function takes ", DTypeName(decl.dtype)));
    }
    bool shape_ok = t.rank() == static_cast<int64_t>(decl.shape.size());
    for (size_t d = 0; shape_ok && d < decl.shape.size(); ++d) {
      shape_ok = decl.shape[d] < 0 || decl.shape[d] == t.dim(d);
    }
    if (!shape_ok) {
      return absl::InvalidArgumentError(absl::StrCat("input '", decl.name, "' has shape ", format::ShapeString(t.shape()),
                                                     ", the function takes ", format::ShapeString(decl.shape)));
    }
    // Aliases the caller's tensor for the run; never freed or modified.
    values[input_slots_[i]] = std::shared_ptr<const Tensor>(&t, [](const Tensor*) {});
  }
  for (const auto& [name, t] : inputs) {
    if (!known.count(name)) return absl::InvalidArgumentError(absl::StrCat("the function has no input '", name, "'"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::map<std::string, Tensor>> ProgramExecutor::Run(const std::map<std::string, Tensor>& inputs,
                                                                   Session* session, RunStats* stats) const {
  std::vector<std::shared_ptr<const Tensor>> values = constants_;
  RETURN_IF_ERROR(BindInputs(inputs, session, &values));
  RunState state;
  state.values = std::move(values);
  state.session = session;
  RETURN_IF_ERROR(RunSteps(steps_, &state));
  values = std::move(state.values);
  RunStats& local = state.stats;
  std::map<std::string, Tensor> out;
  for (size_t i = 0; i < output_slots_.size(); ++i) {
    const auto& v = values[output_slots_[i]];
    if (!v) return absl::InternalError(absl::StrCat("output '", output_names_[i], "' was not computed"));
    out[output_names_[i]] = *v;
  }
  if (stats) *stats = local;
  return out;
}

// One op on st->values, its results checked against the program's
// declarations; the caller stores them.
absl::StatusOr<std::vector<Tensor>> ProgramExecutor::Compute(const Step& step, RunState* st) const {
  if (step.kind == Step::Kind::kWriteState) {
    const InputDecl& decl = inputs_[step.state];
    auto data = std::find_if(step.args.begin(), step.args.end(), [](const auto& a) { return a.first == "data"; });
    if (data == step.args.end() || data->second.size() != 1 || !st->values[data->second[0]]) {
      return absl::InvalidArgumentError(absl::StrCat(step.location, ": needs one 'data' value"));
    }
    const Tensor& t = *st->values[data->second[0]];
    if (t.dtype() != decl.dtype || t.shape() != decl.shape) {
      return absl::InvalidArgumentError(absl::StrCat(step.location, ": writes ", DTypeName(t.dtype()),
                                                     format::ShapeString(t.shape()), " into state '", decl.name, "' of ",
                                                     DTypeName(decl.dtype), format::ShapeString(decl.shape)));
    }
    st->session->states_[decl.name] = t;  // in place: the aliasing value stays valid
  }
  std::vector<Tensor> produced;
  if (step.kind == Step::Kind::kReadState) {
    produced.push_back(st->session->states_.at(inputs_[step.state].name));
  } else if (step.kind == Step::Kind::kWhileLoop || step.kind == Step::Kind::kCond) {
    RETURN_IF_ERROR(RunControlFlow(step, st, &produced));
  } else if (step.kind == Step::Kind::kKernel) {
    OpContext ctx(step.type, step.opset, &step.outputs);
    for (const auto& [name, slots] : step.args) {
      std::vector<const Tensor*> bound;
      for (int s : slots) {
        if (!st->values[s]) return absl::InternalError(absl::StrCat(step.location, ": input '", name, "' was freed or never computed"));
        if (st->values[s]->is_list() && !TakesLists(step.type)) {
          return absl::InvalidArgumentError(absl::StrCat(step.location, ": input '", name, "' is a list"));
        }
        bound.push_back(st->values[s].get());
      }
      ctx.Bind(name, std::move(bound));
    }
    auto result = step.kernel(ctx);
    if (!result.ok()) return WithLocation(result.status(), step.location);
    produced = std::move(*result);
  }
  if (produced.size() != step.output_slots.size()) {
    return absl::InvalidArgumentError(absl::StrCat(step.location, ": produced ", produced.size(),
                                                   " outputs, the program declares ", step.output_slots.size()));
  }
  for (size_t i = 0; i < produced.size(); ++i) {
    const Tensor& t = produced[i];
    const OutputDecl& decl = step.outputs[i];
    bool shape_ok = !decl.shape_known || decl.shape == t.shape();
    if (!shape_ok || t.dtype() != decl.dtype) {
      return absl::InvalidArgumentError(absl::StrCat(step.location, ": output '", decl.name, "' is ", DTypeName(t.dtype()),
                                                     format::ShapeString(t.shape()), ", the program declares ",
                                                     DTypeName(decl.dtype), format::ShapeString(decl.shape)));
    }
  }
  return produced;
}

absl::Status ProgramExecutor::RunSteps(const std::vector<Step>& steps, RunState* st) const {
  for (const Step& step : steps) {
    ASSIGN_OR_RETURN(std::vector<Tensor> produced, Compute(step, st));
    for (size_t i = 0; i < produced.size(); ++i) {
      Tensor& t = produced[i];
      st->live += 1;
      st->live_bytes += Bytes(t);
      st->values[step.output_slots[i]] = std::make_shared<const Tensor>(std::move(t));
    }
    st->stats.peak_live_tensors = std::max(st->stats.peak_live_tensors, st->live);
    st->stats.peak_live_bytes = std::max(st->stats.peak_live_bytes, st->live_bytes);
    for (int s : step.free_after) {
      if (st->values[s]) {
        st->live -= 1;
        st->live_bytes -= Bytes(*st->values[s]);
        st->values[s].reset();
      }
    }
    ++st->stats.ops_run;
  }
  return absl::OkStatus();
}

absl::Status ProgramExecutor::RunBlock(const Block& block, const std::vector<std::shared_ptr<const Tensor>>& inputs,
                                       RunState* st, std::vector<std::shared_ptr<const Tensor>>* outputs) const {
  for (size_t i = 0; i < inputs.size(); ++i) st->values[block.input_slots[i]] = inputs[i];
  absl::Status s = RunSteps(block.steps, st);
  outputs->clear();
  if (s.ok()) {
    for (int slot : block.output_slots) {
      if (!st->values[slot]) {
        s = absl::InternalError("a nested block's result was not computed");
        break;
      }
      outputs->push_back(st->values[slot]);
    }
  }
  // What the block made dies with this run of it (its results live on in
  // `outputs`).
  for (int slot : block.locals) {
    if (st->values[slot]) {
      st->live -= 1;
      st->live_bytes -= Bytes(*st->values[slot]);
      st->values[slot].reset();
    }
  }
  for (int slot : block.input_slots) st->values[slot].reset();
  return s;
}

absl::Status ProgramExecutor::RunControlFlow(const Step& step, RunState* st, std::vector<Tensor>* produced) const {
  std::vector<std::shared_ptr<const Tensor>> vars;
  const bool loop = step.kind == Step::Kind::kWhileLoop;
  for (const auto& [name, slots] : step.args) {
    if (name != (loop ? "loop_vars" : "pred")) continue;
    for (int s : slots) {
      if (!st->values[s]) return absl::InternalError(absl::StrCat(step.location, ": input '", name, "' was not computed"));
      vars.push_back(st->values[s]);
    }
  }
  auto truth = [&](const std::shared_ptr<const Tensor>& t) -> absl::StatusOr<bool> {
    if (!t || t->is_list() || t->dtype() == DType::kString || t->size() != 1) {
      return absl::InvalidArgumentError(absl::StrCat(step.location, ": the condition must be one boolean"));
    }
    return t->AsDouble(0) != 0;
  };
  std::vector<std::shared_ptr<const Tensor>> results;
  if (!loop) {
    ASSIGN_OR_RETURN(bool pred, truth(vars.at(0)));
    RETURN_IF_ERROR(RunBlock(step.blocks[pred ? 0 : 1], {}, st, &results));
  } else {
    for (int64_t iteration = 0;; ++iteration) {
      if (iteration == kMaxLoopIterations) {
        return absl::ResourceExhaustedError(absl::StrCat(step.location, ": the loop ran ", kMaxLoopIterations,
                                                         " iterations without its condition turning false"));
      }
      std::vector<std::shared_ptr<const Tensor>> go;
      RETURN_IF_ERROR(RunBlock(step.blocks[0], vars, st, &go));
      ASSIGN_OR_RETURN(bool more, truth(go.at(0)));
      if (!more) break;
      RETURN_IF_ERROR(RunBlock(step.blocks[1], vars, st, &results));
      vars = std::move(results);
    }
    results = std::move(vars);
  }
  for (const auto& r : results) produced->push_back(*r);
  return absl::OkStatus();
}

int ProgramExecutor::ConstantSlot(const std::string& name) const {
  auto it = constant_slots_.find(name);
  return it == constant_slots_.end() ? -1 : it->second;
}

// Every slot an op reads, its nested blocks' reads included.
void ProgramExecutor::SlotsRead(const Step& step, std::vector<int>* slots) {
  for (const auto& [name, arg_slots] : step.args) slots->insert(slots->end(), arg_slots.begin(), arg_slots.end());
  for (const Block& b : step.blocks) {
    slots->insert(slots->end(), b.output_slots.begin(), b.output_slots.end());
    for (const Step& inner : b.steps) SlotsRead(inner, slots);
  }
}

std::vector<ProgramExecutor::ArgumentRef> ProgramExecutor::UsesOf(int slot) const {
  std::vector<ArgumentRef> uses;
  for (size_t i = 0; i < steps_.size(); ++i) {
    for (const auto& [name, slots] : steps_[i].args) {
      for (size_t k = 0; k < slots.size(); ++k) {
        if (slots[k] == slot) uses.push_back({static_cast<int>(i), name, static_cast<int>(k)});
      }
    }
  }
  return uses;
}

std::shared_ptr<const Tensor> ProgramExecutor::ConstantAt(const ArgumentRef& use) const {
  if (use.op < 0 || use.op >= static_cast<int>(steps_.size())) return nullptr;
  for (const auto& [name, slots] : steps_[use.op].args) {
    if (name == use.input && use.position >= 0 && use.position < static_cast<int>(slots.size())) {
      return constants_[slots[use.position]];
    }
  }
  return nullptr;
}

absl::StatusOr<ProgramExecutor::KeptRun> ProgramExecutor::RunKeeping(const std::map<std::string, Tensor>& inputs,
                                                                     bool keep_intermediates) const {
  if (is_stateful()) {
    return absl::FailedPreconditionError("incremental runs need a stateless function (this one reads or writes state)");
  }
  KeptRun kept;
  kept.values = constants_;
  Session unused;
  RETURN_IF_ERROR(BindInputs(inputs, &unused, &kept.values));
  // The caller's inputs were aliased: own copies, so the kept run outlives them.
  for (int s : input_slots_) {
    if (kept.values[s]) kept.values[s] = std::make_shared<const Tensor>(*kept.values[s]);
  }
  if (!keep_intermediates) return kept;
  RunState st;
  st.values = std::move(kept.values);
  st.session = &unused;
  for (const Step& step : steps_) {
    ASSIGN_OR_RETURN(std::vector<Tensor> produced, Compute(step, &st));
    for (size_t i = 0; i < produced.size(); ++i) {
      kept.bytes += Bytes(produced[i]);
      st.values[step.output_slots[i]] = std::make_shared<const Tensor>(std::move(produced[i]));
    }
  }
  kept.values = std::move(st.values);
  return kept;
}

absl::StatusOr<std::map<std::string, Tensor>> ProgramExecutor::RunReplacing(
    const KeptRun& kept, const std::vector<Replacement>& replacements, RunStats* stats) const {
  if (kept.values.size() != constants_.size()) {
    return absl::InvalidArgumentError("the kept run comes from another program");
  }
  RunState st;
  Session unused;
  st.values = kept.values;
  st.session = &unused;
  // A value is dirty when it differs from the kept run's: the replaced
  // constants, then everything computed from them.
  std::vector<bool> dirty(st.values.size(), false);
  for (const Replacement& r : replacements) {
    if (r.slot < 0 || r.slot >= static_cast<int>(st.values.size()) || !constants_[r.slot] || !r.value) {
      return absl::InvalidArgumentError(absl::StrCat("slot ", r.slot, " is not a constant of this program"));
    }
    const Tensor& was = *constants_[r.slot];
    if (r.value->dtype() != was.dtype() || r.value->shape() != was.shape()) {
      return absl::InvalidArgumentError(absl::StrCat("a replacement is ", DTypeName(r.value->dtype()),
                                                     format::ShapeString(r.value->shape()), ", the constant is ",
                                                     DTypeName(was.dtype()), format::ShapeString(was.shape())));
    }
    st.values[r.slot] = r.value;
    dirty[r.slot] = true;
  }
  std::vector<int> reads;
  for (const Step& step : steps_) {
    reads.clear();
    SlotsRead(step, &reads);  // a loop body reading a replaced weight reruns the loop
    bool run = false;
    for (int s : reads) run = run || dirty[s];
    // Without kept intermediates every op runs: that is a full run.
    for (int s : step.output_slots) run = run || !st.values[s];
    if (run) {
      ASSIGN_OR_RETURN(std::vector<Tensor> produced, Compute(step, &st));
      for (size_t i = 0; i < produced.size(); ++i) {
        st.values[step.output_slots[i]] = std::make_shared<const Tensor>(std::move(produced[i]));
        dirty[step.output_slots[i]] = true;
      }
      ++st.stats.ops_run;
    }
    // Drops this run's reference only; the kept run still holds its own.
    for (int s : step.free_after) st.values[s].reset();
  }
  std::map<std::string, Tensor> out;
  for (size_t i = 0; i < output_slots_.size(); ++i) {
    const auto& v = st.values[output_slots_[i]];
    if (!v) return absl::InternalError(absl::StrCat("output '", output_names_[i], "' was not computed"));
    out[output_names_[i]] = *v;
  }
  if (stats) *stats = st.stats;
  return out;
}

}  // namespace coremlz::execute
