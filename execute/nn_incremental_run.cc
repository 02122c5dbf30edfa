// Incremental runs of a NeuralNetwork (NnExecutor::RunKeeping /
// RunReplacing): what new values of a few layer weights do to the outputs,
// recomputing only the layers that read them and those downstream - the
// planner's trials, as incremental_run.cc is for ML Programs.
#include <set>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "execute/nn_executor.h"
#include "format/tensor.h"

namespace coremlz::execute {
namespace {

struct NnKeptRun : ModelExecutor::KeptRun {
  std::vector<std::shared_ptr<const Tensor>> values;  // by blob slot
};

}  // namespace

absl::StatusOr<int> NnExecutor::WeightSlot(const std::string& weight) const {
  auto it = weight_slots_.find(weight);
  if (it == weight_slots_.end()) {
    return absl::FailedPreconditionError(
        absl::StrCat("no layer the executor runs reads \"", weight, "\" (a NeuralNetwork weight is LAYER.FIELD)"));
  }
  if (it->second < 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("several layers are named as \"", weight, "\" says; the executor cannot tell which to replace"));
  }
  return it->second;
}

std::shared_ptr<const Tensor> NnExecutor::WeightValue(int slot, const ModelExecutor& same_model) const {
  auto* other = dynamic_cast<const NnExecutor*>(&same_model);
  if (other == nullptr || slot < 0 || slot >= static_cast<int>(weight_refs_.size()) ||
      other->steps_.size() != steps_.size()) {
    return nullptr;
  }
  const WeightRef& ref = weight_refs_[slot];
  const std::shared_ptr<const NnLayerSpec>& spec = other->steps_[ref.step].spec;
  if (!spec || spec->name != steps_[ref.step].label.name) return nullptr;
  auto it = spec->weights.find(ref.field);
  if (it == spec->weights.end()) return nullptr;
  return std::shared_ptr<const Tensor>(spec, &it->second);  // shares the spec's ownership
}

absl::StatusOr<std::unique_ptr<ModelExecutor::KeptRun>> NnExecutor::RunKeeping(
    const std::map<std::string, Tensor>& inputs, bool keep_intermediates) const {
  auto kept = std::make_unique<NnKeptRun>();
  kept->values.resize(slot_count_);
  ASSIGN_OR_RETURN(auto bound, BindInputs(inputs));
  for (auto& [slot, x] : bound) kept->values[slot] = std::make_shared<const Tensor>(std::move(x));
  if (!keep_intermediates) return std::unique_ptr<KeptRun>(std::move(kept));
  std::vector<const Tensor*> args;
  for (const Step& step : steps_) {
    args.clear();
    for (int s : step.inputs) {
      if (!kept->values[s]) return step.label.Invalid("reads a blob that was not computed");
      args.push_back(kept->values[s].get());
    }
    ASSIGN_OR_RETURN(std::vector<Tensor> results, step.kernel(args));
    if (results.size() != step.outputs.size()) return step.label.Invalid("produced the wrong number of outputs");
    for (size_t k = 0; k < results.size(); ++k) {
      kept->bytes += static_cast<int64_t>(results[k].size()) * 4;
      kept->values[step.outputs[k]] = std::make_shared<const Tensor>(std::move(results[k]));
    }
  }
  return std::unique_ptr<KeptRun>(std::move(kept));
}

absl::StatusOr<std::map<std::string, Tensor>> NnExecutor::RunReplacing(
    const KeptRun& kept, const std::vector<WeightReplacement>& replacements, RunStats* stats) const {
  auto* mine = dynamic_cast<const NnKeptRun*>(&kept);
  if (mine == nullptr || static_cast<int>(mine->values.size()) != slot_count_) {
    return absl::InvalidArgumentError("the kept run comes from another model");
  }
  // The new values, by the step that reads them.
  std::map<int, std::map<std::string, std::shared_ptr<const Tensor>>> replaced;
  for (const WeightReplacement& r : replacements) {
    const std::shared_ptr<const Tensor> was = WeightValue(r.slot);
    if (!was || !r.value) {
      return absl::InvalidArgumentError(absl::StrCat("slot ", r.slot, " is not a weight of this network"));
    }
    if (r.value->dtype() != was->dtype() || r.value->shape() != was->shape()) {
      return absl::InvalidArgumentError(absl::StrCat("a replacement is ", DTypeName(r.value->dtype()),
                                                     format::ShapeString(r.value->shape()), ", the weight is ",
                                                     DTypeName(was->dtype()), format::ShapeString(was->shape())));
    }
    const WeightRef& ref = weight_refs_[r.slot];
    replaced[ref.step][ref.field] = r.value;
  }
  std::vector<std::shared_ptr<const Tensor>> values = mine->values;
  // A blob is dirty when it differs from the kept run's.
  std::vector<bool> dirty(slot_count_, false);
  RunStats st;
  std::vector<const Tensor*> args;
  for (size_t i = 0; i < steps_.size(); ++i) {
    const Step& step = steps_[i];
    auto rep = replaced.find(static_cast<int>(i));
    bool run = rep != replaced.end();
    for (int s : step.inputs) run = run || dirty[s];
    // Without kept intermediates every layer runs: that is a full run.
    for (int s : step.outputs) run = run || !values[s];
    if (run) {
      args.clear();
      for (int s : step.inputs) {
        if (!values[s]) return step.label.Invalid("reads a blob that was not computed");
        args.push_back(values[s].get());
      }
      NnKernel rebuilt;
      if (rep != replaced.end()) {
        // The kernel as Load builds it for a model whose weights have the new values.
        NnLayerSpec spec = *step.spec;
        for (const auto& [field, value] : rep->second) spec.weights[field] = *value;
        ASSIGN_OR_RETURN(rebuilt, step.builder(spec));
      }
      ASSIGN_OR_RETURN(std::vector<Tensor> results, rebuilt ? rebuilt(args) : step.kernel(args));
      if (results.size() != step.outputs.size()) return step.label.Invalid("produced the wrong number of outputs");
      for (size_t k = 0; k < results.size(); ++k) {
        values[step.outputs[k]] = std::make_shared<const Tensor>(std::move(results[k]));
        dirty[step.outputs[k]] = true;
      }
      ++st.ops_run;
    }
    // Drops this run's reference only; the kept run still holds its own.
    for (int s : step.last_uses) values[s].reset();
  }
  std::map<std::string, Tensor> out;
  for (size_t i = 0; i < outputs_.size(); ++i) {
    const std::shared_ptr<const Tensor>& v = values[outputs_[i].slot];
    if (!v) return absl::InvalidArgumentError(absl::StrCat("output '", output_names_[i], "' was not computed"));
    Tensor blob = *v;
    ASSIGN_OR_RETURN(out[output_names_[i]], OutputValue(i, &blob, true));
  }
  if (stats != nullptr) *stats = st;
  return out;
}

}  // namespace coremlz::execute
