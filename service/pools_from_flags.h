// Builds the worker pool (local or remote) and the device-runner validator
// a coremlzd asks for on its command line.
#ifndef COREMLZ_SERVICE_POOLS_FROM_FLAGS_H_
#define COREMLZ_SERVICE_POOLS_FROM_FLAGS_H_

#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "common/arg_parser.h"
#include "engine/worker_pool.h"
#include "api/plan_fan_out.h"
#include "api/server_options.h"
#include "api/validator.h"

namespace coremlz::service {

struct Pools {
  std::unique_ptr<engine::WorkerPool> worker_pool;  // null: local threads
  std::shared_ptr<api::Validator> validator;             // null: no validation
  std::string description;                          // for the start-up log line
  std::function<void()> on_shutdown;
  api::PlanFanOutFactory plan_fan_out;              // unset: plans' trials on the front's threads only
};

absl::StatusOr<Pools> PoolsFromFlags(const Args& args, const api::ServerOptions& options);

}  // namespace coremlz::service

#endif  // COREMLZ_SERVICE_POOLS_FROM_FLAGS_H_
