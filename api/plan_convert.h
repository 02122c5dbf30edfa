// plan::PlanResult and its target as protos (coremlz/v1/plan.proto) and
// back, field for field: a client given the proto renders the same table,
// report and page as from the plan itself (doubles travel exactly).
#ifndef COREMLZ_API_PLAN_CONVERT_H_
#define COREMLZ_API_PLAN_CONVERT_H_

#include "absl/status/statusor.h"
#include "coremlz/v1/plan.pb.h"
#include "plan/planner.h"

namespace coremlz::api {

v1::PlanTarget ToProto(const plan::PlanTarget& target);
// INVALID_ARGUMENT for an unspecified or unknown kind.
absl::StatusOr<plan::PlanTarget> FromProto(const v1::PlanTarget& target);

// Everything but the config, which travels as YAML (PlanOutputs.config_yaml).
v1::PlanResult ToProto(const plan::PlanResult& result);
// INVALID_ARGUMENT when a chosen index or an outcome list does not fit the
// candidates (a client never indexes past what it was sent).
absl::StatusOr<plan::PlanResult> FromProto(const v1::PlanResult& result);

}  // namespace coremlz::api

#endif  // COREMLZ_API_PLAN_CONVERT_H_
