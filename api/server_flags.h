// The command-line flags every coremlz job server takes (coremlzd and
// coremlz-worker), and the ServerOptions they make.
#ifndef COREMLZ_API_SERVER_FLAGS_H_
#define COREMLZ_API_SERVER_FLAGS_H_

#include <set>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "api/server_options.h"
#include "common/arg_parser.h"

namespace coremlz::api {

// Flags shared by coremlzd and coremlz-worker (the front-only ones included,
// so that the worker can name them when it refuses them).
const std::set<std::string>& ServerValueFlags();
const std::set<std::string>& ServerBoolFlags();

absl::StatusOr<ServerOptions> OptionsFromFlags(const Args& args);

// --grace-seconds: how long calls in flight may run on after SIGTERM.
absl::Duration DrainGraceFromFlags(const Args& args);

}  // namespace coremlz::api

#endif  // COREMLZ_API_SERVER_FLAGS_H_
