#include "api/compress_reactor.h"

#include <chrono>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <optional>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "api/artifact_stream.h"
#include "api/call_timer.h"
#include "api/convert.h"
#include "api/grpc_status.h"
#include "api/job_call.h"
#include "api/job_labels.h"
#include "api/result_store.h"
#include "api/transfer.h"
#include "api/upload_session.h"
#include "api/validator.h"
#include "common/file_util.h"
#include "engine/target.h"
#include "engine/worker_pool.h"
#include "execute/output_check.h"

namespace coremlz::api {
namespace {

// The report as its proto: what the result cache stores and what runners
// check.
v1::Report ReportProto(const engine::CompressionReport& report) {
  v1::Report proto;
  for (const engine::WeightReport& w : report.weights) *proto.add_weights() = ToProto(w);
  *proto.mutable_summary() = SummaryOf(report);
  return proto;
}

class CompressReactor;

// State shared by the reactor and the work running for it on other threads.
// One mutex guards everything the reactor does.
struct CallState {
  absl::Mutex mu;
  CompressReactor* reactor ABSL_GUARDED_BY(mu) = nullptr;  // null once the call is over
};

// Progress and cancellation for the engine, tied to the call.
class CallControl : public engine::JobControl {
 public:
  CallControl(std::shared_ptr<CallState> state, absl::Time deadline) : state_(std::move(state)), deadline_(deadline) {}
  bool Cancelled() const override { return engine::JobControl::Cancelled() || absl::Now() > deadline_; }
  void OnProgress(const engine::Progress& p) override;

 private:
  std::shared_ptr<CallState> state_;
  absl::Time deadline_;
  std::chrono::steady_clock::time_point last_ = {};
};

class CompressReactor final : public grpc::ServerBidiReactor<v1::CompressRequest, v1::CompressResponse> {
 public:
  CompressReactor(CompressorService* service, grpc::CallbackServerContext* context)
      : service_(service), context_(context), state_(std::make_shared<CallState>()) {
    {
      absl::MutexLock lock(&state_->mu);
      state_->reactor = this;
    }
    start_ = std::chrono::steady_clock::now();
    deadline_ = DeadlineOf(context);
    if (grpc::Status admitted = service_->AdmitCall(*context); !admitted.ok()) {
      absl::MutexLock lock(&state_->mu);
      FinishLocked(admitted);
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
      // Half-close (or the client went away).
      if (phase_ == Phase::kHeader) {
        FinishLocked({grpc::StatusCode::INVALID_ARGUMENT, "the stream ended without a header"});
      } else if (phase_ == Phase::kUpload) {
        FinishLocked(ToGrpcStatus(upload_->EndedEarly()));  // names the incomplete file
      }
      read_closed_ = true;
      return;
    }
    if (phase_ == Phase::kHeader) {
      if (!request_.has_header()) {
        FinishLocked({grpc::StatusCode::INVALID_ARGUMENT, "the first message must be a header (a chunk came first)"});
        return;
      }
      absl::Status s = OnHeaderLocked(request_.header());
      if (!s.ok()) {
        FinishLocked(ToGrpcStatus(s));
        return;
      }
      CheckStallLocked();  // the upload's idle limit replaces the header's
    } else if (phase_ == Phase::kUpload) {
      if (!request_.has_chunk()) {
        FinishLocked({grpc::StatusCode::INVALID_ARGUMENT, "a second header arrived; only file chunks may follow the header"});
        return;
      }
      absl::Status s = upload_->Add(request_.chunk());
      if (!s.ok()) {
        FinishLocked(ToGrpcStatus(s));
        return;
      }
      service_->metrics()->UploadBytes(request_.chunk().data().size());
      if (absl::Status b = upload_->CheckMemory(); !b.ok()) {
        FinishLocked(ToGrpcStatus(b));
        return;
      }
      MaybeUploadProgressLocked();
      if (upload_->complete()) {
        absl::Status done = upload_->Finish();
        if (!done.ok()) {
          FinishLocked(ToGrpcStatus(done));
          return;
        }
        SubmitLocked();
        if (finished_) return;
      }
    } else {
      FinishLocked({grpc::StatusCode::INVALID_ARGUMENT, "a message arrived after the upload was complete"});
      return;
    }
    request_.Clear();
    StartRead(&request_);
  }

