// Running a loaded program: binding inputs, each op in order with its
// intermediates freed after their last use, and nested blocks (loops and
// branches).
#include "execute/program_executor.h"

#include <algorithm>
#include <map>
#include <set>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "execute/program_internal.h"
#include "format/tensor.h"

namespace coremlz::execute {

using namespace program_internal;  // NOLINT: the helpers of this one class

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
  if (stats) state.stats.after_op = stats->after_op;
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
      st->stats.NoteIntermediate(Bytes(t));
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
    if (st->stats.after_op) st->stats.after_op(step.location, st->live_bytes);
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

}  // namespace coremlz::execute
