// --test-job-delay-ms, a test knob of coremlzd and coremlz-worker: every
// weight of every job takes that much longer, so that tests can catch jobs
// in flight (cancellation, drains, kills).
#ifndef COREMLZ_API_TEST_JOB_DELAY_H_
#define COREMLZ_API_TEST_JOB_DELAY_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "api/server_options.h"
#include "common/arg_parser.h"
#include "engine/worker_pool.h"

namespace coremlz::api {

// Without the flag (or 0), `pool` as it is. With it, `pool` - or, when null,
// a local pool from the options - behind the delay, and the knob appended
// to *description for the start-up line.
absl::StatusOr<std::unique_ptr<engine::WorkerPool>> WithTestJobDelay(const Args& args, const ServerOptions& options,
                                                                     std::unique_ptr<engine::WorkerPool> pool,
                                                                     std::string* description);

}  // namespace coremlz::api

#endif  // COREMLZ_API_TEST_JOB_DELAY_H_
