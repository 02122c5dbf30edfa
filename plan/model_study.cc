#include "plan/model_study.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/status_macros.h"

namespace coremlz::plan {
namespace {

bool Compressed(const engine::WeightReport& row) { return row.technique != "none" && row.skipped_reason.empty(); }

}  // namespace

bool ReadByFunction(const engine::WeightReport& row, const std::string& function) {
  // A NeuralNetwork's rows name no function: it has one.
  if (row.function.empty() && row.functions.empty()) return true;
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
  std::unique_ptr<ModelStudy> study(new ModelStudy);
  // The original first, so that a model the planner cannot measure fails early.
  ASSIGN_OR_RETURN(study->baseline_, StudyBaseline::Create(model_path, options));
  const StudyBaseline& baseline = *study->baseline_;

  // Every candidate over the whole model, here or fanned out.
  std::vector<CandidateJob> jobs;
  for (size_t i = 0; i < candidates.size(); ++i) {
    if (!candidates[i].config) continue;
    jobs.push_back({static_cast<int>(i), candidates[i], CandidatePath(work_dir, candidates[i].name, model_path)});
  }
  const std::string function = baseline.function();
  // Builds run on the study's threads, and each build compresses its
  // weights on as many: the slowest candidate (8-bit k-means) outlasts the
  // others, and would otherwise finish on one core while the rest idle.
  // The packages are the same either way.
  const CandidateBuilder local = [&](const CandidateJob& job) {
    return BuildCandidate(model_path, job, function, options.cancelled, options.threads);
  };
  StudyShape shape;
  for (const Candidate& c : candidates) shape.candidates.push_back(c.name);
  shape.samples = baseline.samples();
  shape.outputs = baseline.output_names();
  std::vector<CandidateRun> built = options.build_fan_out ? options.build_fan_out(jobs, local, shape)
                                                          : BuildLocally(jobs, local, options.threads);
  if (built.size() != jobs.size()) {
    return absl::InternalError(absl::StrCat(built.size(), " candidate builds for ", jobs.size(), " candidates"));
  }
  std::vector<CandidateRun> runs(candidates.size());
  for (size_t j = 0; j < jobs.size(); ++j) runs[jobs[j].index] = std::move(built[j]);
  if (options.cancelled && options.cancelled()) return absl::CancelledError("the plan was cancelled");
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
    if (!ReadByFunction(row, function)) continue;
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
    absl::StatusOr<int> slot = baseline.SlotOf(row.name);
    if (!slot.ok()) {
      // Never measured wrongly: left as it is, and the plan says why.
      study->left_out_.push_back(absl::StrCat(row.name, ": ", slot.status().message()));
      continue;
    }
    w.slot = *slot;
    if (w.slot < 0) continue;  // not a value of the executed function, or unused in it
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
      ASSIGN_OR_RETURN(StudyBaseline::WeightSlot decoded, baseline.DecodedIn(kept_runs[c].model, row.name, cands[c].name));
      o.decoded = std::move(decoded.decoded);
      o.available = true;
      w.options.push_back(o);
    }
    study->weights_.push_back(std::move(w));
  }
  kept_runs.clear();  // the decoded weights live on in the study; the rest of the candidate models go

  return study;
}

absl::StatusOr<OutputNoise> ModelStudy::Measure(const std::vector<std::pair<int, int>>& choice) const {
  std::vector<execute::ModelExecutor::WeightReplacement> replacements;
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
  return baseline_->Measure(replacements);
}

absl::StatusOr<TrialResult> ModelStudy::Run(const Trial& trial) const {
  TrialResult r;
  ASSIGN_OR_RETURN(r.noise, Measure({{trial.weight, trial.candidate}}));
  r.bytes = weights_[trial.weight].options[trial.candidate].bytes;
  return r;
}

}  // namespace coremlz::plan
