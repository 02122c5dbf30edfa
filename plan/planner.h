// Chooses a compression per weight for a size or quality target and proves
// it: `coremlz plan`'s engine (the Plan RPC will drive the same steps, with
// the trials fanned out over workers through TrialRunner).
//
//  1. Study (ModelStudy): every candidate's exact bytes and decoded values
//     per weight; the original's activations on N seeded samples.
//  2. Sensitivity: one trial per (weight, candidate), measuring the model's
//     outputs with that weight alone compressed. A candidate whose weight
//     SNR and bytes are both beaten by another candidate of the same weight
//     is pruned without a trial (it could only be chosen over a candidate
//     that is smaller and closer to the original weight).
//  2b. The pruning checked: each compressing candidate on every weight is
//     measured beside the allocation's optimum within its bytes (the report's
//     uniform comparisons). A partly pruned candidate that measures better
//     uniformly is re-admitted - its pruned trials run - and the allocation
//     is solved again. Weight SNR ranks candidates of one kind well but not
//     per-tensor palettes against per-channel scales.
//  3. Allocation (Knapsack): per-weight output noise is modelled as additive:
//     weights compressed together add independent errors, so their noise
//     powers (mse relative to each output's peak) add. The allocation
//     minimises the mean over samples and outputs of that predicted noise
//     under the size budget, or minimises size with it below the PSNR floor.
//  4. Correction: the whole plan is compressed by the engine and the result
//     measured like `coremlz compare` (the lowest PSNR over outputs, each the
//     worst over samples) and sized on disk. A missed target is re-solved
//     with the measured gap (budget reduced by the overshoot in bytes, PSNR
//     goal raised by the shortfall), at most `max_rounds` times; then the
//     target is unreachable (OUT_OF_RANGE, with the best measured).
//
// Predictions and measurements are kept apart in PlanResult and labelled in
// every output. Targets that cannot make sense (not positive, above the
// original, below the smallest the candidates reach) are INVALID_ARGUMENT
// before any trial runs.
//
// planner.cc is ~615 lines: MakePlan and the Planner its phases share - the
// rounds, the Pareto curve and the uniform comparisons read the same
// per-weight noise and choice tables, so they stay beside each other; the
// study, trials, knapsack and outputs are files of their own.
#ifndef COREMLZ_PLAN_PLANNER_H_
#define COREMLZ_PLAN_PLANNER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/config.h"
#include "plan/candidate.h"
#include "plan/candidate_trials.h"
#include "plan/model_study.h"
#include "plan/trial.h"

