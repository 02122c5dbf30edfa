#include "clients/remote.h"

#include <cstdio>
#include <functional>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "api/artifact_receiver.h"
#include "api/channel.h"
#include "api/client_call.h"
#include "api/convert.h"
#include "api/credentials.h"
#include "api/grpc_status.h"
#include "api/grpc_wire.h"
#include "api/transfer.h"
#include "clients/exit_codes.h"
#include "common/status_macros.h"
#include "coremlz/v1/compressor.grpc.pb.h"
#include "google/protobuf/util/json_util.h"
#include "grpcpp/grpcpp.h"

namespace coremlz::cli {

absl::Status FromGrpc(const grpc::Status& s, const std::string& server) {
  absl::Status status = api::FromGrpcStatus(s);
  // "failed to connect" alone does not say to what.
  if (status.code() == absl::StatusCode::kUnavailable) return absl::UnavailableError(absl::StrCat(server, ": ", status.message()));
  return status;
}

absl::Status StreamedCallStatus(const grpc::Status& call, const api::ArtifactReceiver* artifact,
                                const absl::Status& upload, const std::string& server) {
  if (artifact && !artifact->status().ok()) return artifact->status();
  if (!call.ok()) return FromGrpc(call, server);
  return upload;
}

absl::StatusOr<Connection> Connect(const Args& args) {
  Connection c;
  c.server = *args.Value("server");
  api::TlsFiles tls;
  tls.client_ca = args.Value("tls-ca").value_or("");
  tls.cert = args.Value("tls-cert").value_or("");
  tls.key = args.Value("tls-key").value_or("");
  ASSIGN_OR_RETURN(std::shared_ptr<grpc::ChannelCredentials> creds, api::ChannelCredentials(tls));
  c.channel = api::OpenChannel(c.server, creds);
  if (auto path = args.Value("token-file")) { ASSIGN_OR_RETURN(c.token, api::ReadToken(*path)); }
  ASSIGN_OR_RETURN(std::optional<double> deadline, args.Double("deadline"));
  if (deadline) {
    if (*deadline <= 0) return absl::InvalidArgumentError("--deadline must be positive");
    c.deadline = absl::Seconds(*deadline);
  }
  return c;
}

void Prepare(const Connection& c, grpc::ClientContext* ctx) {
  api::PrepareCall(ctx, absl::Now() + c.deadline, c.token);
}

namespace {

std::string ValidationLine(const v1::ValidationResult& v) {
  std::string line = absl::StrCat(v.device().name().empty() ? v.device().model() : v.device().name(), " (",
                                  v.backend(), " on ", v.runner(), "): ", v.passed() ? "passed" : "FAILED");
  if (v.ran_coreml()) {
    absl::StrAppend(&line, absl::StrFormat(", load %.1f ms, latency median %.2f ms p90 %.2f ms", v.load_seconds() * 1000,
                                           v.latency().median_ms(), v.latency().p90_ms()));
  } else {
    absl::StrAppend(&line, ", no Core ML prediction ran");
  }
  if (v.weights_checked()) absl::StrAppend(&line, ", ", v.weights_checked(), " weights decompressed and checked");
  for (const auto& f : v.fidelity()) {
    absl::StrAppend(&line, absl::StrFormat(", %s PSNR %.1f dB", f.name(), f.psnr_db()),
                    f.computed_by().empty() ? "" : absl::StrCat(" (", f.computed_by(), ")"));
  }
  for (const auto& e : v.errors()) absl::StrAppend(&line, "; error: ", e);
  return line;
}

}  // namespace

absl::StatusOr<engine::CompressionReport> RemoteCompress(const Args& args, const std::string& input,
                                                         format::OutputTarget* output, const engine::CompressionConfig& config,
                                                         const engine::CompressOptions& options, ProgressBar* progress) {
  ASSIGN_OR_RETURN(Connection conn, Connect(args));
  const bool report_only = output == nullptr;
  std::string root;
  ASSIGN_OR_RETURN(std::vector<v1::FileInfo> files, api::DescribeModelFiles(input, &root));
  v1::CompressRequest header_msg;
  v1::CompressHeader* header = header_msg.mutable_header();
  *header->mutable_config() = api::ToProto(config);
  if (options.target) header->set_target(engine::TargetName(*options.target));
  for (const auto& f : files) *header->add_files() = f;
  header->set_report_only(report_only);
  header->set_no_cache(args.Bool("no-cache"));
  header->set_check_samples(options.check_samples);
  if (auto device = args.Value("validate")) {
    v1::ValidationRequest* v = header->mutable_validation();
    v->set_enabled(true);
    if (*device != "any") v->mutable_device()->set_model(*device);
    v->set_compare_outputs(true);
    ASSIGN_OR_RETURN(std::optional<int64_t> iterations, args.Int("validate-iterations"));
    if (iterations) v->set_iterations(static_cast<int>(*iterations));
  }
  uint64_t upload_total = 0;
  for (const auto& f : files) upload_total += f.size();

  // The artifact lands in the output's staging directory (removed by the
  // target unless committed) and is moved into place only after every file
  // passed its size and digest check.
  std::unique_ptr<api::ArtifactReceiver> artifact;
  if (!report_only) {
    ASSIGN_OR_RETURN(std::string staging, output->Stage());
    artifact = std::make_unique<api::ArtifactReceiver>(staging);
  }
  auto stub = v1::Compressor::NewStub(conn.channel);
  grpc::ClientContext ctx;
  Prepare(conn, &ctx);
  // Ctrl-C cancels the call.
  api::CallCanceller canceller(&ctx, progress ? std::function<bool()>([progress] { return progress->Cancelled(); }) : nullptr,
                               absl::Milliseconds(50));
  std::unique_ptr<grpc::ClientReaderWriter<v1::CompressRequest, v1::CompressResponse>> stream = stub->Compress(&ctx);

  absl::Status upload_status;
  std::thread writer([&] {
    if (!stream->Write(header_msg)) return;
    upload_status = api::SendFiles(
        root, files, 0,
        [&](v1::FileChunk&& chunk) {
          v1::CompressRequest r;
          *r.mutable_chunk() = std::move(chunk);
          return stream->Write(r);
        },
        [&](uint64_t sent) {
          if (progress) progress->Bytes("upload", sent, upload_total);
        });
    stream->WritesDone();
  });

  std::vector<v1::WeightReport> rows;
  v1::Summary summary;
  bool have_summary = false;
  std::vector<v1::ValidationResult> validations;
  v1::CompressResponse response;
  while (stream->Read(&response)) {
    switch (response.msg_case()) {
      case v1::CompressResponse::kProgress: {
        const v1::Progress& p = response.progress();
        if (!progress) break;
        if (p.phase() == v1::Progress::COMPRESS) {
          engine::Progress ep;
          ep.weights_done = p.weights_done();
          ep.weights_total = p.weights_total();
          ep.current = p.current();
          progress->OnProgress(ep);
        }
        break;
      }
      case v1::CompressResponse::kWeight:
        rows.push_back(response.weight());
        break;
      case v1::CompressResponse::kArtifactFile:
        if (artifact) artifact->Receive(response).IgnoreError();
        break;
      case v1::CompressResponse::kArtifactChunk:
        if (artifact && artifact->Receive(response).ok() && progress) {
          progress->Bytes("download", artifact->bytes_received(), artifact->bytes_declared());
        }
        break;
      case v1::CompressResponse::kSummary:
        summary = response.summary();
        have_summary = true;
        break;
      case v1::CompressResponse::kValidation:
        validations.push_back(response.validation());
        break;
      default:
        break;
    }
    if (artifact && !artifact->status().ok()) ctx.TryCancel();
  }
  writer.join();
  RETURN_IF_ERROR(StreamedCallStatus(stream->Finish(), artifact.get(), upload_status, conn.server));
  if (!have_summary) return absl::DataLossError("the server ended the call without a summary");
  engine::CompressionReport report = api::ReportFrom(rows, summary);
  for (const auto& v : validations) {
    std::string json;
    google::protobuf::util::JsonPrintOptions jo;
    jo.preserve_proto_field_names = true;
    (void)google::protobuf::util::MessageToJsonString(v, &json, jo);
    report.validation_json.push_back(json);
    report.validation_lines.push_back(ValidationLine(v));
    if (!v.passed()) report.validation_failed = true;
  }
  if (artifact) {
    ASSIGN_OR_RETURN(std::string produced, artifact->Complete());
    RETURN_IF_ERROR(output->Commit(produced));
  }
  return report;
}

absl::StatusOr<engine::Inventory> RemoteInspect(const Args& args, const std::string& input,
                                                const engine::InspectOptions& options) {
  ASSIGN_OR_RETURN(Connection conn, Connect(args));
  std::string root;
  ASSIGN_OR_RETURN(std::vector<v1::FileInfo> files, api::DescribeModelFiles(input, &root));
  auto stub = v1::Compressor::NewStub(conn.channel);
  grpc::ClientContext ctx;
  Prepare(conn, &ctx);
  v1::InspectResponse response;
  std::unique_ptr<grpc::ClientWriter<v1::InspectRequest>> stream = stub->Inspect(&ctx, &response);
  v1::InspectRequest header;
  for (const auto& f : files) *header.mutable_header()->add_files() = f;
  header.mutable_header()->set_min_elements(options.min_elements);
  header.mutable_header()->set_skip_statistics(!options.statistics);
  absl::Status sent;
  if (stream->Write(header)) {
    sent = api::SendFiles(root, files, 0, [&](v1::FileChunk&& chunk) {
      v1::InspectRequest r;
      *r.mutable_chunk() = std::move(chunk);
      return stream->Write(r);
    });
  }
  stream->WritesDone();
  grpc::Status status = stream->Finish();
  if (!status.ok()) return FromGrpc(status, conn.server);
  RETURN_IF_ERROR(sent);
  engine::Inventory inv = api::FromProto(response.inventory());
  inv.path = input;
  return inv;
}

namespace {

constexpr char kHealthHelp[] = R"(coremlz health --server HOST:PORT [--service NAME] [--deadline SECONDS] [TLS/token flags]

Asks the server's standard gRPC health service. Exit 0 when SERVING, 4 otherwise.
Used by the container HEALTHCHECK.
)";

constexpr char kServicesHelp[] = R"(coremlz services --server HOST:PORT [TLS/token flags]

Lists the gRPC services the server advertises through reflection.
)";

