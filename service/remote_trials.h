// A Plan call's trials fanned out over remote coremlz-worker processes as
// well as the front's own threads (coremlzd --remote-workers).
//
// Every worker address gets one Worker.Trials stream per plan: the model is
// uploaded once, the worker builds the same study (checked: the same
// candidates, weights, samples and outputs, or the worker is not used),
// then trials are sent a few at a time. Local threads and the streams pull
// from one shared queue of the plan's trials, so a faster party takes more.
// A worker that fails or disconnects has its outstanding trials put back
// for another party (counted as outcome="rerun"); results are stored by the
// trial's index, so the plan is the same whatever the worker count and
// whichever worker is lost. Cancelling the plan cancels every stream, which
// stops the workers' trials.
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