  void OnWriteDone(bool ok) override {
    absl::MutexLock lock(&state_->mu);
    writing_ = false;
    if (!ok) {
      // The client is gone; the call ends (cancellation will follow).
      if (control_) control_->Cancel();
      artifact_.Close();
      outbox_.clear();
      if (!finished_) FinishLocked({grpc::StatusCode::CANCELLED, "the client stopped reading"});
      return;
    }
    PumpLocked();
  }

  void OnCancel() override {
    absl::MutexLock lock(&state_->mu);
    cancelled_ = true;
    // The caller has gone: its slot is free for the next call even while a
    // running job winds down (the worker pool's memory budget still counts it).
    ReleaseAdmissionLocked();
    if (control_) control_->Cancel();
    if (validation_control_) validation_control_->Cancel();
    // A job in flight answers through JobDone; otherwise end now.
    if (!job_running_ && !validation_pending_ && !finished_) {
      outbox_.clear();
      artifact_.Close();
      FinishLocked({grpc::StatusCode::CANCELLED, "the call was cancelled"});
    }
  }

  void OnDone() override {
    {
      absl::MutexLock lock(&state_->mu);
      state_->reactor = nullptr;
      artifact_.Close();
      ReleaseCacheLocked();  // a call that ends mid-job must not keep identical ones waiting
    }
    ReleaseAdmissionLocked();
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    if (job_submitted_) service_->metrics()->Job(technique_, OutcomeLabel(final_status_), seconds);
    delete this;
  }

  // From a worker thread (state_->mu held by the caller).
  void QueueProgressLocked(const engine::Progress& p) {
    if (finished_) return;
    v1::CompressResponse r;
    auto* pr = r.mutable_progress();
    pr->set_phase(v1::Progress::COMPRESS);
    pr->set_weights_done(p.weights_done);
    pr->set_weights_total(p.weights_total);
    pr->set_bytes_done(p.bytes_done);
    pr->set_bytes_total(p.bytes_total);
    pr->set_current(p.current);
    // Keep at most one progress message waiting: only the latest matters.
    if (!outbox_.empty() && outbox_.back().has_progress()) outbox_.back() = std::move(r);
    else outbox_.push_back(std::move(r));
    PumpLocked();
  }

  void JobDoneLocked(absl::StatusOr<engine::CompressionReport> report) {
    job_running_ = false;
    service_->UpdateWorkerGauges();
    if (finished_) return;
    if (!report.ok()) {
      ReleaseCacheLocked();
      absl::Status s = report.status();
      if (cancelled_ || (s.code() == absl::StatusCode::kCancelled && absl::Now() > deadline_)) {
        s = absl::Now() > deadline_ ? absl::DeadlineExceededError("the call's deadline passed during compression")
                                    : absl::CancelledError("the call was cancelled");
      }
      outbox_.clear();
      FinishLocked(ToGrpcStatus(s));
      return;
    }
    report_ = std::move(*report);
    StoreInCacheLocked();
    ResultReadyLocked();
  }

  // A verified hit: the artifact is placed in this job's output directory and
  // streamed exactly as a computed one would be.
  bool ServeFromCacheLocked() {
    auto hit = service_->cache()->Lookup(cache_key_, JoinPath(upload_->job_dir_path(), "out"));
    if (!hit.ok()) return false;
    if (!hit->artifact_path.empty()) output_path_ = hit->artifact_path;
    std::vector<v1::WeightReport> rows(hit->report.weights().begin(), hit->report.weights().end());
    report_ = ReportFrom(rows, hit->report.summary());
    ResultReadyLocked();
    return true;
  }

