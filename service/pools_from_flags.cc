#include "service/pools_from_flags.h"

namespace coremlz::service {

absl::StatusOr<Pools> PoolsFromFlags(const cli::Args& args, const ServerOptions& options) {
  Pools pools;
  if (args.Has("remote-workers")) {
    return absl::UnimplementedError("--remote-workers is not available in this build yet");
  }
  if (args.Has("runners") || args.Has("runners-file")) {
    return absl::UnimplementedError("--runners is not available in this build yet");
  }
  (void)options;
  return pools;
}

}  // namespace coremlz::service
