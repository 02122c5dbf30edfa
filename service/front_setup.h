// What coremlzd, the front, adds to a job server (api/job_server_main.h):
// the worker pool it asks for (local, or remote workers), device runners
// for validation, and the result cache.
#ifndef COREMLZ_SERVICE_FRONT_SETUP_H_
#define COREMLZ_SERVICE_FRONT_SETUP_H_

#include "absl/status/statusor.h"
#include "api/job_server_main.h"
#include "api/server_options.h"
#include "common/arg_parser.h"

namespace coremlz::service {

absl::StatusOr<api::JobServerSetup> FrontSetup(const Args& args, const api::ServerOptions& options);

}  // namespace coremlz::service

#endif  // COREMLZ_SERVICE_FRONT_SETUP_H_
