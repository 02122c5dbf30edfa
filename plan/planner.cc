#include "plan/planner.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/file_util.h"
#include "common/status_macros.h"
#include "engine/compress_model.h"
#include "engine/job_control.h"
#include "execute/loaded_model.h"
#include "execute/output_check.h"
#include "format/neural_network_weights.h"
#include "format/package.h"
#include "plan/knapsack.h"
#include "plan/selection_measurements.h"

namespace coremlz::plan {
namespace {

// The status of a trial that weight SNR pruned: "pruned: WHY".
constexpr char kPruned[] = "pruned: ";

uint64_t DirectoryBytes(const std::string& path) {
  std::error_code ec;
  uint64_t total = 0;
  if (!std::filesystem::is_directory(path, ec)) return std::filesystem::file_size(path, ec);
  for (auto it = std::filesystem::recursive_directory_iterator(path, ec); !ec && it != std::filesystem::end(it);
       it.increment(ec)) {
    if (it->is_regular_file(ec)) total += it->file_size(ec);
  }
  return total;
}

// Polled between the plan's steps (the study and the trials poll it within theirs).
absl::Status CheckCancelled(const PlanOptions& options) {
  if (options.study.cancelled && options.study.cancelled()) return absl::CancelledError("the plan was cancelled");
  return absl::OkStatus();
}

void Report(const PlanOptions& options, PlanProgress::Phase phase, int round) {
  if (!options.progress) return;
  PlanProgress p;
  p.phase = phase;
  p.round = round;
  options.progress(p);
}

// Stops the engine's work inside a weight when the plan is cancelled.
class CancelHook : public engine::JobControl {
 public:
  explicit CancelHook(std::function<bool()> cancelled) : cancelled_(std::move(cancelled)) {}
  bool Cancelled() const override { return cancelled_ && cancelled_(); }

 private:
  std::function<bool()> cancelled_;
};

// Removes the work directory on every exit path.
struct WorkDir {
  std::string path;
  ~WorkDir() {
    if (!path.empty()) (void)RemoveAll(path);
  }
};

// The allocation's view of the study: per weight, the candidates it may take.
struct Allocation {
  std::vector<std::vector<int>> candidate_of;  // per weight, per knapsack choice
  std::optional<Knapsack> knapsack;
};

class Planner {
 public:
  Planner(const ModelStudy& study, const PlanOptions& options, PlanResult* result)
      : study_(study), options_(options), result_(result) {
    for (const StudiedWeight& w : study.weights()) {
      fixed_bytes_ -= w.bytes_before;
      elements_ += w.elements;
    }
    fixed_bytes_ += study.model_bytes();
  }

  // Bytes a choice adds to the model: stored bytes, plus the container
  // overhead of a compressed weight when the target is the model's size.
  // The overhead is the candidate's average, rounded down so that a uniform
  // plan is never predicted larger than it is; a plan predicted a few bytes
  // small is caught by the measurement and corrected.
  uint64_t ChoiceBytes(int w, int c, bool with_overhead) const {
    const CandidateWeight& o = study_.weights()[w].options[c];
    if (!with_overhead || !study_.candidates()[c].config) return o.bytes;
    return o.bytes + static_cast<uint64_t>(std::floor(study_.overhead_per_weight(c)));
  }

  PlanQuantities Predict(const std::vector<int>& picks) const {
    PlanQuantities q;
    OutputNoise total;
    for (size_t w = 0; w < picks.size(); ++w) {
      const int c = picks[w];
      q.weight_bytes += ChoiceBytes(static_cast<int>(w), c, false);
      q.model_bytes += ChoiceBytes(static_cast<int>(w), c, true);
      const OutputNoise& n = noise_[w][c];
      if (total.empty()) total.assign(n.size(), 0.0);
      for (size_t i = 0; i < n.size(); ++i) total[i] += n[i];
    }
    q.model_bytes += fixed_bytes_;
    q.bits_per_weight = elements_ ? 8.0 * q.weight_bytes / elements_ : 0;
    q.psnr_db = total.empty() ? std::numeric_limits<double>::infinity() : WorstPsnr(total);
    return q;
  }

