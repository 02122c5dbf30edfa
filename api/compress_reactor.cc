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
#include "api/call_slot.h"
#include "api/convert.h"
#include "api/grpc_status.h"
#include "api/job_call.h"
#include "api/job_labels.h"
#include "api/result_store.h"
#include "api/transfer.h"
#include "api/upload_stream.h"
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

// Compress's upload: it ends at its last byte, and the call has its own
// words for a message out of place.
UploadStream::Options CompressStream(const ServerOptions& server) {
  UploadStream::Options options = UploadStream::ServerOptionsOf(server);
  options.words.not_a_chunk = "a second header arrived; only file chunks may follow the header";
  options.words.after_upload = "a message arrived after the upload was complete";
  return options;
}

class CompressReactor;

// State shared by the reactor and the work running for it on other threads
// (worker pool, task runner, validator, gRPC's timer). One mutex guards
// everything the reactor does.
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
      : service_(service),
        context_(context),
        state_(std::make_shared<CallState>()),
        start_(std::chrono::steady_clock::now()),
        deadline_(DeadlineOf(context)),
        stream_(CompressStream(service->options()), absl::Now()) {
    absl::MutexLock lock(&state_->mu);
    state_->reactor = this;
    if (grpc::Status admitted = slot_.Take(service_, *context); !admitted.ok()) {
      FinishLocked(admitted);
      return;
    }
    CheckStallLocked();
    StartRead(&request_);
  }

  void OnReadDone(bool ok) override {
    absl::MutexLock lock(&state_->mu);
    if (finished_) return;
    absl::StatusOr<UploadStream::Arrival> arrival = stream_.Read(absl::Now(), ok, request_);
    if (arrival.ok() && *arrival == UploadStream::Arrival::kHeader) {
      absl::Status s = OnHeaderLocked(request_.header());
      arrival = s.ok() ? stream_.Declared() : s;
    } else if (arrival.ok() && ok && request_.has_chunk()) {
      service_->metrics()->UploadBytes(request_.chunk().data().size());
      MaybeUploadProgressLocked();
    }
    if (!arrival.ok()) {
      FinishLocked(ToGrpcStatus(arrival.status()));  // an upload cut short names its file
      return;
    }
    switch (*arrival) {
      case UploadStream::Arrival::kHeader:
        CheckStallLocked();  // the upload's idle limit replaces the header's
        break;
      case UploadStream::Arrival::kChunk:
        break;
      case UploadStream::Arrival::kDone:
        SubmitLocked();
        if (finished_) return;
        break;
      case UploadStream::Arrival::kClosed:
        return;  // the client half-closed after its upload
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
    slot_.Release();
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
      slot_.Release();
      const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
      if (job_submitted_) service_->metrics()->Job(technique_, OutcomeLabel(final_status_), seconds);
    }
    delete this;
  }

  // For callbacks from other threads, which lock state->mu and find this
  // reactor through it: the analysis cannot see that state->mu and
  // state_->mu are one mutex.
  void AssertHeld() const ABSL_ASSERT_EXCLUSIVE_LOCK(state_->mu) { state_->mu.AssertHeld(); }

  // From a worker thread, which holds state_->mu.
  void QueueProgressLocked(const engine::Progress& p) ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_->mu) {
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

  void JobDoneLocked(absl::StatusOr<engine::CompressionReport> report) ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_->mu) {
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
  bool ServeFromCacheLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_->mu) {
    auto hit = service_->cache()->Lookup(cache_key_, JoinPath(stream_.session().job_dir_path(), "out"));
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
  void StoreInCacheLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_->mu) {
    if (!cache_leader_) return;
    cache_leader_ = false;
    v1::Report proto = ReportProto(report_);
    ResultStore* cache = service_->cache();
    std::shared_ptr<JobDir> dir = stream_.session().job_dir();
    service_->tasks()->Post([cache, dir, key = cache_key_, artifact = header_.report_only() ? std::string() : output_path_,
                             proto = std::move(proto)] {
      absl::Status s = cache->Store(key, artifact, proto);
      if (!s.ok()) std::fprintf(stderr, "coremlzd: result not cached: %s\n", std::string(s.message()).c_str());
      cache->Release(key);
    });
  }

  void ReleaseCacheLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_->mu) {
    if (!cache_leader_) return;
    cache_leader_ = false;
    service_->cache()->Release(cache_key_);
  }

  void ResultReadyLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_->mu) {
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

  void ValidationDoneLocked(absl::StatusOr<v1::ValidationResult> result) ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_->mu) {
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
  absl::Status OnHeaderLocked(const v1::CompressHeader& header) ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_->mu) {
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
    JobUploadOptions upload;
    upload.work_dir = service_->options().work_dir;
    upload.pool = service_->pool();
    // The output is about the size of the input (never larger but for fp16
    // of an fp16 model's rewrite); room for both is checked up front.
    upload.reserves_output = true;
    if (absl::Status s = stream_.session().StartJob(upload, header.files()); !s.ok()) return s;
    input_path_ = stream_.session().model_path();
    options_.max_manifest_bytes = service_->options().limits.max_manifest_bytes;
    const std::string name = std::filesystem::path(input_path_).filename().string();
    const std::string out = JoinPath(stream_.session().job_dir_path(), "out");
    output_path_ = stream_.session().is_package() ? JoinPath(out, "model.mlpackage") : JoinPath(out, name);
    job_id_ = NewJobId();
    v1::CompressResponse r;
    r.mutable_accepted()->set_job_id(job_id_);
    r.mutable_accepted()->set_upload_bytes(stream_.session().bytes_declared());
    outbox_.push_back(std::move(r));
    PumpLocked();
    return absl::OkStatus();
  }

  void MaybeUploadProgressLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_->mu) {
    const uint64_t done = stream_.session().bytes_received();
    if (done - last_progress_bytes_ < (uint64_t{4} << 20) && done != stream_.session().bytes_declared()) return;
    last_progress_bytes_ = done;
    v1::CompressResponse r;
    r.mutable_progress()->set_phase(v1::Progress::UPLOAD);
    r.mutable_progress()->set_bytes_done(done);
    r.mutable_progress()->set_bytes_total(stream_.session().bytes_declared());
    if (!outbox_.empty() && outbox_.back().has_progress()) outbox_.back() = std::move(r);
    else outbox_.push_back(std::move(r));
    PumpLocked();
  }

  // Upload complete: answer from the cache when it holds this result; else
  // lead the computation (or wait for an identical call already leading).
  void SubmitLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_->mu) {
    ResultStore* cache = service_->cache();
    if (cache != nullptr && !cache_key_.empty() && !cache_leader_) {
      if (!header_.no_cache() && ServeFromCacheLocked()) return;
      std::shared_ptr<CallState> state = state_;
      TaskRunner* tasks = service_->tasks();
      const bool leads = cache->Lead(cache_key_, [state, tasks] {
        // The identical call finished: look again (off the releasing thread).
        tasks->Post([state] {
          absl::MutexLock lock(&state->mu);
          if (CompressReactor* r = state->reactor) {
            r->AssertHeld();
            r->SubmitLocked();
          }
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
    auto estimate = stream_.session().MemoryEstimate();
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
    std::shared_ptr<JobDir> dir = stream_.session().job_dir();  // keeps the files while the job runs
    job.done = [state, dir](absl::StatusOr<engine::CompressionReport> report) {
      absl::MutexLock lock(&state->mu);
      if (CompressReactor* r = state->reactor) {
        r->AssertHeld();
        r->JobDoneLocked(std::move(report));
      }
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

  void StartValidationLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_->mu) {
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
    std::shared_ptr<JobDir> dir = stream_.session().job_dir();
    vj.done = [state, dir](absl::StatusOr<v1::ValidationResult> result) {
      absl::MutexLock lock(&state->mu);
      if (CompressReactor* r = state->reactor) {
        r->AssertHeld();
        r->ValidationDoneLocked(std::move(result));
      }
    };
    Validator* validator = service_->validator();
    // The validator may call back synchronously: run it off this lock.
    service_->tasks()->Post([validator, vj = std::move(vj)]() mutable { validator->Validate(std::move(vj)); });
  }

  // Starts the next write if none is in flight: queued messages first, then
  // the artifact's files chunk by chunk (read lazily so that a large model
  // never sits in memory), then the summary, validation and the status.
  void PumpLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_->mu) {
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
    if (stream_.phase() == UploadStream::Phase::kDone && !job_running_ && report_ready()) {
      FinishLocked(ToGrpcStatus(validation_error_));
    }
  }

  bool report_ready() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_->mu) { return !report_.model_kind.empty(); }

  void WriteLocked(v1::CompressResponse r) ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_->mu) {
    current_ = std::move(r);
    writing_ = true;
    write_started_ = absl::Now();
    StartWrite(&current_);
  }

  // Ends a call whose client stalls (--header-timeout-seconds,
  // --idle-timeout-seconds), so that it stops holding a call slot, and
  // re-arms itself for the next moment a limit could pass.
  void CheckStallLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_->mu) {
    if (finished_) return;
    const absl::Time now = absl::Now();
    absl::Time next;
    if (absl::Status s = stream_.CheckStall(now, &next); !s.ok()) {
      FinishLocked(ToGrpcStatus(s));
      return;
    }
    const absl::Duration idle = service_->options().idle_timeout;
    if (idle > absl::ZeroDuration() && writing_) {
      if (now >= write_started_ + idle) {
        // The client reads nothing; a write cannot be abandoned, so cancel
        // the call (OnCancel releases the slot and ends the job).
        context_->TryCancel();
        return;
      }
      next = std::min(next, write_started_ + idle);
    }
    stream_.ArmStallCheck(now, next, [state = state_] {
      absl::MutexLock lock(&state->mu);
      if (CompressReactor* r = state->reactor) {
        r->AssertHeld();
        r->CheckStallLocked();
      }
    });
  }

  void FinishLocked(grpc::Status status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_->mu) {
    if (finished_) return;
    finished_ = true;
    ReleaseCacheLocked();
    // The call stops counting against max_concurrent_calls now, not at
    // OnDone: the client sees the status first and may start its next call.
    slot_.Release();
    status = ForCaller(status, stream_.session().job_dir_path());
    final_status_ = FromGrpcStatus(status);
    if (control_) control_->Cancel();
    Finish(status);
  }


  // Set at construction, then only read.
  CompressorService* const service_;
  grpc::CallbackServerContext* const context_;
  const std::shared_ptr<CallState> state_;
  const std::chrono::steady_clock::time_point start_;
  const absl::Time deadline_;

  // Everything else is read and written under state_->mu: gRPC's reactor
  // callbacks take it, and so does every callback from another thread.
  CallSlot slot_ ABSL_GUARDED_BY(state_->mu);
  UploadStream stream_ ABSL_GUARDED_BY(state_->mu);
  absl::Time write_started_ ABSL_GUARDED_BY(state_->mu);

  v1::CompressRequest request_ ABSL_GUARDED_BY(state_->mu);
  v1::CompressHeader header_ ABSL_GUARDED_BY(state_->mu);
  engine::CompressionConfig config_ ABSL_GUARDED_BY(state_->mu);
  engine::CompressOptions options_ ABSL_GUARDED_BY(state_->mu);
  std::string technique_ ABSL_GUARDED_BY(state_->mu) = "unknown";
  std::string job_id_ ABSL_GUARDED_BY(state_->mu);
  std::string input_path_ ABSL_GUARDED_BY(state_->mu);
  std::string output_path_ ABSL_GUARDED_BY(state_->mu);
  uint64_t last_progress_bytes_ ABSL_GUARDED_BY(state_->mu) = 0;

  std::shared_ptr<CallControl> control_ ABSL_GUARDED_BY(state_->mu);
  bool job_running_ ABSL_GUARDED_BY(state_->mu) = false;
  bool job_submitted_ ABSL_GUARDED_BY(state_->mu) = false;
  // Result cache: this call's key ("" when not cached) and whether it leads
  // the computation of that key.
  std::string cache_key_ ABSL_GUARDED_BY(state_->mu);
  bool cache_leader_ ABSL_GUARDED_BY(state_->mu) = false;
  engine::CompressionReport report_ ABSL_GUARDED_BY(state_->mu);

  std::deque<v1::CompressResponse> outbox_ ABSL_GUARDED_BY(state_->mu);
  v1::CompressResponse current_ ABSL_GUARDED_BY(state_->mu);  // the write in flight
  bool writing_ ABSL_GUARDED_BY(state_->mu) = false;
  bool finished_ ABSL_GUARDED_BY(state_->mu) = false;
  bool cancelled_ ABSL_GUARDED_BY(state_->mu) = false;
  absl::Status final_status_ ABSL_GUARDED_BY(state_->mu);

  ArtifactStream artifact_ ABSL_GUARDED_BY(state_->mu);
  bool summary_pending_ ABSL_GUARDED_BY(state_->mu) = false;

  bool validation_pending_ ABSL_GUARDED_BY(state_->mu) = false;
  std::shared_ptr<engine::JobControl> validation_control_ ABSL_GUARDED_BY(state_->mu);
  std::optional<v1::CompressResponse> validation_result_ ABSL_GUARDED_BY(state_->mu);
  absl::Status validation_error_ ABSL_GUARDED_BY(state_->mu);
};

void CallControl::OnProgress(const engine::Progress& p) {
  const auto now = std::chrono::steady_clock::now();
  if (p.weights_done != 0 && p.weights_done != p.weights_total && now - last_ < std::chrono::milliseconds(100)) return;
  last_ = now;
  absl::MutexLock lock(&state_->mu);
  if (CompressReactor* r = state_->reactor) {
    r->AssertHeld();
    r->QueueProgressLocked(p);
  }
}

}  // namespace

grpc::ServerBidiReactor<v1::CompressRequest, v1::CompressResponse>* NewCompressReactor(
    CompressorService* service, grpc::CallbackServerContext* context) {
  return new CompressReactor(service, context);
}

}  // namespace coremlz::api