const std::set<std::string> kConnectionFlags = {"server", "deadline", "token-file", "tls-ca", "tls-cert", "tls-key", "service"};

int Health(const std::vector<std::string>& argv) {
  auto args = Args::Parse(argv, kConnectionFlags, {"help"});
  if (!args.ok() || !args->Has("server")) {
    std::fputs(kHealthHelp, stderr);
    return kExitUsage;
  }
  auto conn = Connect(*args);
  if (!conn.ok()) {
    std::fprintf(stderr, "coremlz: %s\n", std::string(conn.status().message()).c_str());
    return ExitCodeFor(conn.status());
  }
  const absl::Duration timeout = args->Has("deadline") ? conn->deadline : absl::Seconds(5);
  auto status = api::CheckHealth(conn->channel, args->Value("service").value_or(""), timeout, conn->token);
  if (!status.ok()) {
    std::fprintf(stderr, "coremlz: health check failed: %s\n", std::string(status.status().message()).c_str());
    return kExitServer;
  }
  const char* names[] = {"UNKNOWN", "SERVING", "NOT_SERVING", "SERVICE_UNKNOWN"};
  std::printf("%s\n", names[static_cast<int>(*status)]);
  return *status == api::ServingStatus::kServing ? kExitOk : kExitServer;
}