  absl::Status RunTrialsAndFill() {
    const auto& weights = study_.weights();
    const auto& cands = study_.candidates();
    std::vector<Trial> trials;
    noise_.assign(weights.size(), std::vector<OutputNoise>(cands.size()));
    const size_t entries = static_cast<size_t>(study_.samples()) * study_.output_names().size();
    for (size_t w = 0; w < weights.size(); ++w) {
      WeightPlan wp;
      wp.name = weights[w].name;
      wp.consumers = weights[w].consumers;
      wp.elements = weights[w].elements;
      wp.bytes_before = weights[w].bytes_before;
      for (size_t c = 0; c < cands.size(); ++c) {
        const CandidateWeight& o = weights[w].options[c];
        CandidateOutcome out;
        out.bytes = o.bytes;
        out.weight_snr_db = o.weight_snr_db;
        if (!o.available) {
          out.status = absl::StrCat("unavailable: ", o.reason);
        } else if (!cands[c].config) {
          out.status = "keep";
          out.measured = true;  // exactly the original: no error, nothing to run
          out.output_psnr_db = std::numeric_limits<double>::infinity();
          noise_[w][c].assign(entries, 0.0);
        } else if (std::string by = DominatedBy(w, c); !by.empty()) {
          out.status = absl::StrCat(kPruned, by, " is smaller and has a higher weight SNR");
          ++result_->trials_pruned;
        } else {
          out.status = "measured";
          trials.push_back({static_cast<int>(w), static_cast<int>(c)});
        }
        wp.outcomes.push_back(out);
      }
      result_->weights.push_back(std::move(wp));
    }
    return RunAndFill(trials);
  }

  // The weights whose trial of candidate c was pruned.
  std::vector<int> PrunedWeights(int c) const {
    std::vector<int> pruned;
    for (size_t w = 0; w < result_->weights.size(); ++w) {
      if (absl::StartsWith(result_->weights[w].outcomes[c].status, kPruned)) pruned.push_back(static_cast<int>(w));
    }
    return pruned;
  }

  // Runs the pruned trials of these candidates after all (a measurement
  // showed the pruning wrong); returns how many ran per candidate.
  absl::StatusOr<std::vector<int>> Readmit(const std::vector<int>& candidates) {
    std::vector<Trial> trials;
    std::vector<int> count;
    for (int c : candidates) {
      const std::vector<int> weights = PrunedWeights(c);
      for (int w : weights) {
        result_->weights[w].outcomes[c].status = "measured (re-admitted)";
        trials.push_back({w, c});
      }
      count.push_back(static_cast<int>(weights.size()));
    }
    result_->trials_pruned -= static_cast<int>(trials.size());
    RETURN_IF_ERROR(RunAndFill(trials));
    return count;
  }

  absl::StatusOr<Knapsack> Solver(bool with_overhead) {
    std::vector<std::vector<Choice>> items;
    choice_candidate_.clear();
    for (size_t w = 0; w < result_->weights.size(); ++w) {
      std::vector<Choice> choices;
      std::vector<int> map;
      for (size_t c = 0; c < study_.candidates().size(); ++c) {
        if (!result_->weights[w].outcomes[c].measured) continue;
        choices.push_back({ChoiceBytes(static_cast<int>(w), static_cast<int>(c), with_overhead),
                           MeanNoise(noise_[w][c])});
        map.push_back(static_cast<int>(c));
      }
      if (choices.empty()) {
        return absl::InvalidArgumentError(absl::StrCat("weight \"", result_->weights[w].name,
                                                       "\" has no usable candidate (add keep to --candidates)"));
      }
      items.push_back(std::move(choices));
      choice_candidate_.push_back(std::move(map));
    }
    // As fine a grid as about 64 MB of back-pointers allows (2^16..2^22
    // cells): one-byte cells for models of a few large weights.
    const int64_t cells = std::clamp<int64_t>((int64_t{1} << 26) / std::max<size_t>(1, items.size()), int64_t{1} << 16,
                                              int64_t{1} << 22);
    return Knapsack::Solve(std::move(items), cells);
  }