  // Stores the leader's result off this thread (it hashes the artifact), then
  // wakes identical calls waiting for it. The job directory is kept alive
  // until the copy is done.
  void StoreInCacheLocked() {
    if (!cache_leader_) return;
    cache_leader_ = false;
    v1::Report proto = ReportProto(report_);
    ResultStore* cache = service_->cache();
    std::shared_ptr<JobDir> dir = upload_->job_dir();
    service_->tasks()->Post([cache, dir, key = cache_key_, artifact = header_.report_only() ? std::string() : output_path_,
                             proto = std::move(proto)] {
      absl::Status s = cache->Store(key, artifact, proto);
      if (!s.ok()) std::fprintf(stderr, "coremlzd: result not cached: %s\n", std::string(s.message()).c_str());
      cache->Release(key);
    });
  }

  void ReleaseCacheLocked() {
    if (!cache_leader_) return;
    cache_leader_ = false;
    service_->cache()->Release(cache_key_);
  }

  void ResultReadyLocked() {
    for (const engine::WeightReport& w : report_.weights) {
      v1::CompressResponse r;
      *r.mutable_weight() = ToProto(w);
      outbox_.push_back(std::move(r));
    }
    if (report_.weight_bytes_after > 0) service_->metrics()->CompressionRatio(report_.RatioVsOriginal());
    if (!header_.report_only()) {
      std::string root;
      auto files = DescribeModelFiles(output_path_, &root, service_->options().limits.max_manifest_bytes);
      if (!files.ok()) {
        FinishLocked(ToGrpcStatus(files.status()));
        return;
      }
      artifact_.Start(std::move(*files), root);
    }
    summary_pending_ = true;
    if (header_.validation().enabled()) StartValidationLocked();
    PumpLocked();
  }

  void ValidationDoneLocked(absl::StatusOr<v1::ValidationResult> result) {
    validation_pending_ = false;
    if (finished_) return;
    if (!result.ok()) {
      validation_error_ = result.status();
    } else {
      v1::CompressResponse r;
      *r.mutable_validation() = *result;
      validation_result_ = std::move(r);
    }
    PumpLocked();
  }

 private:
  enum class Phase { kHeader, kUpload, kDone };

  absl::Status OnHeaderLocked(const v1::CompressHeader& header) {
    header_ = header;
    auto config = ConfigFromHeader(header);
    if (!config.ok()) return config.status();
    config_ = *config;
    technique_ = TechniqueLabel(config_);
    if (!header.target().empty()) {
      auto target = engine::ParseTarget(header.target());
      if (!target.ok()) return target.status();
      options_.target = *target;
    }
    if (header.check_samples() < 0 || header.check_samples() > 10000) {
      return absl::InvalidArgumentError(absl::StrCat("check_samples must be 0..10000, not ", header.check_samples()));
    }
    options_.check_samples = header.check_samples();
    if (header.validation().enabled() && service_->validator() == nullptr) {
      return absl::FailedPreconditionError("validation was requested but this server has no device runners (--runners)");
    }
    // Device results are measurements, not a function of the bytes: a call
    // that validates is never cached. One that bypasses the cache still
    // refreshes its entry.
    if (ResultStore* cache = service_->cache(); cache != nullptr && !header.validation().enabled()) {
      cache_key_ = cache->KeyFor(header, ToProto(config_));
      if (header.no_cache()) cache->CountBypass();
    }
    upload_ = std::make_unique<UploadSession>(service_->options().limits);
    JobUploadOptions upload;
    upload.work_dir = service_->options().work_dir;
    upload.pool = service_->pool();
    // The output is about the size of the input (never larger but for fp16
    // of an fp16 model's rewrite); room for both is checked up front.
    upload.reserves_output = true;
    if (absl::Status s = upload_->StartJob(upload, header.files()); !s.ok()) return s;
    input_path_ = upload_->model_path();
    options_.max_manifest_bytes = service_->options().limits.max_manifest_bytes;
    const std::string name = std::filesystem::path(input_path_).filename().string();
    const std::string out = JoinPath(upload_->job_dir_path(), "out");
    output_path_ = upload_->is_package() ? JoinPath(out, "model.mlpackage") : JoinPath(out, name);
    job_id_ = NewJobId();
    v1::CompressResponse r;
    r.mutable_accepted()->set_job_id(job_id_);
    r.mutable_accepted()->set_upload_bytes(upload_->bytes_declared());
    outbox_.push_back(std::move(r));
    phase_ = Phase::kUpload;
    PumpLocked();
    if (upload_->bytes_declared() == 0) {
      // Nothing to wait for (all files empty): check and start.
      absl::Status done = upload_->Finish();
      if (!done.ok()) return done;
      SubmitLocked();
    }
    return absl::OkStatus();
  }

