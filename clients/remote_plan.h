// `coremlz plan --server`: the model uploaded to coremlzd's Plan call, the
// plan's outputs and (with --apply) the compressed model received back.
#ifndef COREMLZ_CLIENTS_REMOTE_PLAN_H_
#define COREMLZ_CLIENTS_REMOTE_PLAN_H_

#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "common/arg_parser.h"
#include "coremlz/v1/compressor.pb.h"
#include "format/output_target.h"
#include "plan/planner.h"

namespace coremlz::cli {

struct RemotePlanOutputs {
  plan::PlanResult result;  // for the table and --html (no config: it is config_yaml)
  std::string config_yaml, report_json, pareto_svg;
  uint64_t applied_model_bytes = 0;
};

// `header` carries the plan's request (target, candidates, ...); its files
// and model name are filled in here. `apply` (null: none) is committed only
// once every artifact file passed its size and digest check. `cancelled`
// (optional, polled) cancels the call: the server stops the plan.
// `progress` (optional) gets the server's progress messages, the upload's
// (UPLOAD, from the uploading thread: it must be thread-safe) and, as APPLY
// with bytes, the artifact's download.
absl::StatusOr<RemotePlanOutputs> RemotePlan(const Args& args, const std::string& input, v1::PlanHeader header,
                                             format::OutputTarget* apply, std::function<bool()> cancelled = nullptr,
                                             std::function<void(const v1::PlanProgress&)> progress = nullptr);

}  // namespace coremlz::cli

#endif  // COREMLZ_CLIENTS_REMOTE_PLAN_H_
