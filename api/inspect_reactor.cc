#include "api/inspect_reactor.h"

#include <filesystem>
#include <memory>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "api/call_slot.h"
#include "api/call_state.h"
#include "api/convert.h"
#include "api/grpc_status.h"
#include "api/job_call.h"
#include "api/transfer.h"
#include "api/upload_stream.h"
#include "engine/inventory.h"
#include "engine/worker_pool.h"

namespace coremlz::api {
namespace {

// Cancellation of an Inspect job: the call's cancel or its deadline.
class DeadlineControl : public engine::JobControl {
 public:
  explicit DeadlineControl(absl::Time deadline) : deadline_(deadline) {}
  bool Cancelled() const override { return engine::JobControl::Cancelled() || absl::Now() > deadline_; }

 private:
  absl::Time deadline_;
};

// Inspect's upload: done when the client closes the stream (until then
// the idle limit holds).
UploadStream::Options InspectStream(const ServerOptions& server) {
  UploadStream::Options options = UploadStream::ServerOptionsOf(server);
  options.done_at_last_byte = false;
  return options;
}

// Inspect: the same upload, then the inventory, computed as a job of the
// worker pool: the same memory budget, queue, admission and cancellation as
// Compress (decoding every weight of a model costs what compressing it does).
class InspectReactor final : public grpc::ServerReadReactor<v1::InspectRequest> {
 public:
  InspectReactor(CompressorService* service, grpc::CallbackServerContext* context, v1::InspectResponse* response)
      : service_(service),
        state_(std::make_shared<CallState<InspectReactor>>()),
        deadline_(DeadlineOf(context)),
        response_(response),
        stream_(InspectStream(service->options()), absl::Now()) {
    absl::MutexLock lock(&state_->mu);
    state_->reactor = this;
    if (grpc::Status admitted = slot_.Take(service_, *context); !admitted.ok()) {
      DoneLocked(admitted);
      return;
    }
    CheckStallLocked();
    StartRead(&request_);
  }

  void OnReadDone(bool ok) override {
    absl::MutexLock lock(&state_->mu);
    if (finished_) return;
    absl::StatusOr<UploadStream::Arrival> arrival =
        stream_.Receive(absl::Now(), ok, request_, [this](const v1::InspectHeader& header) {
          AssertHeld();
          header_ = header;
          JobUploadOptions upload;
          upload.work_dir = service_->options().work_dir;
          upload.pool = service_->pool();
          return stream_.session().StartJob(upload, header_.files());
        });
    if (arrival.ok() && ok && request_.has_chunk()) {
      service_->metrics()->UploadBytes(request_.chunk().data().size());
    }
    if (!arrival.ok()) {
      DoneLocked(ToGrpcStatus(arrival.status()));
      return;
    }
    switch (*arrival) {
      case UploadStream::Arrival::kHeader:
        CheckStallLocked();  // the upload's idle limit replaces the header's
        break;
      case UploadStream::Arrival::kChunk:
        break;
      case UploadStream::Arrival::kDone:  // the client closed the stream
        SubmitLocked();
        return;
      case UploadStream::Arrival::kClosed:
        return;
    }
    request_.Clear();
    StartRead(&request_);
  }

  void OnCancel() override {
    absl::MutexLock lock(&state_->mu);
    // As for Compress: the slot is free now; a job in flight stops at its
    // next weight (or leaves the queue) and answers through its callback.
    slot_.Release();
    if (control_) control_->Cancel();
    if (!running_) DoneLocked({grpc::StatusCode::CANCELLED, "the call was cancelled"});
  }

  void OnDone() override {
    {
      absl::MutexLock lock(&state_->mu);
      state_->reactor = nullptr;
      slot_.Release();
    }
    delete this;
  }

  // For callbacks from other threads, which lock state->mu and find this
  // reactor through it: the analysis cannot see that state->mu and
  // state_->mu are one mutex.
  void AssertHeld() const ABSL_ASSERT_EXCLUSIVE_LOCK(state_->mu) { state_->mu.AssertHeld(); }

