// Where a Plan call's candidate builds and trials run. By default on the
// job's own threads (LocalPlanFanOut for the trials); a front with remote
// workers installs a factory on the CompressorService that also sends builds
// and trials to coremlz-worker processes (service/remote_trials.h). Either
// way every trial is counted in coremlz_plan_trials_total.
#ifndef COREMLZ_API_PLAN_FAN_OUT_H_
#define COREMLZ_API_PLAN_FAN_OUT_H_

#include <functional>
#include <string>

#include "absl/time/time.h"
#include "api/server_metrics.h"
#include "coremlz/v1/compressor.pb.h"
#include "plan/candidate_build.h"
#include "plan/trial.h"

namespace coremlz::api {

// What a fan-out needs to let other processes run the same trials: the
// uploaded model (its files, to send on), the request (a worker builds its
// own study from the same options, which gives the same numbers), and the
// call's limits.
struct PlanFanOutRequest {
  std::string model_path;  // the uploaded model in the job directory
  std::string upload_root;  // the directory the header's file paths are relative to
  v1::PlanHeader header;
  int local_threads = 1;
  std::function<bool()> cancelled;
  absl::Time deadline = absl::InfiniteFuture();
  ServerMetrics* metrics = nullptr;
};

// A plan's fan-out: where its candidates are built and where its trials run
// (either null: on the job's own threads); `finished` (optional) is
// plan::PlanOptions::trials_finished - no more trials will come.
struct PlanFanOut {
  plan::CandidateFanOut builds;
  plan::TrialFanOut trials;
  std::function<void()> finished;
};

using PlanFanOutFactory = std::function<PlanFanOut(const PlanFanOutRequest&)>;

// RunTrials on `request.local_threads` threads, counting each trial's
// outcome (measured or failed).
plan::TrialFanOut LocalPlanFanOut(const PlanFanOutRequest& request);

}  // namespace coremlz::api

#endif  // COREMLZ_API_PLAN_FAN_OUT_H_
