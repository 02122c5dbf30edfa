// The part of a study that does not depend on any candidate: the original
// model, its outputs on the study's seeded synthetic samples, and (when they
// fit) every sample's activations, so that a trial recomputes only what lies
// downstream of the weights it replaces. The front's ModelStudy and a
// worker's CandidateTrials both measure against one of these, so a trial's
// noise is the same bits in either process.
//
// Memory: the activations of every sample are kept whole (the executor's
// intermediates, not the weights). When they would exceed `max_kept_bytes`
// only the inputs are kept and every measurement is a full run instead:
// slower, same results.
#ifndef COREMLZ_PLAN_STUDY_BASELINE_H_
#define COREMLZ_PLAN_STUDY_BASELINE_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "execute/loaded_model.h"
#include "execute/tensor.h"
#include "plan/candidate_build.h"
#include "plan/trial.h"

namespace coremlz::plan {

struct StudyOptions {
  int samples = 4;
  uint64_t seed = 0;
  std::string function;  // "" : the model's default
  int threads = 2;
  int64_t max_kept_bytes = int64_t{2} << 30;
  // Default candidates a deployment target cannot express are dropped (and
  // noted); a candidate the user named is an error then.
  bool drop_inexpressible = false;
  std::function<bool()> cancelled;
  // Optional: where the candidates are built (default: on `threads` threads).
  CandidateFanOut build_fan_out;
};

class StudyBaseline {
 public:
  // An ML Program function or a NeuralNetwork, measured through the
  // executor's incremental runs (execute/model_executor.h). UNIMPLEMENTED
  // for what the planner cannot measure (non-float outputs or states);
  // CANCELLED when `cancelled` says so.
  static absl::StatusOr<std::unique_ptr<StudyBaseline>> Create(const std::string& model_path,
                                                               const StudyOptions& options);

  const std::string& model_path() const { return model_path_; }
  const execute::ModelExecutor& executor() const { return *original_.executor; }
  const std::string& function() const { return executor().function(); }
  // What is measured, as plans name it: float outputs, "scores:OUTPUT" for a
  // label output (execute/label_scores.h), "state:NAME" for what a stateful
  // function leaves in a state.
  const std::vector<std::string>& output_names() const { return output_labels_; }
  int samples() const { return static_cast<int>(kept_.size()); }
  bool keeps_activations() const { return keeps_activations_; }
  int64_t kept_bytes() const { return kept_bytes_; }

  // The value every consumer of `weight` reads in `candidate_model` (the same
  // model compressed), checked to line up with the original's; slot -1 and
  // null when the weight is no value of the executed function or has no use
  // in it; FAILED_PRECONDITION when the executor cannot replace it.
  struct WeightSlot {
    int slot = -1;
    std::shared_ptr<const execute::Tensor> decoded;
  };
  absl::StatusOr<WeightSlot> DecodedIn(const execute::LoadedModel& candidate_model, const std::string& weight,
                                       const std::string& candidate_name) const;
  // Where `weight` lives in the original, -1 if it is not used here;
  // FAILED_PRECONDITION (the reason) when the executor cannot replace it.
  absl::StatusOr<int> SlotOf(const std::string& weight) const;

  // The outputs' noise with the given constants replaced (only the ops
  // depending on them are run).
  absl::StatusOr<OutputNoise> Measure(const std::vector<execute::ModelExecutor::WeightReplacement>& replacements) const;

 private:
  StudyBaseline() = default;

  std::string model_path_;
  execute::LoadedModel original_;
  std::vector<std::unique_ptr<execute::ModelExecutor::KeptRun>> kept_;
  std::vector<std::map<std::string, execute::Tensor>> references_;
  std::vector<std::string> output_names_;   // the executor's results measured
  std::vector<std::string> output_labels_;  // the same, as plans name them
  bool keeps_activations_ = true;
  int64_t kept_bytes_ = 0;
};

}  // namespace coremlz::plan

#endif  // COREMLZ_PLAN_STUDY_BASELINE_H_
