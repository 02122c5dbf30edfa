#include "clients/remote.h"

namespace coremlz::cli {

absl::StatusOr<engine::CompressionReport> RemoteCompress(const Args&, const std::string&, const std::string&,
                                                         const engine::CompressionConfig&, const engine::CompressOptions&,
                                                         ProgressBar*) {
  return absl::UnimplementedError("this build of coremlz has no client for coremlzd yet");
}

absl::StatusOr<engine::Inventory> RemoteInspect(const Args&, const std::string&, const engine::InspectOptions&) {
  return absl::UnimplementedError("this build of coremlz has no client for coremlzd yet");
}

bool RunRemoteCommand(const std::string&, const std::vector<std::string>&, int*) { return false; }
bool RemoteCommandHelp(const std::string&) { return false; }

}  // namespace coremlz::cli