namespace coremlz::plan {

struct PlanTarget {
  enum class Kind { kSize, kBits, kMinPsnr };
  Kind kind = Kind::kSize;
  double value = 0;  // bytes of the whole model, average bits per planned weight, or dB
};
std::string DescribeTarget(const PlanTarget& target);

// Where a plan is, for progress displays (the Plan RPC streams it).
struct PlanProgress {
  enum class Phase { kStudy, kTrials, kCompare, kRounds, kPareto };
  Phase phase = Phase::kStudy;
  int trials_done = 0;
  int trials_total = 0;
  int round = 0;  // kRounds: the round being measured, from 1
};

struct PlanOptions {
  PlanTarget target;
  std::vector<Candidate> candidates;  // empty: DefaultCandidates for the model's target
  int64_t weight_threshold = 2048;
  StudyOptions study;  // study.cancelled stops the study, the trials, the rounds and the Pareto curve
  int max_rounds = 6;
  int pareto_points = 10;
  // Optional: called at each phase, round and finished trial (from the
  // thread that finished it: must be thread-safe).
  std::function<void(const PlanProgress&)> progress;
  // Optional: where the trials run (default: RunTrials on study.threads).
  // It may be called more than once: a re-admitted candidate's trials are a
  // second batch.
  TrialFanOut fan_out;
  // Optional: called once no more trials will be asked of fan_out (right
  // after the trials when none was pruned, else once the uniform
  // comparisons have settled the pruning), so that a fan-out can let its
  // workers go before the rounds and the curve.
  std::function<void()> trials_finished;
};

// One candidate for one weight, as the report shows it.
struct CandidateOutcome {
  std::string status;  // "measured", "measured (re-admitted)", "pruned: ...", "unavailable: ...", "keep"
  uint64_t bytes = 0;
  double weight_snr_db = 0;
  bool measured = false;
  double output_psnr_db = 0;  // measured: the worst over samples and outputs with this weight alone compressed
  double mean_noise = 0;      // measured: what the allocation adds up
};

struct WeightPlan {
  std::string name;
  std::vector<std::string> consumers;
  int64_t elements = 0;
  uint64_t bytes_before = 0;
  std::vector<CandidateOutcome> outcomes;  // per candidate
  int chosen = -1;
};

// The quantities a plan is judged by; a Prediction comes from the trials and
// the additive model, a Measurement from the compressed model itself.
struct PlanQuantities {
  uint64_t model_bytes = 0;
  uint64_t weight_bytes = 0;  // of the planned weights
  double bits_per_weight = 0;
  double psnr_db = 0;         // the worst over samples and outputs
};

struct PlanRound {
  std::string goal;  // what this round solved for, e.g. "weight budget 1234567 B", "predicted mean-noise PSNR >= 41.2 dB"
  PlanQuantities predicted;
  PlanQuantities measured;  // compressed by the engine, run by the executor
  bool met = false;
};

struct ParetoPoint {
  PlanQuantities predicted;
  // The executor run with the point's decoded weights substituted: a
  // measurement of the outputs (the same values a compressed file decodes
  // to), not of a file on disk, so no measured bytes.
  double measured_psnr_db = 0;
};

// One candidate on every planned weight (kept as it is where the candidate
// is unavailable), beside the allocation's optimum no larger than it: what
// the plan gains over simply compressing uniformly at the same size. Both
// points are measured the way Pareto points are.
struct UniformComparison {
  std::string candidate;
  int candidate_index = 0;  // into the plan's candidates
  int weights_kept = 0;  // planned weights the candidate does not apply to
  ParetoPoint uniform;   // its predicted quantities; the prediction's PSNR only when every trial ran, else NaN
  ParetoPoint plan;      // the allocation's optimum within uniform's predicted bytes
  // Why the gain is what it is: the measured output PSNR of each weight
  // compressed alone by this candidate, lowest and highest. Weights that
  // are alike in sensitivity leave the allocation little to trade. NaN when
  // no trial of this candidate ran.
  double alone_psnr_lo_db = 0, alone_psnr_hi_db = 0;
};

// A candidate whose pruned trials ran after all: applied uniformly it
// measured better than the allocation's optimum within its bytes, which
// could not choose it where it was pruned.
struct Readmission {
  UniformComparison evidence;  // the comparison that showed it, before re-admission
  int trials = 0;              // its pruned trials that then ran
};

struct PlanResult {
  std::string model;
  PlanTarget target;
  std::vector<std::string> candidates;
  std::vector<std::string> dropped_candidates;
  // Weights the candidates compress but the executor cannot replace, kept
  // as they are: "NAME: why".
  std::vector<std::string> left_out_weights;
  int samples = 0;
  uint64_t seed = 0;
  std::string function;
  uint64_t original_model_bytes = 0;
  bool kept_activations = true;
  // The outputs the PSNR is measured on (a stateful function's final states
  // as "state:NAME").
  std::vector<std::string> measured_outputs;
  int trials_run = 0;
  int trials_pruned = 0;
  std::vector<WeightPlan> weights;
  std::vector<PlanRound> rounds;
  PlanQuantities predicted;  // of the final plan
  PlanQuantities measured;
  engine::CompressionConfig config;  // one pass, op_name_configs per weight
  std::vector<ParetoPoint> pareto;
  // Per candidate that compresses (not keep), in candidate order.
  std::vector<UniformComparison> uniform;
  // In the order re-admitted; empty when no pruning was refuted.
  std::vector<Readmission> readmitted;
  double seconds = 0;
  // Wall time by phase: candidates compressed and activations kept; trials
  // (re-admitted ones included); the uniform comparisons' measurements;
  // solve-apply-measure rounds; the Pareto curve's measurements.
  double study_seconds = 0, trial_seconds = 0, compare_seconds = 0, round_seconds = 0, pareto_seconds = 0;
};

absl::StatusOr<PlanResult> MakePlan(const std::string& model_path, const PlanOptions& options);

// The study MakePlan makes for these options (its default candidates
// resolved the same way), in `work_dir`: what a remote worker builds to run
// a plan's trials. A study depends only on the model and the options, so
// every process gets the same trial results from it.
absl::StatusOr<std::unique_ptr<ModelStudy>> StudyForPlan(const std::string& model_path, const PlanOptions& options,
                                                         const std::string& work_dir);
// What a remote worker builds for a plan: the same baseline and candidate
// list as StudyForPlan, with no candidate built yet (CandidateTrials::Build
// builds the ones the front asks for, in `work_dir`).
absl::StatusOr<std::unique_ptr<CandidateTrials>> TrialsForPlan(const std::string& model_path,
                                                               const PlanOptions& options, const std::string& work_dir);

}  // namespace coremlz::plan

#endif  // COREMLZ_PLAN_PLANNER_H_
