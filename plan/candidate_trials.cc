#include "plan/candidate_trials.h"

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/status_macros.h"
#include "plan/model_study.h"

namespace coremlz::plan {

CandidateTrials::CandidateTrials(std::string model_path, std::unique_ptr<StudyBaseline> baseline,
                                 std::vector<Candidate> candidates, std::string work_dir,
                                 std::function<bool()> cancelled)
    : model_path_(std::move(model_path)),
      baseline_(std::move(baseline)),
      candidates_(std::move(candidates)),
      work_dir_(std::move(work_dir)),
      cancelled_(std::move(cancelled)) {}

absl::StatusOr<CandidateTrials::Built> CandidateTrials::Build(int index) {
  if (index < 0 || index >= static_cast<int>(candidates_.size()) || !candidates_[index].config) {
    return absl::InvalidArgumentError(absl::StrCat("no candidate ", index, " to build in this study"));
  }
  const Candidate& c = candidates_[index];
  CandidateJob job{index, c, CandidatePath(work_dir_, c.name, model_path_)};
  {
    absl::MutexLock lock(&mu_);
    if (runs_.count(c.name)) return absl::FailedPreconditionError(absl::StrCat("candidate ", c.name, " was built already"));
  }
  auto run = std::make_shared<CandidateRun>(BuildCandidate(model_path_, job, baseline_->function(), cancelled_));
  Built built{run->status, run->report, job.package};
  if (run->status.ok()) {
    absl::MutexLock lock(&mu_);
    runs_[c.name] = std::move(run);
  }
  return built;
}

absl::StatusOr<TrialResult> CandidateTrials::Run(const std::string& weight, const std::string& candidate) const {
  std::shared_ptr<const CandidateRun> run;
  {
    absl::MutexLock lock(&mu_);
    auto it = runs_.find(candidate);
    if (it != runs_.end()) run = it->second;
  }
  if (!run) return absl::FailedPreconditionError(absl::StrCat("candidate ", candidate, " was not built here"));
  const engine::WeightReport* row = nullptr;
  for (const engine::WeightReport& r : run->report.weights) {
    if (r.name == weight && ReadByFunction(r, baseline_->function())) row = &r;
  }
  if (row == nullptr || row->technique == "none" || !row->skipped_reason.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("candidate ", candidate, " does not compress weight \"", weight, "\""));
  }
  ASSIGN_OR_RETURN(StudyBaseline::WeightSlot decoded, baseline_->DecodedIn(run->model, weight, candidate));
  if (decoded.slot < 0) return absl::InvalidArgumentError(absl::StrCat("weight \"", weight, "\" is not used here"));
  TrialResult r;
  ASSIGN_OR_RETURN(r.noise, baseline_->Measure({{decoded.slot, decoded.decoded}}));
  r.bytes = row->bytes_after;
  return r;
}

}  // namespace coremlz::plan
