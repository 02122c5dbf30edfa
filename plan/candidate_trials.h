// A remote worker's share of a plan's study: the baseline (the original's
// outputs and activations on the samples) and only the candidates the front
// asked this worker to build. The front sends a worker the trials of the
// candidates it built, by name, so a worker never compresses or holds a
// candidate it does not use; the trial results are the bits the front's own
// ModelStudy computes (the same baseline, the same decoded values).
#ifndef COREMLZ_PLAN_CANDIDATE_TRIALS_H_
#define COREMLZ_PLAN_CANDIDATE_TRIALS_H_

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "plan/candidate.h"
#include "plan/candidate_build.h"
#include "plan/study_baseline.h"
#include "plan/trial.h"

namespace coremlz::plan {

class CandidateTrials {
 public:
  CandidateTrials(std::string model_path, std::unique_ptr<StudyBaseline> baseline, std::vector<Candidate> candidates,
                  std::string work_dir, std::function<bool()> cancelled);

  const StudyBaseline& baseline() const { return *baseline_; }
  const std::vector<Candidate>& candidates() const { return candidates_; }

  struct Built {
    absl::Status status;  // the build's own (FAILED_PRECONDITION: inexpressible)
    engine::CompressionReport report;
    std::string package;  // the compressed model, for the front
  };
  // Builds candidate `index` of candidates() and keeps it for trials.
  // Thread-safe; INVALID_ARGUMENT for no such candidate or keep.
  absl::StatusOr<Built> Build(int index);

  // Weight `weight` compressed alone by candidate `candidate` (built here):
  // its stored bytes and the outputs' noise. Thread-safe.
  absl::StatusOr<TrialResult> Run(const std::string& weight, const std::string& candidate) const;

 private:
  std::string model_path_;
  std::unique_ptr<StudyBaseline> baseline_;
  std::vector<Candidate> candidates_;
  std::string work_dir_;
  std::function<bool()> cancelled_;
  mutable absl::Mutex mu_;
  std::map<std::string, std::shared_ptr<const CandidateRun>> runs_ ABSL_GUARDED_BY(mu_);
};

}  // namespace coremlz::plan

#endif  // COREMLZ_PLAN_CANDIDATE_TRIALS_H_
