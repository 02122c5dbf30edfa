// The main of a coremlz job server (coremlzd, coremlz-worker) once its
// flags are parsed: options, descriptor guard, stale job directories, the
// server itself, then SIGTERM/SIGINT and a graceful drain.
#ifndef COREMLZ_API_JOB_SERVER_MAIN_H_
#define COREMLZ_API_JOB_SERVER_MAIN_H_

#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "api/job_server.h"
#include "api/server_options.h"
#include "common/arg_parser.h"

namespace coremlz::api {

// What a binary adds to the options: the parts its server starts with, a
// phrase for the start-up line (", remote workers at ..."), and what to do
// once the server has stopped.
struct JobServerSetup {
  JobServerParts parts;
  std::string description;
  std::function<void()> on_shutdown;
};
using JobServerSetupFn = std::function<absl::StatusOr<JobServerSetup>(const Args& args, const ServerOptions& options)>;

// `program` names the binary in messages ("coremlzd", "coremlz-worker").
// Returns the process's exit code.
int RunJobServerMain(const Args& args, const std::string& program, const JobServerSetupFn& setup);

}  // namespace coremlz::api

#endif  // COREMLZ_API_JOB_SERVER_MAIN_H_
