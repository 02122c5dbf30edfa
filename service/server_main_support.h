// coremlzd's main: flags -> ServerOptions, pools, signals, graceful exit.
#ifndef COREMLZ_SERVICE_SERVER_MAIN_SUPPORT_H_
#define COREMLZ_SERVICE_SERVER_MAIN_SUPPORT_H_

#include <set>
#include <string>

#include "absl/status/statusor.h"
#include "common/arg_parser.h"
#include "service/server_options.h"

namespace coremlz::service {

// Flags shared by coremlzd and coremlz-worker.
const std::set<std::string>& ServerValueFlags();
const std::set<std::string>& ServerBoolFlags();

absl::StatusOr<ServerOptions> OptionsFromFlags(const Args& args);
// `program` names the binary in messages ("coremlzd", "coremlz-worker");
// workers also serve the internal Worker service.
int RunServerMain(const Args& args, const std::string& program = "coremlzd", bool worker = false);

// Blocks until SIGTERM or SIGINT; returns the signal number.
int WaitForTerminationSignal();

}  // namespace coremlz::service

#endif  // COREMLZ_SERVICE_SERVER_MAIN_SUPPORT_H_
