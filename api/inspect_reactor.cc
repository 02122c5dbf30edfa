#include "api/inspect_reactor.h"

#include <filesystem>
#include <memory>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "api/call_timer.h"
#include "api/convert.h"
#include "api/grpc_status.h"
#include "api/job_call.h"
#include "api/transfer.h"
#include "api/upload_session.h"
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

// Inspect: the same upload, then the inventory, computed as a job of the
// worker pool: the same memory budget, queue, admission and cancellation as
// Compress (decoding every weight of a model costs what compressing it does).
class InspectReactor final : public grpc::ServerReadReactor<v1::InspectRequest> {
 public:
  InspectReactor(CompressorService* service, grpc::CallbackServerContext* context, v1::InspectResponse* response)
      : service_(service), response_(response), state_(std::make_shared<State>()) {
    {
      absl::MutexLock lock(&state_->mu);
      state_->reactor = this;
    }
    deadline_ = DeadlineOf(context);
    if (grpc::Status admitted = service_->AdmitCall(*context); !admitted.ok()) {
      Done(admitted);
      return;
    }
    admitted_ = true;
    {
      absl::MutexLock lock(&state_->mu);
      called_at_ = last_read_ = absl::Now();
      CheckStallLocked();
    }
    StartRead(&request_);
  }

  void OnReadDone(bool ok) override {
    absl::MutexLock lock(&state_->mu);
    if (finished_) return;
    last_read_ = absl::Now();
    if (!ok) {
      if (!upload_) {
        DoneLocked({grpc::StatusCode::INVALID_ARGUMENT, "the stream ended without a header"});
        return;
      }
      absl::Status s = upload_->Finish();
      if (!s.ok()) {
        DoneLocked(ToGrpcStatus(s));
        return;
      }
      SubmitLocked();
      return;
    }
    if (!upload_) {
      if (!request_.has_header()) {
        DoneLocked({grpc::StatusCode::INVALID_ARGUMENT, "the first message must be a header (a chunk came first)"});
        return;
      }
      header_ = request_.header();
      upload_ = std::make_unique<UploadSession>(service_->options().limits);
      JobUploadOptions upload;
      upload.work_dir = service_->options().work_dir;
      upload.pool = service_->pool();
      absl::Status s = upload_->StartJob(upload, header_.files());
      if (!s.ok()) {
        DoneLocked(ToGrpcStatus(s));
        return;
      }
      CheckStallLocked();  // the upload's idle limit replaces the header's
    } else {
      if (!request_.has_chunk()) {
        DoneLocked({grpc::StatusCode::INVALID_ARGUMENT, "only file chunks may follow the header"});
        return;
      }
      absl::Status s = upload_->Add(request_.chunk());
      if (s.ok()) s = upload_->CheckMemory();
      if (!s.ok()) {
        DoneLocked(ToGrpcStatus(s));
        return;
      }
      service_->metrics()->UploadBytes(request_.chunk().data().size());
    }
    request_.Clear();
    StartRead(&request_);
  }

  void OnCancel() override {
    absl::MutexLock lock(&state_->mu);
    // As for Compress: the slot is free now; a job in flight stops at its
    // next weight (or leaves the queue) and answers through its callback.
    ReleaseAdmissionLocked();
    if (control_) control_->Cancel();
    if (!running_) DoneLocked({grpc::StatusCode::CANCELLED, "the call was cancelled"});
  }

  void OnDone() override {
    {
      absl::MutexLock lock(&state_->mu);
      state_->reactor = nullptr;
    }
    ReleaseAdmissionLocked();
    delete this;
  }

 private:
  struct State {
    absl::Mutex mu;
    InspectReactor* reactor ABSL_GUARDED_BY(mu) = nullptr;
  };