  std::vector<int> Picks(const KnapsackSolution& s) const {
    std::vector<int> picks(s.picks.size());
    for (size_t w = 0; w < picks.size(); ++w) picks[w] = choice_candidate_[w][s.picks[w]];
    return picks;
  }

  engine::CompressionConfig ConfigOf(const std::vector<int>& picks) const {
    engine::CompressionConfig config;
    config.passes.push_back({});
    for (size_t w = 0; w < picks.size(); ++w) {
      config.passes[0].config.op_name_configs[study_.weights()[w].name] = study_.candidates()[picks[w]].config;
    }
    return config;
  }

  // Compresses the plan with the engine and measures the result.
  absl::StatusOr<PlanQuantities> ApplyAndMeasure(const std::vector<int>& picks, const std::string& out) {
    CancelHook control(options_.study.cancelled);
    engine::CompressOptions compress;
    compress.threads = std::max(1, options_.study.threads);  // the same bytes whatever the number
    ASSIGN_OR_RETURN(engine::CompressionReport report,
                     engine::CompressModelPath(study_.model_path(), out, ConfigOf(picks), compress,
                                               engine::WriteOptions{}, &control));
    PlanQuantities q;
    q.model_bytes = report.model_bytes_after;
    std::set<std::string> planned;
    for (const StudiedWeight& w : study_.weights()) planned.insert(w.name);
    for (const engine::WeightReport& row : report.weights) {
      if (planned.count(row.name) && ReadByFunction(row, result_->function)) {
        q.weight_bytes += row.technique == "none" ? row.bytes_before : row.bytes_after;
      }
    }
    q.bits_per_weight = elements_ ? 8.0 * q.weight_bytes / elements_ : 0;
    execute::OutputCheckOptions check;
    check.samples = options_.study.samples;
    check.seed = options_.study.seed;
    check.function = options_.study.function;
    check.cancelled = options_.study.cancelled;
    ASSIGN_OR_RETURN(std::vector<engine::OutputCheck> checks, execute::CheckOutputs(study_.model_path(), out, check));
    q.psnr_db = std::numeric_limits<double>::infinity();
    for (const engine::OutputCheck& c : checks) q.psnr_db = std::min(q.psnr_db, c.psnr_db);
    (void)RemoveAll(out);
    return q;
  }

  // Candidate c on every weight it is available for, keep elsewhere; nullopt
  // when it applies to no weight, or a weight has neither it nor keep.
  std::optional<std::vector<int>> UniformPicks(int c) const {
    int keep = -1;
    for (size_t d = 0; d < study_.candidates().size(); ++d) {
      if (!study_.candidates()[d].config) keep = static_cast<int>(d);
    }
    std::vector<int> picks;
    bool applies = false;
    for (const StudiedWeight& w : study_.weights()) {
      if (w.options[c].available) {
        picks.push_back(c);
        applies = true;
      } else if (keep >= 0) {
        picks.push_back(keep);
      } else {
        return std::nullopt;
      }
    }
    if (!applies) return std::nullopt;
    return picks;
  }

  uint64_t fixed_bytes() const { return fixed_bytes_; }
  int64_t elements() const { return elements_; }
  const std::vector<std::vector<OutputNoise>>& noise() const { return noise_; }

