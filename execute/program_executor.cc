#include "execute/program_executor.h"

#include <algorithm>
#include <functional>
#include <limits>
#include <set>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "execute/program_internal.h"
#include "format/mil_program.h"

namespace coremlz::execute {

namespace MIL = CoreML::Specification::MILSpec;
using namespace program_internal;  // NOLINT: the helpers of this one class

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
  if (value.has_immediatevalue() && value.immediatevalue().has_list()) {
    // A literal list of scalars (classify's "classes": strings or int64),
    // held as a 1-D tensor of them.
    std::vector<std::string> strings;
    std::vector<int32_t> ints;
    for (const MIL::Value& v : value.immediatevalue().list().values()) {
      if (v.has_immediatevalue() && v.immediatevalue().tensor().longints().values_size() == 1 && strings.empty()) {
        // int64 labels, which the executor holds as int32 (tensor.h).
        const int64_t label = v.immediatevalue().tensor().longints().values(0);
        if (label < std::numeric_limits<int32_t>::min() || label > std::numeric_limits<int32_t>::max()) {
          return absl::UnimplementedError(absl::StrCat("the integer ", label, " does not fit in int32; not executed yet"));
        }
        ints.push_back(static_cast<int32_t>(label));
        continue;
      }
      ASSIGN_OR_RETURN(Tensor t, ReadValue(v, reader));
      if (t.size() != 1 || t.is_list() || (t.dtype() == DType::kString ? !ints.empty() : !strings.empty()) ||
          t.is_float()) {
        return absl::InvalidArgumentError("a literal list must hold scalars of one type, strings or integers");
      }
      if (t.dtype() == DType::kString) {
        strings.push_back(t.strings()[0]);
      } else {
        ints.push_back(t.ints()[0]);
      }
    }
    const int64_t n = static_cast<int64_t>(strings.size() + ints.size());
    if (!strings.empty()) return Tensor::String({n}, std::move(strings));
    return Tensor::Int({n}, std::move(ints));
  }
  ASSIGN_OR_RETURN(format::Tensor stored, reader->Read(value));
  return FromStored(stored);
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

absl::StatusOr<ExecutedBlock> FindExecutedBlock(const MIL::Program& program, const std::string& function) {
  auto fit = program.functions().find(function);
  if (fit == program.functions().end()) {
    std::vector<std::string> names;
    for (const auto& [name, f] : program.functions()) names.push_back(name);
    return absl::InvalidArgumentError(absl::StrCat("the program has no function '", function, "' (it has: ",
                                                   absl::StrJoin(names, ", "), ")"));
  }
  const MIL::Function& fn = fit->second;
  auto bit = fn.block_specializations().find(fn.opset());
  if (bit == fn.block_specializations().end()) {
    if (fn.block_specializations().size() != 1) {
      return absl::InvalidArgumentError(absl::StrCat("function '", function, "' has no block for its opset '", fn.opset(), "'"));
    }
    bit = fn.block_specializations().begin();
  }
  return ExecutedBlock{&fn, bit->first, &bit->second};
}

absl::StatusOr<std::unique_ptr<ProgramExecutor>> ProgramExecutor::Load(const MIL::Program& program,
                                                                       engine::ValueReader* reader,
                                                                       const std::string& function) {
  ASSIGN_OR_RETURN(ExecutedBlock executed, FindExecutedBlock(program, function));
  const MIL::Function& fn = *executed.function;
  const std::string& block_key = executed.key;
  const MIL::Block& block = *executed.block;
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
      // classify's probability dictionary is returned as a float tensor of
      // the probabilities in class order (ops_classify.cc).
      auto d = op.type() == "classify" && o.type().has_dictionarytype()
                   ? absl::StatusOr<OutputDecl>(OutputDecl{o.name()})
                   : DeclOf(o.name(), o.type(), nullptr);
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
  for (size_t i = 0; i < ex->steps_.size(); ++i) {
    Step& step = ex->steps_[i];
    for (int s : step.output_slots) last_use[s] = static_cast<int>(i);  // unused results die at once
    SlotsRead(step, &step.reads);
    for (int s : step.reads) last_use[s] = static_cast<int>(i);
    NestedStates(step, &step.nested_state_reads, &step.nested_state_writes);
  }
  for (int s = 0; s < slots; ++s) {
    if (!keep[s] && last_use[s] >= 0) ex->steps_[last_use[s]].free_after.push_back(s);
  }
  return ex;
}

// Every slot an op reads, its nested blocks' reads included.
void ProgramExecutor::SlotsRead(const Step& step, std::vector<int>* slots) {
  for (const auto& [name, arg_slots] : step.args) slots->insert(slots->end(), arg_slots.begin(), arg_slots.end());
  for (const Block& b : step.blocks) {
    slots->insert(slots->end(), b.output_slots.begin(), b.output_slots.end());
    for (const Step& inner : b.steps) SlotsRead(inner, slots);
  }
}

// The states a top-level op's nested blocks read and write.
void ProgramExecutor::NestedStates(const Step& step, std::vector<int>* read, std::vector<int>* written) {
  std::set<int> r, w;
  std::function<void(const Step&)> visit = [&](const Step& s) {
    if (s.kind == Step::Kind::kReadState && s.state >= 0) r.insert(s.state);
    if (s.kind == Step::Kind::kWriteState && s.state >= 0) w.insert(s.state);
    for (const Block& b : s.blocks) {
      for (const Step& nested : b.steps) visit(nested);
    }
  };
  for (const Block& b : step.blocks) {
    for (const Step& nested : b.steps) visit(nested);
  }
  read->assign(r.begin(), r.end());
  written->assign(w.begin(), w.end());
}

bool ProgramExecutor::is_stateful() const {
  for (const InputDecl& d : inputs_) {
    if (d.is_state) return true;
  }
  return false;
}

int64_t ProgramExecutor::constant_bytes() const {
  int64_t total = 0;
  for (const auto& c : constants_) {
    if (c) total += Bytes(*c);
  }
  return total;
}

}  // namespace coremlz::execute
