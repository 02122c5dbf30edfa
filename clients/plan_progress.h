// `coremlz plan`'s progress line. A plan runs for seconds to minutes with
// nothing to print until its table, so the phase it is in (and the trials
// done of all) is drawn on stderr when it is a terminal. The embedded plan
// and coremlzd's Plan call report the same phases; the call adds the
// upload, its place in the queue and the --apply artifact.
#ifndef COREMLZ_CLIENTS_PLAN_PROGRESS_H_
#define COREMLZ_CLIENTS_PLAN_PROGRESS_H_

#include "clients/progress.h"
#include "coremlz/v1/compressor.pb.h"
#include "plan/planner.h"

namespace coremlz::cli {

void ShowPlanProgress(const plan::PlanProgress& p, ProgressBar* bar);
void ShowPlanProgress(const v1::PlanProgress& p, ProgressBar* bar);

}  // namespace coremlz::cli

#endif  // COREMLZ_CLIENTS_PLAN_PROGRESS_H_