  void MaybeUploadProgressLocked() {
    const uint64_t done = upload_->bytes_received();
    if (done - last_progress_bytes_ < (uint64_t{4} << 20) && done != upload_->bytes_declared()) return;
    last_progress_bytes_ = done;
    v1::CompressResponse r;
    r.mutable_progress()->set_phase(v1::Progress::UPLOAD);
    r.mutable_progress()->set_bytes_done(done);
    r.mutable_progress()->set_bytes_total(upload_->bytes_declared());
    if (!outbox_.empty() && outbox_.back().has_progress()) outbox_.back() = std::move(r);
    else outbox_.push_back(std::move(r));
    PumpLocked();
  }

  // Upload complete: answer from the cache when it holds this result; else
  // lead the computation (or wait for an identical call already leading).
  void SubmitLocked() {
    phase_ = Phase::kDone;
    ResultStore* cache = service_->cache();
    if (cache != nullptr && !cache_key_.empty() && !cache_leader_) {
      if (!header_.no_cache() && ServeFromCacheLocked()) return;
      std::shared_ptr<CallState> state = state_;
      TaskRunner* tasks = service_->tasks();
      const bool leads = cache->Lead(cache_key_, [state, tasks] {
        // The identical call finished: look again (off the releasing thread).
        tasks->Post([state] {
          absl::MutexLock lock(&state->mu);
          if (state->reactor != nullptr) state->reactor->SubmitLocked();
        });
      });
      if (!leads) {
        if (finished_) return;
        v1::CompressResponse r;
        r.mutable_progress()->set_phase(v1::Progress::QUEUED);
        r.mutable_progress()->set_current("waiting for an identical call in flight");
        outbox_.push_back(std::move(r));
        PumpLocked();
        return;
      }
      cache_leader_ = true;
    }
    if (finished_) return;
    control_ = std::make_shared<CallControl>(state_, deadline_);
    engine::CompressJob job;
    job.input_path = input_path_;
    job.output_path = output_path_;
    job.config = config_;
    job.options = options_;
    auto estimate = upload_->MemoryEstimate();
    if (!estimate.ok()) {
      FinishLocked(ToGrpcStatus(estimate.status()));
      return;
    }
    job.memory_estimate = *estimate;
    if (service_->options().wait_for_worker) job.admission_deadline = deadline_;
    job.deadline = deadline_;
    job.control = control_;
    if (options_.check_samples > 0) {
      // The output check runs on the same worker, under the same control.
      job.after = [input = input_path_, output = output_path_, samples = options_.check_samples](
                      engine::CompressionReport* report, engine::JobControl* control) {
        execute::OutputCheckOptions check;
        check.samples = samples;
        check.cancelled = [control] { return control->Cancelled(); };
        execute::AddOutputCheck(input, output, check, report);
      };
    }
    std::shared_ptr<CallState> state = state_;
    std::shared_ptr<JobDir> dir = upload_->job_dir();  // keeps the files while the job runs
    job.done = [state, dir](absl::StatusOr<engine::CompressionReport> report) {
      absl::MutexLock lock(&state->mu);
      if (state->reactor != nullptr) state->reactor->JobDoneLocked(std::move(report));
    };
    job_running_ = true;
    job_submitted_ = true;
    absl::Status s = service_->pool()->Submit(std::move(job));
    if (!s.ok()) {
      job_running_ = false;
      FinishLocked(ToGrpcStatus(s));
      return;
    }
    service_->UpdateWorkerGauges();
    v1::CompressResponse r;
    r.mutable_progress()->set_phase(v1::Progress::QUEUED);
    r.mutable_progress()->set_queue_position(service_->pool()->queue_depth());
    outbox_.push_back(std::move(r));
    PumpLocked();
  }