 private:
  // Runs a batch of trials where the options say (progress counted per
  // batch) and stores their measurements.
  absl::Status RunAndFill(const std::vector<Trial>& trials) {
    std::atomic<int> done{0};
    const int total = static_cast<int>(trials.size());
    auto report = [&](int n) {
      if (!options_.progress) return;
      PlanProgress p;
      p.phase = PlanProgress::Phase::kTrials;
      p.trials_done = n;
      p.trials_total = total;
      options_.progress(p);
    };
    report(0);
    auto on_done = [&] { report(++done); };
    absl::StatusOr<std::vector<TrialResult>> ran =
        options_.fan_out ? options_.fan_out(study_, trials, on_done)
                         : RunTrials(study_, trials, options_.study.threads, options_.study.cancelled, on_done);
    if (!ran.ok()) return ran.status();
    if (ran->size() != trials.size()) {
      return absl::InternalError(absl::StrCat(ran->size(), " trial results for ", trials.size(), " trials"));
    }
    std::vector<TrialResult>& results = *ran;
    for (size_t i = 0; i < trials.size(); ++i) {
      CandidateOutcome& out = result_->weights[trials[i].weight].outcomes[trials[i].candidate];
      out.measured = true;
      out.output_psnr_db = WorstPsnr(results[i].noise);
      out.mean_noise = MeanNoise(results[i].noise);
      noise_[trials[i].weight][trials[i].candidate] = std::move(results[i].noise);
    }
    result_->trials_run += static_cast<int>(trials.size());
    return absl::OkStatus();
  }

  // Another measured-or-measurable candidate of weight w that is no larger
  // and no further from the original weight, strictly better in one; "" if none.
  std::string DominatedBy(size_t w, size_t c) const {
    const auto& opts = study_.weights()[w].options;
    for (size_t d = 0; d < opts.size(); ++d) {
      if (d == c || !opts[d].available || !study_.candidates()[d].config) continue;
      const bool no_worse = opts[d].bytes <= opts[c].bytes && opts[d].weight_snr_db >= opts[c].weight_snr_db;
      const bool better = opts[d].bytes < opts[c].bytes || opts[d].weight_snr_db > opts[c].weight_snr_db;
      // Exact ties: the earlier candidate stays.
      if (no_worse && (better || d < c)) return study_.candidates()[d].name;
    }
    return "";
  }