  // From a worker thread, which holds state_->mu. The inventory is there
  // when the job succeeded.
  void JobDoneLocked(absl::Status result, const std::string& path, absl::StatusOr<engine::Inventory> inventory)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_->mu) {
    running_ = false;
    service_->UpdateWorkerGauges();
    if (!result.ok()) {
      absl::Status s = result;
      if (s.code() == absl::StatusCode::kCancelled && absl::Now() > deadline_) {
        s = absl::DeadlineExceededError("the call's deadline passed during inspection");
      }
      DoneLocked(ToGrpcStatus(s));
      return;
    }
    inventory->path = std::filesystem::path(path).filename().string();
    *response_->mutable_inventory() = ToProto(*inventory);
    DoneLocked(grpc::Status::OK);
  }


  // The same stall limits as Compress, for the header and the upload; none
  // once the job runs.
  void CheckStallLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_->mu) {
    if (finished_ || running_) return;
    const absl::Time now = absl::Now();
    absl::Time next;
    if (absl::Status s = stream_.CheckStall(now, &next); !s.ok()) {
      DoneLocked(ToGrpcStatus(s));
      return;
    }
    stream_.ArmStallCheck(now, next, StallRecheck(state_));
  }

 private:
  void SubmitLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_->mu) {
    auto estimate = stream_.session().MemoryEstimate();
    if (!estimate.ok()) {
      DoneLocked(ToGrpcStatus(estimate.status()));
      return;
    }
    engine::InspectOptions options;
    if (header_.min_elements() > 0) options.min_elements = header_.min_elements();
    options.statistics = !header_.skip_statistics();
    options.max_manifest_bytes = service_->options().limits.max_manifest_bytes;
    const std::string path = stream_.session().model_path();
    auto inventory = std::make_shared<absl::StatusOr<engine::Inventory>>(absl::UnknownError("not run"));
    control_ = std::make_shared<DeadlineControl>(deadline_);
    engine::CompressJob job;
    job.input_path = path;
    job.memory_estimate = *estimate;
    if (service_->options().wait_for_worker) job.admission_deadline = deadline_;
    job.deadline = deadline_;
    job.control = control_;
    job.task = [path, options, inventory](engine::JobControl* control) mutable -> absl::Status {
      options.control = control;
      *inventory = engine::InspectModel(path, options);
      return inventory->status();
    };
    std::shared_ptr<CallState<InspectReactor>> state = state_;
    std::shared_ptr<JobDir> dir = stream_.session().job_dir();  // keeps the files while the job runs
    job.done = [state, dir, path, inventory](absl::StatusOr<engine::CompressionReport> result) {
      absl::MutexLock lock(&state->mu);
      if (InspectReactor* r = state->reactor) {
        r->AssertHeld();
        r->JobDoneLocked(result.status(), path, std::move(*inventory));
      }
    };
    running_ = true;
    absl::Status s = service_->pool()->Submit(std::move(job));
    if (!s.ok()) {
      running_ = false;
      DoneLocked(ToGrpcStatus(s));
      return;
    }
    service_->UpdateWorkerGauges();
  }

  void DoneLocked(grpc::Status s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_->mu) {
    if (finished_) return;
    finished_ = true;
    slot_.Release();
    if (control_) control_->Cancel();
    s = ForCaller(s, stream_.session().job_dir_path());
    Finish(s);
  }

  // Set at construction, then only read.
  CompressorService* const service_;
  const std::shared_ptr<CallState<InspectReactor>> state_;
  const absl::Time deadline_;

  // Everything else is read and written under state_->mu: gRPC's reactor
  // callbacks take it, and so do the job's callback and the stall timer.
  v1::InspectResponse* const response_ ABSL_PT_GUARDED_BY(state_->mu);  // gRPC sends it after Finish
  CallSlot slot_ ABSL_GUARDED_BY(state_->mu);
  v1::InspectRequest request_ ABSL_GUARDED_BY(state_->mu);
  v1::InspectHeader header_ ABSL_GUARDED_BY(state_->mu);
  UploadStream stream_ ABSL_GUARDED_BY(state_->mu);
  std::shared_ptr<DeadlineControl> control_ ABSL_GUARDED_BY(state_->mu);
  bool finished_ ABSL_GUARDED_BY(state_->mu) = false;
  bool running_ ABSL_GUARDED_BY(state_->mu) = false;
};

}  // namespace

grpc::ServerReadReactor<v1::InspectRequest>* NewInspectReactor(CompressorService* service,
                                                              grpc::CallbackServerContext* context,
                                                              v1::InspectResponse* response) {
  return new InspectReactor(service, context, response);
}

}  // namespace coremlz::api
