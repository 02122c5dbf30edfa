// Incremental runs (ProgramExecutor::RunKeeping / RunReplacing): what new
// values of a few constants do to the outputs, recomputing only what depends
// on them - the planner's trials.
#include "execute/program_executor.h"

#include <algorithm>
#include <functional>
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


int ProgramExecutor::ConstantSlot(const std::string& name) const {
  auto it = constant_slots_.find(name);
  return it == constant_slots_.end() ? -1 : it->second;
}

std::vector<ProgramExecutor::ArgumentRef> ProgramExecutor::UsesOf(int slot) const {
  std::vector<ArgumentRef> uses, nested_uses;
  // Depth-first through the bodies; `path` leads from steps_[top] to `step`.
  std::vector<std::pair<int, int>> path;
  std::function<void(int, const Step&)> visit = [&](int top, const Step& step) {
    for (const auto& [name, slots] : step.args) {
      for (size_t k = 0; k < slots.size(); ++k) {
        if (slots[k] != slot) continue;
        (path.empty() ? uses : nested_uses).push_back({top, name, static_cast<int>(k), path});
      }
    }
    for (size_t b = 0; b < step.blocks.size(); ++b) {
      for (size_t j = 0; j < step.blocks[b].steps.size(); ++j) {
        path.emplace_back(static_cast<int>(b), static_cast<int>(j));
        visit(top, step.blocks[b].steps[j]);
        path.pop_back();
      }
    }
  };
  for (size_t i = 0; i < steps_.size(); ++i) visit(static_cast<int>(i), steps_[i]);
  uses.insert(uses.end(), nested_uses.begin(), nested_uses.end());
  return uses;
}

std::shared_ptr<const Tensor> ProgramExecutor::ConstantAt(const ArgumentRef& use) const {
  if (use.op < 0 || use.op >= static_cast<int>(steps_.size())) return nullptr;
  const Step* step = &steps_[use.op];
  for (const auto& [b, j] : use.nested) {
    if (b < 0 || b >= static_cast<int>(step->blocks.size())) return nullptr;
    const Block& block = step->blocks[b];
    if (j < 0 || j >= static_cast<int>(block.steps.size())) return nullptr;
    step = &block.steps[j];
  }
  for (const auto& [name, slots] : step->args) {
    if (name == use.input && use.position >= 0 && use.position < static_cast<int>(slots.size())) {
      return constants_[slots[use.position]];
    }
  }
  return nullptr;
}

absl::StatusOr<ProgramExecutor::KeptRun> ProgramExecutor::RunKeeping(const std::map<std::string, Tensor>& inputs,
                                                                     bool keep_intermediates) const {
  KeptRun kept;
  kept.values = constants_;
  Session session;  // fresh: the states start zeroed
  RETURN_IF_ERROR(BindInputs(inputs, &session, &kept.values));
  kept.start_states = session.states_;
  // The caller's inputs were aliased: own copies, so the kept run outlives them.
  for (int s : input_slots_) {
    if (kept.values[s]) kept.values[s] = std::make_shared<const Tensor>(*kept.values[s]);
  }
  if (!keep_intermediates) return kept;
  RunState st;
  st.values = std::move(kept.values);
  st.session = &session;
  for (size_t op = 0; op < steps_.size(); ++op) {
    const Step& step = steps_[op];
    ASSIGN_OR_RETURN(std::vector<Tensor> produced, Compute(step, &st));
    for (size_t i = 0; i < produced.size(); ++i) {
      kept.bytes += Bytes(produced[i]);
      st.values[step.output_slots[i]] = std::make_shared<const Tensor>(std::move(produced[i]));
    }
    for (int s : step.nested_state_writes) {
      const Tensor& left = session.states_.at(inputs_[s].name);
      kept.bytes += Bytes(left);
      kept.nested_writes[static_cast<int>(op)].emplace(s, left);
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
  Session session;
  session.states_ = kept.start_states;
  st.values = kept.values;
  st.session = &session;
  // A state is dirty when its buffer may differ from the kept run's at this
  // point: a rerun write_state (or a rerun loop or branch that writes it)
  // made it so. A write that did not rerun wrote what the kept run wrote -
  // its value is kept (`clean_value`: the written value's slot, or what a
  // skipped loop left) - and the session gets it only when a rerun read or
  // the result needs it.
  std::vector<bool> state_dirty(inputs_.size(), false);
  std::vector<const Tensor*> clean_value(inputs_.size(), nullptr);
  auto settle_state = [&](int state) {
    if (state_dirty[state] || clean_value[state] == nullptr) return;
    session.states_[inputs_[state].name] = *clean_value[state];
    clean_value[state] = nullptr;
  };
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
  for (size_t op = 0; op < steps_.size(); ++op) {
    const Step& step = steps_[op];
    bool run = false;
    for (int s : step.reads) run = run || dirty[s];  // a loop body reading a replaced weight reruns the loop
    // Without kept intermediates every op runs: that is a full run.
    for (int s : step.output_slots) run = run || !st.values[s];
    if (step.kind == Step::Kind::kReadState) {
      run = run || state_dirty[step.state];
      if (run) settle_state(step.state);
    } else if (step.kind == Step::Kind::kWriteState) {
      int data = -1;  // the slot it stores
      for (const auto& [name, slots] : step.args) {
        if (name == "data" && slots.size() == 1) data = slots[0];
      }
      run = run || data < 0 || !kept.values[data];  // a malformed write runs, to fail as in a full run
      state_dirty[step.state] = run;
      clean_value[step.state] = run ? nullptr : kept.values[data].get();
    } else if (!step.blocks.empty()) {
      // A loop or branch whose body reads or writes states reruns when one
      // of them differs from the kept run's (a body that only writes a state
      // may still leave it as it was, running no iteration). Rerun, it
      // leaves them dirty; skipped, it leaves what it left in the kept run.
      const std::vector<int>& read = step.nested_state_reads;
      const std::vector<int>& written = step.nested_state_writes;
      const auto left = kept.nested_writes.find(static_cast<int>(op));
      for (int s : read) run = run || state_dirty[s];
      for (int s : written) run = run || state_dirty[s] || left == kept.nested_writes.end() || !left->second.count(s);
      if (run) {
        for (int s : read) settle_state(s);
        for (int s : written) settle_state(s);
      }
      for (int s : written) {
        state_dirty[s] = run;
        clean_value[s] = run ? nullptr : &left->second.at(s);
      }
    }
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
  for (size_t i = 0; i < inputs_.size(); ++i) {
    if (!inputs_[i].is_state) continue;
    settle_state(static_cast<int>(i));
    out[absl::StrCat(kStateOutputPrefix, inputs_[i].name)] = session.states_.at(inputs_[i].name);
  }
  if (stats) *stats = st.stats;
  return out;
}

}  // namespace coremlz::execute