  const ModelStudy& study_;
  const PlanOptions& options_;
  PlanResult* result_;
  int64_t fixed_bytes_ = 0;
  int64_t elements_ = 0;
  std::vector<std::vector<OutputNoise>> noise_;  // per weight, per candidate
  std::vector<std::vector<int>> choice_candidate_;
};

// Every compressing candidate applied uniformly (where it applies; keep
// elsewhere) beside the allocation's optimum within the same predicted
// bytes, both measured with the executor.
absl::StatusOr<std::vector<UniformComparison>> CompareUniform(const Planner& planner, const ModelStudy& study,
                                                              const Knapsack& knapsack, bool size_target,
                                                              const PlanResult& result,
                                                              SelectionMeasurements* measurements) {
  std::vector<UniformComparison> out;
  std::vector<std::vector<int>> uniform_picks, plan_picks;
  for (size_t c = 0; c < study.candidates().size(); ++c) {
    if (!study.candidates()[c].config) continue;
    std::optional<std::vector<int>> picks = planner.UniformPicks(static_cast<int>(c));
    if (!picks) continue;
    UniformComparison u;
    u.candidate = study.candidates()[c].name;
    u.candidate_index = static_cast<int>(c);
    u.uniform.predicted = planner.Predict(*picks);
    const uint64_t same_bytes =
        size_target ? u.uniform.predicted.model_bytes - planner.fixed_bytes() : u.uniform.predicted.weight_bytes;
    std::optional<KnapsackSolution> s = knapsack.MinCostWithin(same_bytes);
    if (!s) continue;  // below the grid's rounding of the smallest selection
    std::vector<int> optimum = planner.Picks(*s);
    u.plan.predicted = planner.Predict(optimum);
    std::vector<double> alone;  // the measured trials of candidate c
    bool every_trial = true;
    for (size_t w = 0; w < picks->size(); ++w) {
      if (static_cast<size_t>((*picks)[w]) != c) {
        ++u.weights_kept;
      } else if (const CandidateOutcome& o = result.weights[w].outcomes[c]; o.measured) {
        alone.push_back(o.output_psnr_db);
      } else {
        every_trial = false;
      }
    }
    const auto [lo, hi] = std::minmax_element(alone.begin(), alone.end());
    u.alone_psnr_lo_db = alone.empty() ? std::numeric_limits<double>::quiet_NaN() : *lo;
    u.alone_psnr_hi_db = alone.empty() ? std::numeric_limits<double>::quiet_NaN() : *hi;
    // A pruned trial has no noise to add up: no prediction then.
    if (!every_trial) u.uniform.predicted.psnr_db = std::numeric_limits<double>::quiet_NaN();
    out.push_back(std::move(u));
    uniform_picks.push_back(std::move(*picks));
    plan_picks.push_back(std::move(optimum));
  }
  std::vector<std::vector<int>> all = uniform_picks;
  all.insert(all.end(), plan_picks.begin(), plan_picks.end());
  RETURN_IF_ERROR(measurements->MeasureAll(all));
  for (size_t i = 0; i < out.size(); ++i) {
    out[i].uniform.measured_psnr_db = measurements->WorstPsnrOf(uniform_picks[i]);
    out[i].plan.measured_psnr_db = measurements->WorstPsnrOf(plan_picks[i]);
  }
  return out;
}

// The model's specification: a package's root spec or an .mlmodel file.
absl::StatusOr<CoreML::Specification::Model> ReadSpec(const std::string& model_path) {
  if (IsDirectory(model_path)) {
    ASSIGN_OR_RETURN(std::unique_ptr<format::MlPackage> pkg, format::MlPackage::Open(model_path));
    return pkg->model();
  }
  if (!PathExists(model_path)) return absl::NotFoundError(absl::StrCat(model_path, " does not exist"));
  ASSIGN_OR_RETURN(std::string bytes, ReadFile(model_path, uint64_t{2} << 30));
  return format::ParseModelSpec(bytes, model_path);
}

// No candidates given: the defaults for the model's deployment target, those
// it cannot express dropped (and noted) rather than refused. A
// NeuralNetwork has no ML Program target: it is offered the whole list, and
// the engine refuses what its format cannot hold (per-block scales) with
// FAILED_PRECONDITION, which drops it.
absl::Status ResolveCandidates(const std::string& model_path, PlanOptions* opts) {
  if (!opts->candidates.empty()) return absl::OkStatus();
  ASSIGN_OR_RETURN(CoreML::Specification::Model spec, ReadSpec(model_path));
  engine::Target model_target = engine::Target::kIOS18;
  if (!format::HasNeuralNetwork(spec)) {
    ASSIGN_OR_RETURN(model_target, engine::TargetFromSpecVersion(spec.specificationversion()));
  }
  opts->candidates = DefaultCandidates(model_target, opts->weight_threshold);
  opts->study.drop_inexpressible = true;
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<ModelStudy>> StudyForPlan(const std::string& model_path, const PlanOptions& options,
                                                         const std::string& work_dir) {
  PlanOptions opts = options;
  RETURN_IF_ERROR(ResolveCandidates(model_path, &opts));
  return ModelStudy::Create(model_path, opts.candidates, opts.study, work_dir);
}

absl::StatusOr<std::unique_ptr<CandidateTrials>> TrialsForPlan(const std::string& model_path,
                                                               const PlanOptions& options, const std::string& work_dir) {
  PlanOptions opts = options;
  RETURN_IF_ERROR(ResolveCandidates(model_path, &opts));
  ASSIGN_OR_RETURN(std::unique_ptr<StudyBaseline> baseline, StudyBaseline::Create(model_path, opts.study));
  return std::make_unique<CandidateTrials>(model_path, std::move(baseline), std::move(opts.candidates), work_dir,
                                           opts.study.cancelled);
}

std::string DescribeTarget(const PlanTarget& target) {
  switch (target.kind) {
    case PlanTarget::Kind::kSize: return absl::StrFormat("size <= %.0f bytes", target.value);
    case PlanTarget::Kind::kBits: return absl::StrFormat("<= %g bits per weight", target.value);
    case PlanTarget::Kind::kMinPsnr: return absl::StrFormat("output PSNR >= %g dB", target.value);
  }
  return "";
}

absl::StatusOr<PlanResult> MakePlan(const std::string& model_path, const PlanOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  auto lap = [last = start]() mutable {
    const auto now = std::chrono::steady_clock::now();
    const double s = std::chrono::duration<double>(now - last).count();
    last = now;
    return s;
  };
  const PlanTarget& target = options.target;
  // Targets that make no sense, before any work.
  if (!std::isfinite(target.value) || target.value <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("the target must be positive: ", DescribeTarget(target)));
  }
  if (!PathExists(model_path)) return absl::NotFoundError(absl::StrCat(model_path, " does not exist"));
  const uint64_t original_bytes = DirectoryBytes(model_path);
  if (target.kind == PlanTarget::Kind::kSize && target.value > static_cast<double>(original_bytes)) {
    return absl::InvalidArgumentError(absl::StrCat("--size ", static_cast<uint64_t>(target.value),
                                                   " is above the original model's ", original_bytes,
                                                   " bytes: nothing to plan"));
  }

  PlanOptions opts = options;
  RETURN_IF_ERROR(ResolveCandidates(model_path, &opts));
  WorkDir work;
  ASSIGN_OR_RETURN(work.path, MakeTempDirectory("coremlz-plan"));
  Report(opts, PlanProgress::Phase::kStudy, 0);
  ASSIGN_OR_RETURN(std::unique_ptr<ModelStudy> study, ModelStudy::Create(model_path, opts.candidates, opts.study, work.path));
  if (study->weights().empty()) return absl::InvalidArgumentError("the model has no weight the candidates compress");
  const double study_seconds = lap();

  PlanResult result;
  result.model = model_path;
  result.target = target;
  for (const Candidate& c : study->candidates()) result.candidates.push_back(c.name);
  result.dropped_candidates = study->dropped();
  result.left_out_weights = study->left_out();
  result.samples = study->samples();
  result.seed = opts.study.seed;
  result.function = study->function();
  result.original_model_bytes = study->model_bytes();
  result.kept_activations = study->keeps_activations();
  result.measured_outputs = study->output_names();

  Planner planner(*study, opts, &result);
  const bool size_target = target.kind != PlanTarget::Kind::kBits;
  // The smallest the candidates reach, still before any trial: every
  // weight at its smallest available choice.
  uint64_t least = 0;
  for (size_t w = 0; w < study->weights().size(); ++w) {
    uint64_t lo = std::numeric_limits<uint64_t>::max();
    for (size_t c = 0; c < study->candidates().size(); ++c) {
      if (!study->weights()[w].options[c].available) continue;
      lo = std::min(lo, planner.ChoiceBytes(static_cast<int>(w), static_cast<int>(c), size_target));
    }
    least += lo == std::numeric_limits<uint64_t>::max() ? study->weights()[w].bytes_before : lo;
  }
  if (target.kind == PlanTarget::Kind::kSize) {
    const double smallest = static_cast<double>(planner.fixed_bytes() + least);
    if (target.value < smallest) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "--size %.0f is below the smallest these candidates can reach (about %.0f bytes, every weight at its smallest)",
          target.value, smallest));
    }
  } else if (target.kind == PlanTarget::Kind::kBits) {
    const double lo_bits = 8.0 * least / planner.elements();
    if (target.value < lo_bits) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "--bits %g is below the smallest these candidates can reach (%.3f bits per weight)", target.value, lo_bits));
    }
    const double original_bits = 8.0 * [&] {
      uint64_t b = 0;
      for (const StudiedWeight& w : study->weights()) b += w.bytes_before;
      return b;
    }() / planner.elements();
    if (target.value > original_bits) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "--bits %g is above the original's %.3f bits per weight: nothing to plan", target.value, original_bits));
    }
  }

  result.study_seconds = study_seconds;
  RETURN_IF_ERROR(CheckCancelled(opts));
  RETURN_IF_ERROR(planner.RunTrialsAndFill());
  result.trial_seconds = lap();
  // Only a pruned trial can be asked for later (re-admitted).
  bool trials_finished = false;
  auto finish_trials = [&] {
    if (!trials_finished && opts.trials_finished) opts.trials_finished();
    trials_finished = true;
  };
  if (result.trials_pruned == 0) finish_trials();
  ASSIGN_OR_RETURN(Knapsack knapsack, planner.Solver(size_target));

  // The pruning checked against measurements before anything is applied:
  // each compressing candidate on every weight is measured beside the
  // allocation's optimum within its bytes. A candidate that weight SNR kept
  // out of the allocation (some of its trials pruned) but whose uniform
  // application measures better than that optimum was pruned wrongly for
  // this model - a per-tensor palette can beat per-channel scales on weight
  // SNR yet lose at the outputs - so its pruned trials run after all and
  // the allocation is solved again. Each pass re-admits at least one
  // candidate for good, so this ends.
  SelectionMeasurements measurements(*study, opts.study.threads, opts.study.cancelled);
  while (true) {
    Report(opts, PlanProgress::Phase::kCompare, 0);
    ASSIGN_OR_RETURN(result.uniform, CompareUniform(planner, *study, knapsack, size_target, result, &measurements));
    std::vector<int> refuted;
    std::vector<const UniformComparison*> evidence;
    for (const UniformComparison& u : result.uniform) {
      if (planner.PrunedWeights(u.candidate_index).empty()) continue;
      if (!(u.uniform.measured_psnr_db > u.plan.measured_psnr_db)) continue;
      refuted.push_back(u.candidate_index);
      evidence.push_back(&u);
    }
    result.compare_seconds += lap();
    if (refuted.empty()) break;
    ASSIGN_OR_RETURN(std::vector<int> ran, planner.Readmit(refuted));
    for (size_t i = 0; i < refuted.size(); ++i) result.readmitted.push_back({*evidence[i], ran[i]});
    result.trial_seconds += lap();
    ASSIGN_OR_RETURN(knapsack, planner.Solver(size_target));
  }
  finish_trials();

  // Solve, apply, measure, correct.
  // Of the input's kind: the engine writes nothing else.
  const std::string applied = JoinPath(work.path, IsDirectory(model_path) ? "plan.mlpackage" : "plan.mlmodel");
  double budget = 0;  // size and bits: the knapsack's budget in its bytes
  if (target.kind == PlanTarget::Kind::kSize) {
    budget = target.value - static_cast<double>(planner.fixed_bytes());
  } else if (target.kind == PlanTarget::Kind::kBits) {
    budget = std::floor(target.value * planner.elements() / 8.0);
  }
  double goal_db = target.value;  // min-psnr: the predicted mean-noise PSNR asked of the knapsack
  std::optional<std::vector<int>> best_picks;
  for (int round = 0; round < opts.max_rounds; ++round) {
    RETURN_IF_ERROR(CheckCancelled(opts));
    Report(opts, PlanProgress::Phase::kRounds, round + 1);
    PlanRound r;
    std::optional<KnapsackSolution> s;
    if (target.kind == PlanTarget::Kind::kMinPsnr) {
      // Cheap rounds first: raise the goal until even the prediction's worst
      // case meets the floor, then pay for a measurement.
      for (int i = 0; i < 40; ++i) {
        s = knapsack.MinBytesWithin(PsnrToNoise(goal_db));
        if (!s) break;
        const double predicted = planner.Predict(planner.Picks(*s)).psnr_db;
        if (predicted >= target.value) break;
        goal_db += target.value - predicted + 0.05;
      }
      r.goal = absl::StrFormat("predicted mean-noise PSNR >= %.2f dB", goal_db);
    } else {
      if (budget >= 0) s = knapsack.MinCostWithin(static_cast<uint64_t>(budget));
      r.goal = absl::StrFormat("%s budget %.0f bytes", size_target ? "model-size" : "weight", budget);
    }
    if (!s) break;
    const std::vector<int> picks = planner.Picks(*s);
    r.predicted = planner.Predict(picks);
    ASSIGN_OR_RETURN(r.measured, planner.ApplyAndMeasure(picks, applied));
    double missed_by = 0;  // how far the measurement is from the target, in the target's unit
    switch (target.kind) {
      case PlanTarget::Kind::kSize: missed_by = static_cast<double>(r.measured.model_bytes) - target.value; break;
      case PlanTarget::Kind::kBits: missed_by = (r.measured.bits_per_weight - target.value) * planner.elements() / 8.0; break;
      case PlanTarget::Kind::kMinPsnr: missed_by = target.value - r.measured.psnr_db; break;
    }
    r.met = missed_by <= 0;
    result.rounds.push_back(r);
    if (r.met) {
      best_picks = picks;
      break;
    }
    if (target.kind == PlanTarget::Kind::kMinPsnr) {
      goal_db += missed_by + 0.05;
    } else {
      budget -= std::ceil(missed_by);
    }
  }
  if (!best_picks) {
    std::string best = "no plan could be solved for";
    if (!result.rounds.empty()) {
      const PlanQuantities& m = result.rounds.back().measured;
      best = absl::StrFormat("the last of %d rounds measured %llu bytes, %.3f bits per weight, %.2f dB",
                             static_cast<int>(result.rounds.size()), static_cast<unsigned long long>(m.model_bytes),
                             m.bits_per_weight, m.psnr_db);
    }
    return absl::OutOfRangeError(absl::StrCat("cannot reach ", DescribeTarget(target), " with these candidates: ", best));
  }
  for (size_t w = 0; w < best_picks->size(); ++w) result.weights[w].chosen = (*best_picks)[w];
  result.predicted = result.rounds.back().predicted;
  result.measured = result.rounds.back().measured;
  result.config = planner.ConfigOf(*best_picks);
  result.round_seconds = lap();

  // The Pareto curve: the knapsack's optimum at evenly spaced budgets, each
  // measured by running the executor with its decoded weights (selections
  // the comparisons measured are not measured again).
  Report(opts, PlanProgress::Phase::kPareto, 0);
  const int points = std::max(2, opts.pareto_points);
  std::vector<std::vector<int>> curve;
  for (int i = 0; i < points; ++i) {
    const uint64_t b = knapsack.min_bytes() + (knapsack.max_bytes() - knapsack.min_bytes()) * i / (points - 1);
    std::optional<KnapsackSolution> s = knapsack.MinCostWithin(b);
    if (!s) continue;
    std::vector<int> picks = planner.Picks(*s);
    if (std::find(curve.begin(), curve.end(), picks) == curve.end()) curve.push_back(std::move(picks));
  }
  RETURN_IF_ERROR(measurements.MeasureAll(curve));
  for (const std::vector<int>& picks : curve) {
    ParetoPoint p;
    p.predicted = planner.Predict(picks);
    p.measured_psnr_db = measurements.WorstPsnrOf(picks);
    result.pareto.push_back(p);
  }
  std::sort(result.pareto.begin(), result.pareto.end(),
            [](const ParetoPoint& a, const ParetoPoint& b) { return a.predicted.model_bytes < b.predicted.model_bytes; });
  result.pareto_seconds = lap();
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

}  // namespace coremlz::plan
