#include "clients/remote_plan.h"

#include <atomic>
#include <memory>
#include <thread>

#include "api/artifact_receiver.h"
#include "api/client_call.h"
#include "api/plan_convert.h"
#include "api/transfer.h"
#include "clients/remote.h"
#include "common/status_macros.h"
#include "coremlz/v1/compressor.grpc.pb.h"

namespace coremlz::cli {

absl::StatusOr<RemotePlanOutputs> RemotePlan(const Args& args, const std::string& input, v1::PlanHeader header,
                                             format::OutputTarget* apply, std::function<bool()> cancelled,
                                             std::function<void(const v1::PlanProgress&)> progress) {
  ASSIGN_OR_RETURN(Connection conn, Connect(args));
  std::string root;
  ASSIGN_OR_RETURN(std::vector<v1::FileInfo> files, api::DescribeModelFiles(input, &root));
  // The report names the model as the embedded command does: as typed.
  header.set_model_name(input);
  header.clear_files();
  for (const auto& f : files) *header.add_files() = f;
  header.set_apply(apply != nullptr);
  v1::PlanRequest header_msg;
  *header_msg.mutable_header() = std::move(header);

  std::unique_ptr<api::ArtifactReceiver> artifact;
  if (apply != nullptr) {
    ASSIGN_OR_RETURN(std::string staging, apply->Stage());
    artifact = std::make_unique<api::ArtifactReceiver>(staging);
  }
  auto stub = v1::Compressor::NewStub(conn.channel);
  grpc::ClientContext ctx;
  Prepare(conn, &ctx);
  api::CallCanceller canceller(&ctx, cancelled, absl::Milliseconds(50));  // Ctrl-C cancels the plan on the server
  std::unique_ptr<grpc::ClientReaderWriter<v1::PlanRequest, v1::PlanResponse>> stream = stub->Plan(&ctx);
  absl::Status upload_status;
  // The upload's progress is the client's own count (the server reports
  // what it received only every few MiB), drawn from the writer's thread.
  uint64_t upload_total = 0;
  std::atomic<bool> server_spoke{false};
  for (const auto& f : files) upload_total += f.size();
  std::thread writer([&] {
    if (!stream->Write(header_msg)) return;
    upload_status = api::SendFiles(
        root, files, 0,
        [&](v1::FileChunk&& chunk) {
          v1::PlanRequest r;
          *r.mutable_chunk() = std::move(chunk);
          return stream->Write(r);
        },
        [&](uint64_t sent) {
          // Once the server reports a phase of its own, the upload's last
          // count would draw over it.
          if (!progress || server_spoke) return;
          v1::PlanProgress p;
          p.set_phase(v1::PlanProgress::UPLOAD);
          p.set_bytes_done(sent);
          p.set_bytes_total(upload_total);
          progress(p);
        });
    stream->WritesDone();
  });

  v1::PlanOutputs outputs;
  bool have_outputs = false;
  v1::PlanResponse response;
  v1::CompressResponse part;  // the artifact's messages, in the form ArtifactReceiver takes
  while (stream->Read(&response)) {
    if (response.has_progress()) {
      if (progress && response.progress().phase() != v1::PlanProgress::UPLOAD) {
        server_spoke = true;
        progress(response.progress());
      }
    } else if (response.has_outputs()) {
      outputs = std::move(*response.mutable_outputs());
      have_outputs = true;
    } else if (artifact && response.has_artifact_file()) {
      *part.mutable_artifact_file() = std::move(*response.mutable_artifact_file());
      artifact->Receive(part).IgnoreError();
    } else if (artifact && response.has_artifact_chunk()) {
      part.mutable_artifact_chunk()->Swap(response.mutable_artifact_chunk());
      artifact->Receive(part).IgnoreError();
    }
    if (artifact && (response.has_artifact_file() || response.has_artifact_chunk()) && progress) {
      v1::PlanProgress p;
      p.set_phase(v1::PlanProgress::APPLY);
      p.set_bytes_done(artifact->bytes_received());
      p.set_bytes_total(artifact->bytes_declared());
      progress(p);
    }
    if (artifact && !artifact->status().ok()) ctx.TryCancel();
  }
  writer.join();
  RETURN_IF_ERROR(StreamedCallStatus(stream->Finish(), artifact.get(), upload_status, conn.server));
  if (!have_outputs) return absl::DataLossError("the server ended the plan without its outputs");
  RemotePlanOutputs out;
  ASSIGN_OR_RETURN(out.result, api::FromProto(outputs.result()));
  out.config_yaml = outputs.config_yaml();
  out.report_json = outputs.report_json();
  out.pareto_svg = outputs.pareto_svg();
  out.applied_model_bytes = outputs.applied_model_bytes();
  if (artifact) {
    ASSIGN_OR_RETURN(std::string produced, artifact->Complete());
    RETURN_IF_ERROR(apply->Commit(produced));
  }
  return out;
}

}  // namespace coremlz::cli
