#include "api/compress_reactor.h"

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <optional>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "api/convert.h"
#include "api/grpc_status.h"
#include "api/job_call.h"
#include "api/job_labels.h"
#include "api/result_store.h"
#include "api/stream_admission.h"
#include "api/transfer.h"
#include "api/upload_arrival.h"
#include "api/upload_call.h"
#include "api/upload_stream.h"
#include "api/validator.h"
#include "common/file_util.h"
#include "engine/compress_cost.h"
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
using CompressState = CallState<CompressReactor>;

// Progress and cancellation for the engine, tied to the call.
class CallControl : public engine::JobControl {
 public:
  CallControl(std::shared_ptr<CompressState> state, absl::Time deadline)
      : state_(std::move(state)), deadline_(deadline) {}
  bool Cancelled() const override { return engine::JobControl::Cancelled() || absl::Now() > deadline_; }
  void OnProgress(const engine::Progress& p) override;

 private:
  std::shared_ptr<CompressState> state_;
  absl::Time deadline_;
  std::chrono::steady_clock::time_point last_ = {};
};

class CompressReactor final : public UploadCall<CompressReactor, v1::CompressRequest, v1::CompressResponse> {
 public:
  CompressReactor(CompressorService* service, grpc::CallbackServerContext* context)
      : UploadCall(service, context), start_(std::chrono::steady_clock::now()) {
    Begin();
  }

