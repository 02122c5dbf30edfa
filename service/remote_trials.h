// A Plan call's study and trials fanned out over remote coremlz-worker
// processes as well as the front's own threads (coremlzd --remote-workers).
//
// Every worker address gets one Worker.Trials stream per plan: the model is
// uploaded once and the worker makes the study's baseline (checked: the same
// candidates, samples and outputs, or the worker is not used). Then the
// candidate builds - each the model compressed with one candidate, the
// expensive half of a study - are shared out: local threads and the streams
// take them from one queue, a worker sends each package it built back (the
// front needs every candidate for its allocation and Pareto curve) and keeps
// it. Then the trials: a worker takes trials of candidates it built, a few
// at a time; the front's threads take any, those of candidates no worker
// holds first. A worker whose own trials are done builds the candidate with
// the most trials still waiting (a build costs a few trials' time) and takes
// a share of those (coremlz_plan_shared_builds_total), so the trials do not
// pile up on whoever built the most; a worker holds only what its trials
// need. The trials may come in more than one batch (a candidate the plan
// re-admits after its comparisons): a stream stays with the plan after a
// batch, idle, and takes part in the next, until the plan says no trial can
// follow (PlanFanOut::finished), which ends every stream. Meanwhile each
// worker keeps its slot and its study (only when some trial was pruned:
// while the plan's uniform comparisons run). A stream still building a
// candidate to share when its batch ends is cut short and takes no later
// batch.
//
// A worker that fails or disconnects, or says nothing for longer than its
// patience (derived from the baseline's time, the slowest build or trial
// seen and the call's deadline) has what it owed put back for another party
// (trials counted as outcome="rerun"); results are stored by index, so the
// plan is the same bytes whatever the worker count and whichever worker is
// lost or hangs. Cancelling the plan cancels every stream.
//
// remote_trials.cc is ~780 lines for a reason: it is one scheduler - the
// queue of builds and trials, each worker's stream, the patience clock -
// whose parts all read and write the queue's state under one mutex. What
// stands alone lives elsewhere: plan/candidate_build, plan/candidate_trials
// (the work), api/plan_fan_out.h (the interface), workers/trials_reactor.cc
// (the worker's side).
#ifndef COREMLZ_SERVICE_REMOTE_TRIALS_H_
#define COREMLZ_SERVICE_REMOTE_TRIALS_H_

#include <string>

#include "api/credentials.h"
#include "api/plan_fan_out.h"

namespace coremlz::service {

struct RemoteTrialsOptions {
  std::string target;  // as --remote-workers: "dns:///name:port" or "host:port,host:port"
  api::TlsFiles tls;
  std::string token;
  int window = 4;  // trials in flight per worker
};

api::PlanFanOutFactory MakeRemoteTrialsFanOut(const RemoteTrialsOptions& options);

}  // namespace coremlz::service

#endif  // COREMLZ_SERVICE_REMOTE_TRIALS_H_
