#include "plan/model_study.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <mutex>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/status_macros.h"
#include "engine/compress_model.h"
#include "engine/job_control.h"
#include "execute/compare.h"
#include "execute/synthetic_inputs.h"

namespace coremlz::plan {
namespace {

// One candidate compressed over the whole model, and its executor.
struct CandidateRun {
  absl::Status status;
  engine::CompressionReport report;
  execute::LoadedModel model;
};

// Stops a candidate's compression inside a weight when the plan is cancelled.
class CancelHook : public engine::JobControl {
 public:
  explicit CancelHook(const std::function<bool()>& cancelled) : cancelled_(cancelled) {}
  bool Cancelled() const override { return cancelled_ && cancelled_(); }

 private:
  const std::function<bool()>& cancelled_;
};

CandidateRun CompressCandidate(const std::string& model_path, const Candidate& c, const std::string& work_dir,
                               const std::string& function, const std::function<bool()>& cancelled) {
  CancelHook control(cancelled);
  CandidateRun run;
  engine::CompressionConfig config;
  config.passes.push_back({});
  config.passes[0].config.global = *c.config;
  const std::string out = JoinPath(work_dir, absl::StrCat("candidate-", c.name, ".mlpackage"));
  absl::StatusOr<engine::CompressionReport> report =
      engine::CompressModelPath(model_path, out, config, engine::CompressOptions{}, engine::WriteOptions{}, &control);
  if (!report.ok()) {
    run.status = report.status();
    return run;
  }
  run.report = *std::move(report);
  absl::StatusOr<execute::LoadedModel> model = execute::LoadModel(out, function);
  if (!model.ok()) {
    run.status = model.status();
    return run;
  }
  run.model = *std::move(model);
  return run;
}

bool Compressed(const engine::WeightReport& row) { return row.technique != "none" && row.skipped_reason.empty(); }

}  // namespace

bool ReadByFunction(const engine::WeightReport& row, const std::string& function) {
  return row.function == function || std::find(row.functions.begin(), row.functions.end(), function) != row.functions.end();
}

double NoiseToPsnr(double noise) {
  if (noise <= 0) return std::numeric_limits<double>::infinity();
  return -10.0 * std::log10(noise);
}

double PsnrToNoise(double psnr_db) {
  if (std::isinf(psnr_db)) return psnr_db > 0 ? 0.0 : std::numeric_limits<double>::infinity();
  return std::pow(10.0, -psnr_db / 10.0);
}

double WorstPsnr(const OutputNoise& noise) {
  double worst = std::numeric_limits<double>::infinity();
  for (double n : noise) worst = std::min(worst, NoiseToPsnr(n));
  return worst;
}

double MeanNoise(const OutputNoise& noise) {
  double sum = 0;
  for (double n : noise) sum += n;
  return noise.empty() ? 0 : sum / noise.size();
}

absl::StatusOr<std::unique_ptr<ModelStudy>> ModelStudy::Create(const std::string& model_path,
                                                                std::vector<Candidate> candidates,
                                                                const StudyOptions& options,
                                                                const std::string& work_dir) {
  if (options.samples < 1 || options.samples > 1000) {
    return absl::InvalidArgumentError(absl::StrCat("--samples takes 1..1000, not ", options.samples));
  }
  std::unique_ptr<ModelStudy> study(new ModelStudy);
  study->model_path_ = model_path;
  ASSIGN_OR_RETURN(study->original_, execute::LoadModel(model_path, options.function));
  if (study->original_.program() == nullptr) {
    return absl::UnimplementedError(
        "planning a NeuralNetwork model is not supported yet: the executor runs it, but trials rely on an ML "
        "Program's incremental runs");
  }
  const execute::ProgramExecutor& original = *study->original_.program();
  if (original.is_stateful()) {
    return absl::UnimplementedError("planning a stateful function (one with state inputs) is not supported");
  }

  // The original on every sample, keeping its activations if they fit;
  // first, so that a model the planner cannot measure fails early.
  ASSIGN_OR_RETURN(std::vector<execute::InputSpec> specs,
                   execute::DescribeInputs(study->original_.package->model(), original));
  for (int i = 0; i < options.samples; ++i) {
    if (options.cancelled && options.cancelled()) return absl::CancelledError("the plan was cancelled");
    const auto inputs = execute::SyntheticInputs(specs, options.seed, i);
    ASSIGN_OR_RETURN(execute::ProgramExecutor::KeptRun kept, original.RunKeeping(inputs, study->keeps_activations_));
    if (i == 0 && kept.bytes * options.samples > options.max_kept_bytes) {
      study->keeps_activations_ = false;
      ASSIGN_OR_RETURN(kept, original.RunKeeping(inputs, false));
    }
    study->kept_bytes_ += kept.bytes;
    ASSIGN_OR_RETURN(auto reference, original.RunReplacing(kept, {}));
    for (const auto& [name, t] : reference) {
      if (!t.is_float()) {
        return absl::UnimplementedError(absl::StrCat("output '", name, "' is ", execute::DTypeName(t.dtype()),
                                                     ": the planner measures outputs by PSNR, which needs floating-point "
                                                     "outputs (labels such as an arg max are not measured)"));
      }
    }
    if (i == 0) {
      for (const auto& [name, t] : reference) study->output_names_.push_back(name);
    }
    study->kept_.push_back(std::move(kept));
    study->references_.push_back(std::move(reference));
  }

  // Every candidate over the whole model, on a fixed pool of threads.
  std::vector<CandidateRun> runs(candidates.size());
  {
    std::atomic<size_t> next{0};
    auto work = [&]() {
      for (size_t i = next++; i < candidates.size(); i = next++) {
        if (!candidates[i].config) continue;
        if (options.cancelled && options.cancelled()) {
          runs[i].status = absl::CancelledError("the plan was cancelled");
          continue;
        }
        runs[i] = CompressCandidate(model_path, candidates[i], work_dir, original.function(), options.cancelled);
      }
    };
    std::vector<std::thread> pool;
    for (int t = 1; t < std::min<int>(options.threads, static_cast<int>(candidates.size())); ++t) pool.emplace_back(work);
    work();
    for (std::thread& t : pool) t.join();
  }
  // Drop (default list) or refuse (user's list) what the target cannot express.
  std::vector<Candidate> kept_candidates;
  std::vector<CandidateRun> kept_runs;
  for (size_t i = 0; i < candidates.size(); ++i) {
    const absl::Status& s = runs[i].status;
    if (!s.ok()) {
      if (options.drop_inexpressible && s.code() == absl::StatusCode::kFailedPrecondition) {
        study->dropped_.push_back(absl::StrCat(candidates[i].name, ": ", s.message()));
        continue;
      }
      return absl::Status(s.code(), absl::StrCat("candidate ", candidates[i].name, ": ", s.message()));
    }
    kept_candidates.push_back(std::move(candidates[i]));
    kept_runs.push_back(std::move(runs[i]));
  }
  study->candidates_ = std::move(kept_candidates);
  const std::vector<Candidate>& cands = study->candidates_;
  const engine::CompressionReport* any_report = nullptr;
  for (const CandidateRun& r : kept_runs) {
    if (r.model.executor) any_report = &r.report;
  }
  if (!any_report) return absl::InvalidArgumentError("no candidate compresses anything (only keep is left)");
  study->model_bytes_ = any_report->model_bytes_before;

  // Rows by weight name, per candidate.
  std::vector<std::map<std::string, const engine::WeightReport*>> rows(cands.size());
  study->overhead_.assign(cands.size(), 0.0);
  for (size_t c = 0; c < cands.size(); ++c) {
    if (!cands[c].config) continue;
    const engine::CompressionReport& rep = kept_runs[c].report;
    int64_t saved = 0;
    int compressed = 0;
    for (const engine::WeightReport& row : rep.weights) {
      rows[c][row.name] = &row;
      if (Compressed(row)) {
        saved += static_cast<int64_t>(row.bytes_before) - static_cast<int64_t>(row.bytes_after);
        ++compressed;
      }
    }
    const int64_t growth = static_cast<int64_t>(rep.model_bytes_after) - static_cast<int64_t>(rep.model_bytes_before) + saved;
    study->overhead_[c] = compressed ? std::max<double>(0.0, static_cast<double>(growth) / compressed) : 0.0;
  }

  for (const engine::WeightReport& row : any_report->weights) {
    if (!ReadByFunction(row, original.function())) continue;
    bool any = false;
    for (size_t c = 0; c < cands.size(); ++c) {
      auto it = rows[c].find(row.name);
      any = any || (it != rows[c].end() && Compressed(*it->second));
    }
    if (!any) continue;
    StudiedWeight w;
    w.name = row.name;
    w.consumers = row.consumers;
    w.elements = execute::NumElements(row.shape);
    w.bytes_before = row.bytes_before;
    w.slot = original.ConstantSlot(row.name);
    if (w.slot < 0) continue;  // not a value of the executed function
    const std::vector<execute::ProgramExecutor::ArgumentRef> uses = original.UsesOf(w.slot);
    if (uses.empty()) continue;
    for (size_t c = 0; c < cands.size(); ++c) {
      CandidateWeight o;
      if (!cands[c].config) {
        o.available = true;
        o.bytes = w.bytes_before;
        o.weight_snr_db = std::numeric_limits<double>::infinity();
        w.options.push_back(o);
        continue;
      }
      auto it = rows[c].find(row.name);
      if (it == rows[c].end() || !Compressed(*it->second)) {
        o.reason = it == rows[c].end() ? "not in the candidate's report" : it->second->skipped_reason;
        if (o.reason.empty()) o.reason = "left as it is by the engine";
        w.options.push_back(o);
        continue;
      }
      o.bytes = it->second->bytes_after;
      o.weight_snr_db = it->second->error.snr_db;
      // The decoded value every consumer of the weight reads in the candidate's model.
      o.decoded = kept_runs[c].model.program()->ConstantAt(uses[0]);
      const auto original_value = original.ConstantAt(uses[0]);
      if (!o.decoded || !original_value || o.decoded->shape() != original_value->shape() ||
          o.decoded->dtype() != original_value->dtype()) {
        return absl::InternalError(absl::StrCat("weight \"", row.name, "\": candidate ", cands[c].name,
                                                "'s decoded value does not line up with the original's"));
      }
      o.available = true;
      w.options.push_back(o);
    }
    study->weights_.push_back(std::move(w));
  }
  kept_runs.clear();  // the decoded weights live on in the study; the rest of the candidate models go

  return study;
}

absl::StatusOr<OutputNoise> ModelStudy::Measure(const std::vector<std::pair<int, int>>& choice) const {
  std::vector<execute::ProgramExecutor::Replacement> replacements;
  for (const auto& [w, c] : choice) {
    if (w < 0 || w >= static_cast<int>(weights_.size()) || c < 0 || c >= static_cast<int>(candidates_.size())) {
      return absl::InvalidArgumentError(absl::StrCat("no weight ", w, " or candidate ", c));
    }
    const CandidateWeight& o = weights_[w].options[c];
    if (!o.available) {
      return absl::InvalidArgumentError(absl::StrCat("candidate ", candidates_[c].name, " is not available for weight \"",
                                                     weights_[w].name, "\": ", o.reason));
    }
    if (o.decoded) replacements.push_back({weights_[w].slot, o.decoded});
  }
  OutputNoise noise;
  noise.reserve(kept_.size() * output_names_.size());
  for (size_t s = 0; s < kept_.size(); ++s) {
    ASSIGN_OR_RETURN(auto outputs, original_.program()->RunReplacing(kept_[s], replacements));
    for (const std::string& name : output_names_) {
      const execute::Tensor& ref = references_[s].at(name);
      ASSIGN_OR_RETURN(execute::OutputComparison c, execute::CompareOutputs(ref.floats(), outputs.at(name).floats()));
      noise.push_back(PsnrToNoise(c.psnr_db));
    }
  }
  return noise;
}

absl::StatusOr<TrialResult> ModelStudy::Run(const Trial& trial) const {
  TrialResult r;
  ASSIGN_OR_RETURN(r.noise, Measure({{trial.weight, trial.candidate}}));
  r.bytes = weights_[trial.weight].options[trial.candidate].bytes;
  return r;
}

}  // namespace coremlz::plan