  // From a worker thread, which holds state_->mu.
  void EngineProgressLocked(const engine::Progress& p) ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_->mu) {
    v1::CompressResponse r;
    auto* pr = r.mutable_progress();
    pr->set_phase(v1::Progress::COMPRESS);
    pr->set_weights_done(p.weights_done);
    pr->set_weights_total(p.weights_total);
    pr->set_bytes_done(p.bytes_done);
    pr->set_bytes_total(p.bytes_total);
    pr->set_current(p.current);
    QueueProgressLocked(std::move(r));
  }

  void JobDoneLocked(absl::StatusOr<engine::CompressionReport> report) ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_->mu) {
    job_running_ = false;
    service_->UpdateWorkerGauges();
    if (arrival_) service_->metrics()->StreamWait(absl::ToDoubleSeconds(arrival_->waited()));
    if (finished_) return;
    if (job_discarded_) {  // a cached result answers the call
      PumpLocked();
      return;
    }
    if (!report.ok() && arrival_ && stream_.phase() != UploadStream::Phase::kDone && !cancelled_ &&
        absl::Now() <= deadline_) {
      // Bytes that fail the job may yet fail the upload's checks, whose
      // error is then the call's: the job's waits for the upload's end.
      held_error_ = report.status();
      return;
    }
    if (report.ok() && !header_.report_only() && engine::HasOneCostPerPass(config_)) {
      // What this job teaches the early start: its bytes over the time it
      // compressed, less what it waited for upload bytes.
      const absl::Duration waited = arrival_ ? arrival_->waited() : absl::ZeroDuration();
      if (service_->stream_rate()->Observe(report->weight_bytes_before, engine::RelativeCost(config_),
                                           absl::Seconds(report->seconds) - waited)) {
        service_->metrics()->StreamRateLearned(service_->stream_rate()->Rate(1));
      }
    }
    if (!report.ok()) {
      absl::Status s = report.status();
      if (cancelled_ || (s.code() == absl::StatusCode::kCancelled && absl::Now() > deadline_)) {
        s = absl::Now() > deadline_ ? absl::DeadlineExceededError("the call's deadline passed during compression")
                                    : absl::CancelledError("the call was cancelled");
      }
      DropRepliesLocked();
      FinishLocked(ToGrpcStatus(s));
      return;
    }
    report_ = std::move(*report);
    ArtifactFiles artifact;
    if (!header_.report_only()) {
      absl::StatusOr<ArtifactFiles> described = DescribeArtifactLocked(output_path_);
      if (!described.ok()) {
        FinishLocked(ToGrpcStatus(described.status()));
        return;
      }
      artifact = *std::move(described);
    }
    StoreResultLocked(header_.report_only() ? std::string() : output_path_, artifact.files, ReportProto(report_), {});
    ResultReadyLocked(std::move(artifact));
  }

  // A verified hit: the artifact is placed in this job's output directory and
  // streamed exactly as a computed one would be.
  void OnCacheHitLocked(ResultStore::Hit hit) override ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_->mu) {
    if (arrival_) {
      // A job started while the upload arrived: the hit wins unless the
      // job's own result is already answering (an identical call's result,
      // looked up again after it finished).
      if (!job_running_ || report_ready()) return;
      job_discarded_ = true;
      arrival_->Fail(absl::CancelledError("a cached result answered the call"));  // it never commits
      control_->Cancel();
    }
    if (!hit.artifact_path.empty()) output_path_ = hit.artifact_path;
    std::vector<v1::WeightReport> rows(hit.report.weights().begin(), hit.report.weights().end());
    report_ = ReportFrom(rows, hit.report.summary());
    ResultReadyLocked(ArtifactOf(hit));
  }

  void ResultReadyLocked(ArtifactFiles artifact) ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_->mu) {
    for (const engine::WeightReport& w : report_.weights) {
      v1::CompressResponse r;
      *r.mutable_weight() = ToProto(w);
      QueueLocked(std::move(r));
    }
    if (report_.weight_bytes_after > 0) service_->metrics()->CompressionRatio(report_.RatioVsOriginal());
    if (!header_.report_only()) StartArtifactLocked(std::move(artifact));
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
  absl::Status OnHeaderLocked(const v1::CompressHeader& header) override ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_->mu) {
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
    // that validates is never cached.
    if (ResultStore* cache = service_->cache(); cache != nullptr && !header.validation().enabled()) {
      UseCacheLocked(cache->KeyFor(header, ToProto(config_)), header.no_cache());
    }
    upload_start_ = absl::Now();
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
    QueueLocked(std::move(r));
    return absl::OkStatus();
  }

  // A chunk arrived. The job may start now, before the rest of the upload
  // (api/stream_admission.h): a package whose Manifest.json and spec are in
  // (the memory estimate is known), on a pool that reads arriving input,
  // once the upload outpaces the estimated compression rate. Otherwise it
  // starts when the upload is complete, as it always did.
  void OnChunkLocked() override ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_->mu) {
    UploadSession& session = stream_.session();
    if (arrival_) {
      arrival_->Update(session.list(0));
      return;
    }
    const ServerOptions& options = service_->options();
    if (job_submitted_ || no_early_start_ || options.stream_rate_bytes_per_second <= 0 || !service_->pool()->reads_arriving_input() ||
        !session.is_package() || session.lists() != 1) {
      return;
    }
    // The spec is in (the estimate is known) and the file after it has
    // begun, so the directories the manifest names exist.
    const std::optional<uint64_t> estimate = session.EarlyMemoryEstimate();
    if (!estimate || session.list(0).current_file_bytes() == 0) return;
    // The flag's rate is int8's; a slower technique consumes the arriving
    // bytes more slowly, so it may start sooner (engine/compress_cost.h);
    // both as learned from this server's completed jobs.
    const double compress_rate = service_->stream_rate()->Rate(engine::RelativeCost(config_));
    if (!StartWhileUploading(session.bytes_received(), session.bytes_declared(), absl::Now() - upload_start_,
                             compress_rate, options.stream_min_bytes)) {
      return;
    }
    // A result the cache holds, or an identical call computes, is not
    // computed again: the call waits for its upload, as without streaming.
    if (!MayStartEarlyLocked()) {
      no_early_start_ = true;
      return;
    }
    arrival_ = std::make_shared<UploadArrival>(session.list(0));
    SubmitJobLocked(*estimate);
  }

  // The upload is complete and checked: a job that failed meanwhile ends
  // the call with its own error now.
  void OnUploadCheckedLocked() override ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_->mu) {
    if (!held_error_.ok()) FinishLocked(ToGrpcStatus(held_error_));
  }

  // Upload complete, and the result is not cached: the job (or, when it
  // started early, the rest of it: the input is complete).
  void OnUploadedLocked() override ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_->mu) {
    if (arrival_) {
      arrival_->Complete();
      return;
    }
    auto estimate = stream_.session().MemoryEstimate();
    if (!estimate.ok()) {
      FinishLocked(ToGrpcStatus(estimate.status()));
      return;
    }
    SubmitJobLocked(*estimate);
  }

  // An identical call leads: a job already running finishes on its own
  // (its worker is not held waiting for the other call).
  bool ComputesWhileIdenticalLeadsLocked() override ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_->mu) {
    if (!arrival_) return false;
    arrival_->Complete();
    return true;
  }

  void SubmitJobLocked(uint64_t memory_estimate) ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_->mu) {
    control_ = std::make_shared<CallControl>(state_, deadline_);
    engine::CompressJob job;
    job.input_path = input_path_;
    job.output_path = output_path_;
    job.config = config_;
    job.options = options_;
    job.memory_estimate = memory_estimate;
    job.arriving = arrival_;
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
    std::shared_ptr<CompressState> state = state_;
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
    if (!s.ok() && arrival_ && s.code() == absl::StatusCode::kResourceExhausted) {
      // No room now: the job is submitted again once the upload is complete,
      // as it would have been without the early start.
      job_running_ = job_submitted_ = false;
      arrival_.reset();
      control_.reset();
      no_early_start_ = true;
      return;
    }
    if (!s.ok()) {
      job_running_ = false;
      FinishLocked(ToGrpcStatus(s));
      return;
    }
    if (arrival_) service_->metrics()->StreamedJob();
    service_->UpdateWorkerGauges();
    QueueQueuedLocked(service_->pool()->queue_depth());
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
    std::shared_ptr<CompressState> state = state_;
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

  // After the weights and the artifact: the summary, then the device's
  // verdict when one was asked for, then the status.
  void PumpTailLocked() override ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_->mu) {
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

  bool WorkPendingLocked() const override ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_->mu) {
    return job_running_ || validation_pending_;
  }

  void StopWorkLocked() override ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_->mu) {
    if (arrival_) arrival_->Fail(absl::CancelledError("the call ended"));
    if (control_) control_->Cancel();
    if (validation_control_) validation_control_->Cancel();
  }

  void OnDoneLocked() override ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_->mu) {
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    // A streamed job whose client cancelled mid-upload ended with the
    // upload's status (the stream's end); it was cancelled all the same.
    const std::string outcome = arrival_ && cancelled_ ? "cancelled" : OutcomeLabel(final_status_);
    if (job_submitted_) service_->metrics()->Job(technique_, outcome, seconds);
  }

  bool report_ready() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_->mu) { return !report_.model_kind.empty(); }

  const std::chrono::steady_clock::time_point start_;  // set at construction

  // Everything else is read and written under state_->mu: gRPC's reactor
  // callbacks take it, and so does every callback from another thread.
  v1::CompressHeader header_ ABSL_GUARDED_BY(state_->mu);
  engine::CompressionConfig config_ ABSL_GUARDED_BY(state_->mu);
  engine::CompressOptions options_ ABSL_GUARDED_BY(state_->mu);
  std::string technique_ ABSL_GUARDED_BY(state_->mu) = "unknown";
  std::string job_id_ ABSL_GUARDED_BY(state_->mu);
  std::string input_path_ ABSL_GUARDED_BY(state_->mu);
  std::string output_path_ ABSL_GUARDED_BY(state_->mu);

  std::shared_ptr<CallControl> control_ ABSL_GUARDED_BY(state_->mu);
  // Set when the job started while the upload arrived (OnChunkLocked).
  std::shared_ptr<UploadArrival> arrival_ ABSL_GUARDED_BY(state_->mu);
  absl::Time upload_start_ ABSL_GUARDED_BY(state_->mu);
  bool job_discarded_ ABSL_GUARDED_BY(state_->mu) = false;  // a cache hit answered instead
  // The queue had no room for it, or the cache (or an identical call) will answer.
  bool no_early_start_ ABSL_GUARDED_BY(state_->mu) = false;
  absl::Status held_error_ ABSL_GUARDED_BY(state_->mu);     // the early job's, until the upload ends
  bool job_running_ ABSL_GUARDED_BY(state_->mu) = false;
  bool job_submitted_ ABSL_GUARDED_BY(state_->mu) = false;
  engine::CompressionReport report_ ABSL_GUARDED_BY(state_->mu);

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
    r->EngineProgressLocked(p);
  }
}

}  // namespace

grpc::ServerBidiReactor<v1::CompressRequest, v1::CompressResponse>* NewCompressReactor(
    CompressorService* service, grpc::CallbackServerContext* context) {
  return new CompressReactor(service, context);
}

}  // namespace coremlz::api