int Services(const std::vector<std::string>& argv) {
  auto args = Args::Parse(argv, kConnectionFlags, {"help"});
  if (!args.ok() || !args->Has("server")) {
    std::fputs(kServicesHelp, stderr);
    return kExitUsage;
  }
  auto conn = Connect(*args);
  if (!conn.ok()) {
    std::fprintf(stderr, "coremlz: %s\n", std::string(conn.status().message()).c_str());
    return ExitCodeFor(conn.status());
  }
  auto services = api::ListServices(conn->channel, absl::Seconds(10));
  if (!services.ok()) {
    std::fprintf(stderr, "coremlz: %s\n", std::string(services.status().message()).c_str());
    return ExitCodeFor(services.status());
  }
  for (const auto& s : *services) std::printf("%s\n", s.c_str());
  return kExitOk;
}

constexpr char kRunnersHelp[] = R"(coremlz runners --server HOST:PORT [--json] [TLS/token flags]

Lists the device runners the server validates on: address, up or down, backend,
devices (model, OS, state) and free slots, as last probed.
)";

int Runners(const std::vector<std::string>& argv) {
  std::set<std::string> flags = kConnectionFlags;
  auto args = Args::Parse(argv, flags, {"help", "json"});
  if (!args.ok() || !args->Has("server")) {
    std::fputs(kRunnersHelp, stderr);
    return kExitUsage;
  }
  auto conn = Connect(*args);
  if (!conn.ok()) {
    std::fprintf(stderr, "coremlz: %s\n", std::string(conn.status().message()).c_str());
    return ExitCodeFor(conn.status());
  }
  auto stub = v1::Compressor::NewStub(conn->channel);
  grpc::ClientContext ctx;
  Prepare(*conn, &ctx);
  v1::ListRunnersResponse response;
  grpc::Status s = stub->ListRunners(&ctx, v1::ListRunnersRequest(), &response);
  if (!s.ok()) {
    absl::Status st = FromGrpc(s, conn->server);
    std::fprintf(stderr, "coremlz: %s\n", std::string(st.message()).c_str());
    return ExitCodeFor(st);
  }
  if (args->Bool("json")) {
    std::string json;
    google::protobuf::util::JsonPrintOptions jo;
    jo.add_whitespace = true;
    jo.preserve_proto_field_names = true;
    (void)google::protobuf::util::MessageToJsonString(response, &json, jo);
    std::printf("%s", json.c_str());
    return kExitOk;
  }
  if (response.runners_size() == 0) std::printf("no runners configured (coremlzd --runners)\n");
  for (const auto& r : response.runners()) {
    std::printf("%s  %s  %s%s  free %d\n", r.address().c_str(), r.up() ? "up" : "DOWN", r.backend().c_str(),
                r.runner_id().empty() ? "" : absl::StrCat(" (", r.runner_id(), ")").c_str(), r.free_slots());
    if (!r.up() && !r.last_error().empty()) std::printf("    %s\n", r.last_error().c_str());
    for (const auto& d : r.devices()) {
      std::printf("    %s  %s  %s %s  %s\n", d.model().c_str(), d.name().c_str(), d.platform().c_str(),
                  d.os_version().c_str(), d.state().c_str());
    }
  }
  return kExitOk;
}

}  // namespace

bool RunRemoteCommand(const std::string& command, const std::vector<std::string>& args, int* exit_code) {
  if (command == "health") {
    *exit_code = Health(args);
    return true;
  }
  if (command == "services") {
    *exit_code = Services(args);
    return true;
  }
  if (command == "runners") {
    *exit_code = Runners(args);
    return true;
  }
  return false;
}

bool RemoteCommandHelp(const std::string& command) {
  if (command == "health") std::fputs(kHealthHelp, stdout);
  else if (command == "services") std::fputs(kServicesHelp, stdout);
  else if (command == "runners") std::fputs(kRunnersHelp, stdout);
  else return false;
  return true;
}

}  // namespace coremlz::cli
