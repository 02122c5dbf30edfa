// coremlzd's main: flags -> ServerOptions, pools, signals, graceful exit.
#ifndef COREMLZ_SERVICE_SERVER_MAIN_SUPPORT_H_
#define COREMLZ_SERVICE_SERVER_MAIN_SUPPORT_H_

#include "absl/status/statusor.h"
#include "clients/arg_parser.h"
#include "service/server_options.h"

namespace coremlz::service {

absl::StatusOr<ServerOptions> OptionsFromFlags(const cli::Args& args);
int RunServerMain(const cli::Args& args);

// Blocks until SIGTERM or SIGINT; returns the signal number.
int WaitForTerminationSignal();

}  // namespace coremlz::service

#endif  // COREMLZ_SERVICE_SERVER_MAIN_SUPPORT_H_