  void SubmitLocked() {
    auto estimate = upload_->MemoryEstimate();
    if (!estimate.ok()) {
      DoneLocked(ToGrpcStatus(estimate.status()));
      return;
    }
    engine::InspectOptions options;
    if (header_.min_elements() > 0) options.min_elements = header_.min_elements();
    options.statistics = !header_.skip_statistics();
    options.max_manifest_bytes = service_->options().limits.max_manifest_bytes;
    const std::string path = upload_->model_path();
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
    std::shared_ptr<State> state = state_;
    std::shared_ptr<JobDir> dir = upload_->job_dir();  // keeps the files while the job runs
    const absl::Time deadline = deadline_;
    job.done = [state, dir, path, inventory, deadline](absl::StatusOr<engine::CompressionReport> result) {
      absl::MutexLock lock(&state->mu);
      if (state->reactor == nullptr) return;
      InspectReactor* r = state->reactor;
      r->running_ = false;
      r->service_->UpdateWorkerGauges();
      if (!result.ok()) {
        absl::Status s = result.status();
        if (s.code() == absl::StatusCode::kCancelled && absl::Now() > deadline) {
          s = absl::DeadlineExceededError("the call's deadline passed during inspection");
        }
        r->DoneLocked(ToGrpcStatus(s));
        return;
      }
      (*inventory)->path = std::filesystem::path(path).filename().string();
      *r->response_->mutable_inventory() = ToProto(**inventory);
      r->DoneLocked(grpc::Status::OK);
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

  void ReleaseAdmissionLocked() {
    if (admitted_ && !released_) service_->Release();
    released_ = true;
  }

  void Done(grpc::Status s) {
    absl::MutexLock lock(&state_->mu);
    DoneLocked(std::move(s));
  }

  // The same stall limits as Compress, for the header and the upload.
  void CheckStallLocked() {
    if (finished_ || running_) return;
    const ServerOptions& o = service_->options();
    const absl::Duration limit = upload_ ? o.idle_timeout : o.header_timeout;
    absl::Time at;
    if (limit > absl::ZeroDuration()) {
      at = (upload_ ? last_read_ : called_at_) + limit;
    } else if (o.idle_timeout > absl::ZeroDuration()) {
      at = absl::Now() + o.idle_timeout;  // no header limit: look again once the upload may have started
    } else {
      return;
    }
    if (limit > absl::ZeroDuration() && absl::Now() >= at) {
      DoneLocked({grpc::StatusCode::DEADLINE_EXCEEDED,
                  upload_ ? absl::StrCat("the upload stalled: nothing arrived for ", absl::FormatDuration(limit),
                                           " (--idle-timeout-seconds)")
                            : absl::StrCat("no request header within ", absl::FormatDuration(limit),
                                           " of the call's start (--header-timeout-seconds)")});
      return;
    }
    std::shared_ptr<State> state = state_;
    stall_timer_.Arm(at, [state](bool fired) {
      if (!fired) return;
      absl::MutexLock lock(&state->mu);
      if (state->reactor != nullptr) state->reactor->CheckStallLocked();
    });
  }
  void DoneLocked(grpc::Status s) {
    if (finished_) return;
    finished_ = true;
    ReleaseAdmissionLocked();
    if (control_) control_->Cancel();
    s = ForCaller(s, upload_ ? upload_->job_dir_path() : "");
    Finish(s);
  }

  CompressorService* service_;
  v1::InspectResponse* response_;
  std::shared_ptr<State> state_;
  absl::Time deadline_;
  bool admitted_ = false;
  bool released_ = false;
  v1::InspectRequest request_;
  v1::InspectHeader header_;
  std::unique_ptr<UploadSession> upload_;
  std::shared_ptr<DeadlineControl> control_;
  bool finished_ = false;
  bool running_ = false;
  CallTimer stall_timer_;
  absl::Time called_at_, last_read_;
};

}  // namespace

grpc::ServerReadReactor<v1::InspectRequest>* NewInspectReactor(CompressorService* service,
                                                              grpc::CallbackServerContext* context,
                                                              v1::InspectResponse* response) {
  return new InspectReactor(service, context, response);
}

}  // namespace coremlz::api
