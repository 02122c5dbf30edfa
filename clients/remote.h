// The CLI's client side of coremlzd: compress and inspect through a server.
#ifndef COREMLZ_CLIENTS_REMOTE_H_
#define COREMLZ_CLIENTS_REMOTE_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "api/artifact_receiver.h"
#include "common/arg_parser.h"
#include "clients/progress.h"
#include "engine/config.h"
#include "engine/inventory.h"
#include "engine/ml_program_compressor.h"
#include "engine/report.h"
#include "format/output_target.h"
#include "grpcpp/grpcpp.h"

namespace coremlz::cli {

// A server from the connection flags (--server, --deadline, --token-file,
// --tls-ca/--tls-cert/--tls-key), shared by the remote commands.
struct Connection {
  std::shared_ptr<grpc::Channel> channel;
  std::string token;
  std::string server;
  absl::Duration deadline = absl::Seconds(600);
};
absl::StatusOr<Connection> Connect(const Args& args);
// The call's deadline and token.
void Prepare(const Connection& c, grpc::ClientContext* ctx);
// A call's status; UNAVAILABLE names the server.
absl::Status FromGrpc(const grpc::Status& s, const std::string& server);
// How a call that uploaded a model and streamed an artifact back ended, the
// cause first: the artifact's own failure (a digest mismatch, a full disk;
// the reader cancelled the call for it), else the call's status, else the
// upload's (a file that changed while it was read).
absl::Status StreamedCallStatus(const grpc::Status& call, const api::ArtifactReceiver* artifact,
                                const absl::Status& upload, const std::string& server);

// `output` is null for --report-only; else checked by the caller, and
// committed only once every artifact file passed its size and digest check.
absl::StatusOr<engine::CompressionReport> RemoteCompress(const Args& args, const std::string& input,
                                                         format::OutputTarget* output, const engine::CompressionConfig& config,
                                                         const engine::CompressOptions& options, ProgressBar* progress);
absl::StatusOr<engine::Inventory> RemoteInspect(const Args& args, const std::string& input,
                                                const engine::InspectOptions& options);
// Commands that only exist against a server (runners, ...). Returns false if
// `command` is not one of them.
bool RunRemoteCommand(const std::string& command, const std::vector<std::string>& args, int* exit_code);
bool RemoteCommandHelp(const std::string& command);

}  // namespace coremlz::cli

#endif  // COREMLZ_CLIENTS_REMOTE_H_
