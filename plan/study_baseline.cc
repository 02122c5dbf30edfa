#include "plan/study_baseline.h"

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "execute/compare.h"
#include "execute/synthetic_inputs.h"
#include "plan/model_study.h"

namespace coremlz::plan {

absl::StatusOr<std::unique_ptr<StudyBaseline>> StudyBaseline::Create(const std::string& model_path,
                                                                     const StudyOptions& options) {
  if (options.samples < 1 || options.samples > 1000) {
    return absl::InvalidArgumentError(absl::StrCat("--samples takes 1..1000, not ", options.samples));
  }
  std::unique_ptr<StudyBaseline> b(new StudyBaseline);
  b->model_path_ = model_path;
  // Label outputs are measured on their scores, as the output check does.
  ASSIGN_OR_RETURN(b->original_, execute::LoadModel(model_path, options.function, /*with_label_scores=*/true));
  // A stateful function is measured from zeroed states, on its outputs and
  // on what it leaves in each state (see ProgramExecutor::RunReplacing).
  const execute::ModelExecutor& original = *b->original_.executor;
  // The original on every sample, keeping its activations if they fit.
  ASSIGN_OR_RETURN(std::vector<execute::InputSpec> specs, execute::DescribeInputs(b->original_.model(), original));
  for (int i = 0; i < options.samples; ++i) {
    if (options.cancelled && options.cancelled()) return absl::CancelledError("the plan was cancelled");
    const auto inputs = execute::SyntheticInputs(specs, options.seed, i);
    ASSIGN_OR_RETURN(std::unique_ptr<execute::ModelExecutor::KeptRun> kept,
                     original.RunKeeping(inputs, b->keeps_activations_));
    if (i == 0 && kept->bytes * options.samples > options.max_kept_bytes) {
      b->keeps_activations_ = false;
      ASSIGN_OR_RETURN(kept, original.RunKeeping(inputs, false));
    }
    b->kept_bytes_ += kept->bytes;
    ASSIGN_OR_RETURN(auto reference, original.RunReplacing(*kept, {}));
    if (i == 0) {
      for (const auto& [name, t] : reference) {
        if (b->original_.label_scores.count(name)) continue;  // measured on its scores
        if (t.is_float()) {
          b->output_names_.push_back(name);
          b->output_labels_.push_back(b->original_.MeasuredName(name));
        } else {
          return absl::UnimplementedError(absl::StrCat(
              "output '", name, "' is ", execute::DTypeName(t.dtype()),
              ": the planner measures outputs by PSNR, which needs floating-point outputs (a label output is measured "
              "on its scores only when it is the arg max or arg min of a float value)"));
        }
      }
    }
    b->kept_.push_back(std::move(kept));
    b->references_.push_back(std::move(reference));
  }
  return b;
}

absl::StatusOr<int> StudyBaseline::SlotOf(const std::string& weight) const { return executor().WeightSlot(weight); }

absl::StatusOr<StudyBaseline::WeightSlot> StudyBaseline::DecodedIn(const execute::LoadedModel& candidate_model,
                                                                  const std::string& weight,
                                                                  const std::string& candidate_name) const {
  WeightSlot w;
  ASSIGN_OR_RETURN(w.slot, SlotOf(weight));
  if (w.slot < 0) return w;
  w.decoded = candidate_model.executor ? executor().WeightValue(w.slot, *candidate_model.executor) : nullptr;
  const auto original_value = executor().WeightValue(w.slot);
  if (!w.decoded || !original_value || w.decoded->shape() != original_value->shape() ||
      w.decoded->dtype() != original_value->dtype()) {
    return absl::InternalError(absl::StrCat("weight \"", weight, "\": candidate ", candidate_name,
                                            "'s decoded value does not line up with the original's"));
  }
  return w;
}

absl::StatusOr<OutputNoise> StudyBaseline::Measure(
    const std::vector<execute::ModelExecutor::WeightReplacement>& replacements) const {
  OutputNoise noise;
  noise.reserve(kept_.size() * output_names_.size());
  for (size_t s = 0; s < kept_.size(); ++s) {
    ASSIGN_OR_RETURN(auto outputs, executor().RunReplacing(*kept_[s], replacements));
    for (const std::string& name : output_names_) {
      const execute::Tensor& ref = references_[s].at(name);
      ASSIGN_OR_RETURN(execute::OutputComparison c, execute::CompareOutputs(ref.floats(), outputs.at(name).floats()));
      noise.push_back(PsnrToNoise(c.psnr_db));
    }
  }
  return noise;
}

}  // namespace coremlz::plan