  void StartValidationLocked() {
    validation_pending_ = true;
    validation_control_ = std::make_shared<engine::JobControl>();
    ValidationJob vj;
    vj.request = header_.validation();
    vj.compressed_path = output_path_;
    if (vj.request.compare_outputs()) vj.original_path = input_path_;
    vj.deadline = deadline_;
    vj.report = ReportProto(report_);
    vj.control = validation_control_;
    std::shared_ptr<CallState> state = state_;
    std::shared_ptr<JobDir> dir = upload_->job_dir();
    vj.done = [state, dir](absl::StatusOr<v1::ValidationResult> result) {
      absl::MutexLock lock(&state->mu);
      if (state->reactor != nullptr) state->reactor->ValidationDoneLocked(std::move(result));
    };
    Validator* validator = service_->validator();
    // The validator may call back synchronously: run it off this lock.
    service_->tasks()->Post([validator, vj = std::move(vj)]() mutable { validator->Validate(std::move(vj)); });
  }

  // Starts the next write if none is in flight: queued messages first, then
  // the artifact's files chunk by chunk (read lazily so that a large model
  // never sits in memory), then the summary, validation and the status.
  void PumpLocked() {
    if (writing_ || finished_) return;
    if (!outbox_.empty()) {
      WriteLocked(std::move(outbox_.front()));
      outbox_.pop_front();
      return;
    }
    if (artifact_.active()) {
      v1::CompressResponse r;
      absl::Status s = artifact_.Next(&r);
      if (!s.ok()) {
        artifact_.Close();
        FinishLocked(ToGrpcStatus(s));
        return;
      }
      if (r.msg_case() != v1::CompressResponse::MSG_NOT_SET) {
        if (r.has_artifact_chunk()) service_->metrics()->ArtifactBytes(r.artifact_chunk().data().size());
        WriteLocked(std::move(r));
        return;
      }
    }
    if (summary_pending_) {
      summary_pending_ = false;
      v1::CompressResponse r;
      *r.mutable_summary() = SummaryOf(report_);
      WriteLocked(std::move(r));
      return;
    }
    if (validation_pending_) return;  // its result will pump again
    if (validation_result_) {
      v1::CompressResponse r = std::move(*validation_result_);
      validation_result_.reset();
      WriteLocked(std::move(r));
      return;
    }
    if (phase_ == Phase::kDone && !job_running_ && report_ready()) {
      FinishLocked(ToGrpcStatus(validation_error_));
    }
  }

  bool report_ready() const { return !report_.model_kind.empty(); }

  void WriteLocked(v1::CompressResponse r) {
    current_ = std::move(r);
    writing_ = true;
    write_started_ = absl::Now();
    StartWrite(&current_);
  }

