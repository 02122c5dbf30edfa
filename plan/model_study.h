// What the planner knows about one model before it chooses: its
// compressible weights, every candidate's exact stored bytes and decoded
// values for each of them, and the original's outputs on the study's seeded
// synthetic samples (StudyBaseline), with the activations kept so that a
// trial recomputes only what lies downstream of the weight it changes.
//
// Where the candidates' bytes and values come from: the model is compressed
// once per candidate with that candidate as the global config, by the engine
// (plan/candidate_build.h: here or on remote workers). Each weight is
// compressed independently of the others, so the weight's row in that run's
// report is exactly what compressing that weight alone stores (LUTs, scales,
// zero points and masks included), and the candidate model's executor
// decodes its constexpr ops to exactly the values a compressed model built
// from any plan decodes for that weight.
#ifndef COREMLZ_PLAN_MODEL_STUDY_H_
#define COREMLZ_PLAN_MODEL_STUDY_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/report.h"
#include "execute/loaded_model.h"
#include "execute/tensor.h"
#include "plan/candidate.h"
#include "plan/study_baseline.h"
#include "plan/trial.h"

namespace coremlz::plan {

// Whether the function reads the report's weight. A weight several functions
// of a multifunction package share is one row naming them all (`function` is
// only the first), and the planned function may be any of them.
bool ReadByFunction(const engine::WeightReport& row, const std::string& function);

// One candidate for one weight.
struct CandidateWeight {
  bool available = false;       // false: the engine skipped the weight (reason) or the candidate was dropped
  std::string reason;
  uint64_t bytes = 0;           // stored bytes, exact
  double weight_snr_db = 0;     // of the decoded values against the original
  std::shared_ptr<const execute::Tensor> decoded;  // nullptr for keep
};

struct StudiedWeight {
  std::string name;  // the const op's output name, as op_name_configs keys it
  std::vector<std::string> consumers;
  int64_t elements = 0;
  uint64_t bytes_before = 0;
  int slot = -1;  // in the original's executor
  std::vector<CandidateWeight> options;  // per candidate
};

class ModelStudy : public TrialRunner {
 public:
  static absl::StatusOr<std::unique_ptr<ModelStudy>> Create(const std::string& model_path,
                                                            std::vector<Candidate> candidates,
                                                            const StudyOptions& options, const std::string& work_dir);

  const std::string& model_path() const { return baseline_->model_path(); }
  const std::string& function() const { return baseline_->function(); }
  const std::vector<Candidate>& candidates() const { return candidates_; }
  const std::vector<StudiedWeight>& weights() const { return weights_; }
  const std::vector<std::string>& dropped() const { return dropped_; }  // "int4-block32: why"
  // Weights the candidates compress that the executor cannot replace (left
  // as they are): "NAME: why".
  const std::vector<std::string>& left_out() const { return left_out_; }
  const std::vector<std::string>& output_names() const { return baseline_->output_names(); }
  int samples() const { return baseline_->samples(); }
  bool keeps_activations() const { return baseline_->keeps_activations(); }
  int64_t kept_bytes() const { return baseline_->kept_bytes(); }
  uint64_t model_bytes() const { return model_bytes_; }  // every file of the original
  // Per candidate: how many bytes a model grows beyond its weights' stored
  // bytes for each weight it compresses (new constexpr ops in the spec, blob
  // headers and alignment), averaged over the candidate's uniform run.
  double overhead_per_weight(int candidate) const { return overhead_[candidate]; }

  // The outputs' noise when the given weights take the given candidates
  // (weight index -> candidate index; "keep" and absent weights stay as
  // they are). Runs only what depends on those weights.
  absl::StatusOr<OutputNoise> Measure(const std::vector<std::pair<int, int>>& choice) const;
  // A trial: Measure({{weight, candidate}}) and the candidate's bytes.
  absl::StatusOr<TrialResult> Run(const Trial& trial) const override;

 private:
  ModelStudy() = default;

  std::unique_ptr<StudyBaseline> baseline_;
  std::vector<Candidate> candidates_;
  std::vector<std::string> dropped_;
  std::vector<std::string> left_out_;
  std::vector<StudiedWeight> weights_;
  std::vector<double> overhead_;
  uint64_t model_bytes_ = 0;
};

// 10 log10(1 / x) for a noise power relative to the peak (+inf for 0).
double NoiseToPsnr(double noise);
double PsnrToNoise(double psnr_db);
// The worst (smallest) PSNR over every sample and output: what execute's
// output check reports as the lowest per-output PSNR.
double WorstPsnr(const OutputNoise& noise);
// The mean noise over every sample and output: the additive quantity the
// allocation works with.
double MeanNoise(const OutputNoise& noise);

}  // namespace coremlz::plan

#endif  // COREMLZ_PLAN_MODEL_STUDY_H_