  // Ends a call whose client stalls (--header-timeout-seconds,
  // --idle-timeout-seconds), so that it stops holding a call slot, and
  // re-arms itself for the next moment a limit could pass.
  void CheckStallLocked() {
    if (finished_) return;
    const ServerOptions& o = service_->options();
    const absl::Time now = absl::Now();
    absl::Time next = absl::InfiniteFuture();
    const bool idle_limit = o.idle_timeout > absl::ZeroDuration();
    if (phase_ == Phase::kHeader && o.header_timeout > absl::ZeroDuration()) {
      if (now >= called_at_ + o.header_timeout) {
        FinishLocked({grpc::StatusCode::DEADLINE_EXCEEDED,
                      absl::StrCat("no request header within ", absl::FormatDuration(o.header_timeout),
                                   " of the call's start (--header-timeout-seconds)")});
        return;
      }
      next = called_at_ + o.header_timeout;
    } else if (phase_ == Phase::kUpload && idle_limit) {
      if (now >= last_read_ + o.idle_timeout) {
        FinishLocked({grpc::StatusCode::DEADLINE_EXCEEDED,
                      absl::StrCat("the upload stalled: nothing arrived for ", absl::FormatDuration(o.idle_timeout),
                                   " (--idle-timeout-seconds); ", upload_->bytes_received(), " of ",
                                   upload_->bytes_declared(), " bytes received")});
        return;
      }
      next = last_read_ + o.idle_timeout;
    }
    if (idle_limit && writing_) {
      if (now >= write_started_ + o.idle_timeout) {
        // The client reads nothing; a write cannot be abandoned, so cancel
        // the call (OnCancel releases the slot and ends the job).
        context_->TryCancel();
        return;
      }
      next = std::min(next, write_started_ + o.idle_timeout);
    }
    // Nothing due (a job running, or no header limit): look again later,
    // since an upload or a write may start meanwhile.
    if (next == absl::InfiniteFuture() && idle_limit) next = now + o.idle_timeout;
    if (next == absl::InfiniteFuture()) return;
    std::shared_ptr<CallState> state = state_;
    stall_timer_.Arm(next, [state](bool fired) {
      if (!fired) return;
      absl::MutexLock lock(&state->mu);
      if (state->reactor != nullptr) state->reactor->CheckStallLocked();
    });
  }

  void FinishLocked(grpc::Status status) {
    if (finished_) return;
    finished_ = true;
    ReleaseCacheLocked();
    // The call stops counting against max_concurrent_calls now, not at
    // OnDone: the client sees the status first and may start its next call.
    ReleaseAdmissionLocked();
    status = ForCaller(status, upload_ ? upload_->job_dir_path() : "");
    final_status_ = FromGrpcStatus(status);
    if (control_) control_->Cancel();
    Finish(status);
  }

  CompressorService* service_;
  grpc::CallbackServerContext* context_;
  std::shared_ptr<CallState> state_;
  std::chrono::steady_clock::time_point start_;
  absl::Time deadline_;
  void ReleaseAdmissionLocked() {
    if (admitted_ && !released_) service_->Release();
    released_ = true;
  }
  bool admitted_ = false;
  bool released_ = false;
  CallTimer stall_timer_;
  absl::Time called_at_, last_read_, write_started_;

  v1::CompressRequest request_;
  v1::CompressHeader header_;
  engine::CompressionConfig config_;
  engine::CompressOptions options_;
  std::string technique_ = "unknown";
  std::string job_id_;
  Phase phase_ = Phase::kHeader;
  std::unique_ptr<UploadSession> upload_;
  std::string input_path_, output_path_;
  uint64_t last_progress_bytes_ = 0;

  std::shared_ptr<CallControl> control_;
  bool job_running_ = false;
  bool job_submitted_ = false;
  // Result cache: this call's key ("" when not cached) and whether it leads
  // the computation of that key.
  std::string cache_key_;
  bool cache_leader_ = false;
  engine::CompressionReport report_;

  std::deque<v1::CompressResponse> outbox_;
  v1::CompressResponse current_;
  bool writing_ = false;
  bool finished_ = false;
  bool cancelled_ = false;
  bool read_closed_ = false;
  absl::Status final_status_;

  ArtifactStream artifact_;
  bool summary_pending_ = false;

  bool validation_pending_ = false;
  std::shared_ptr<engine::JobControl> validation_control_;
  std::optional<v1::CompressResponse> validation_result_;
  absl::Status validation_error_;
};

void CallControl::OnProgress(const engine::Progress& p) {
  const auto now = std::chrono::steady_clock::now();
  if (p.weights_done != 0 && p.weights_done != p.weights_total && now - last_ < std::chrono::milliseconds(100)) return;
  last_ = now;
  absl::MutexLock lock(&state_->mu);
  if (state_->reactor != nullptr) state_->reactor->QueueProgressLocked(p);
}

}  // namespace

grpc::ServerBidiReactor<v1::CompressRequest, v1::CompressResponse>* NewCompressReactor(
    CompressorService* service, grpc::CallbackServerContext* context) {
  return new CompressReactor(service, context);
}

}  // namespace coremlz::api
