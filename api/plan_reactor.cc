#include "api/plan_reactor.h"

#include <algorithm>
#include <chrono>
#include <deque>
#include <filesystem>
#include <memory>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "api/artifact_stream.h"
#include "api/call_slot.h"
#include "api/grpc_status.h"
#include "api/job_call.h"
#include "api/job_labels.h"
#include "api/plan_convert.h"
#include "api/plan_fan_out.h"
#include "api/transfer.h"
#include "api/upload_stream.h"
#include "common/file_util.h"
#include "engine/compress_model.h"
#include "engine/worker_pool.h"
#include "plan/plan_outputs.h"
#include "plan/planner.h"

namespace coremlz::api {
namespace {

// Plan's upload: as Compress's, ending at its last byte, with Compress's
// words for a message out of place.
UploadStream::Options PlanStream(const ServerOptions& server) {
  UploadStream::Options options = UploadStream::ServerOptionsOf(server);
  options.words.not_a_chunk = "a second header arrived; only file chunks may follow the header";
  options.words.after_upload = "a message arrived after the upload was complete";
  return options;
}

class PlanReactor;

// State shared by the reactor and the plan running for it on other threads
// (worker pool, plan threads, gRPC's timer). One mutex guards everything the
// reactor does.
struct CallState {
  absl::Mutex mu;
  PlanReactor* reactor ABSL_GUARDED_BY(mu) = nullptr;  // null once the call is over
};

// What the plan job hands back (written by the job's thread before `done`).
struct PlanOutcome {
  v1::PlanOutputs outputs;
  bool applied = false;
};

v1::PlanProgress::Phase PhaseOf(plan::PlanProgress::Phase phase) {
  switch (phase) {
    case plan::PlanProgress::Phase::kStudy: return v1::PlanProgress::STUDY;
    case plan::PlanProgress::Phase::kTrials: return v1::PlanProgress::TRIALS;
    case plan::PlanProgress::Phase::kRounds: return v1::PlanProgress::ROUNDS;
    case plan::PlanProgress::Phase::kPareto: return v1::PlanProgress::PARETO;
  }
  return v1::PlanProgress::PHASE_UNSPECIFIED;
}

class PlanReactor final : public grpc::ServerBidiReactor<v1::PlanRequest, v1::PlanResponse> {
 public:
  PlanReactor(CompressorService* service, grpc::CallbackServerContext* context)
      : service_(service),
        context_(context),
        state_(std::make_shared<CallState>()),
        deadline_(DeadlineOf(context)),
        stream_(PlanStream(service->options()), absl::Now()) {
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
    // As for Compress: the slot is free now; a plan in flight stops and
    // answers through JobDoneLocked.
    slot_.Release();
    if (control_) control_->Cancel();
    if (!job_running_ && !finished_) {
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
      slot_.Release();
    }
    delete this;
  }

  // For callbacks from other threads, which lock state->mu and find this
  // reactor through it: the analysis cannot see that state->mu and
  // state_->mu are one mutex.
  void AssertHeld() const ABSL_ASSERT_EXCLUSIVE_LOCK(state_->mu) { state_->mu.AssertHeld(); }

  // From the plan's threads, which hold state_->mu.
  void QueueProgressLocked(const plan::PlanProgress& p) ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_->mu) {
    if (finished_) return;
    v1::PlanResponse r;
    v1::PlanProgress* pr = r.mutable_progress();
    pr->set_phase(PhaseOf(p.phase));
    pr->set_trials_done(p.trials_done);
    pr->set_trials_total(p.trials_total);
    pr->set_round(p.round);
    QueueLatestProgressLocked(std::move(r));
  }

  void QueueApplyLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_->mu) {
    if (finished_) return;
    v1::PlanResponse r;
    r.mutable_progress()->set_phase(v1::PlanProgress::APPLY);
    QueueLatestProgressLocked(std::move(r));
  }

  void JobDoneLocked(absl::Status status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_->mu) {
    job_running_ = false;
    service_->UpdateWorkerGauges();
    if (finished_) return;
    if (!status.ok()) {
      if (cancelled_ || status.code() == absl::StatusCode::kCancelled) {
        status = absl::Now() > deadline_ ? absl::DeadlineExceededError("the call's deadline passed during the plan")
                                         : absl::CancelledError("the call was cancelled");
      }
      outbox_.clear();
      FinishLocked(ToGrpcStatus(status));
      return;
    }
    v1::PlanResponse r;
    *r.mutable_outputs() = std::move(outcome_->outputs);
    outbox_.push_back(std::move(r));
    if (outcome_->applied) {
      std::string root;
      auto files = DescribeModelFiles(output_path_, &root, service_->options().limits.max_manifest_bytes);
      if (!files.ok()) {
        FinishLocked(ToGrpcStatus(files.status()));
        return;
      }
      artifact_.Start(std::move(*files), root);
    }
    result_ready_ = true;
    PumpLocked();
  }

 private:
  absl::Status OnHeaderLocked(const v1::PlanHeader& header) ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_->mu) {
    header_ = header;
    absl::StatusOr<plan::PlanTarget> target = FromProto(header.target());
    if (!target.ok()) return target.status();
    options_.target = *target;
    if (header.samples() < 0 || header.samples() > 1000) {
      return absl::InvalidArgumentError(absl::StrCat("samples must be 1..1000 (0: 4), not ", header.samples()));
    }
    if (header.has_weight_threshold() && header.weight_threshold() < 0) {
      return absl::InvalidArgumentError(absl::StrCat("weight_threshold must be >= 0, not ", header.weight_threshold()));
    }
    options_.weight_threshold = header.has_weight_threshold() ? header.weight_threshold() : 2048;
    options_.study.samples = header.samples() == 0 ? 4 : header.samples();
    options_.study.seed = header.seed();
    options_.study.function = header.function();
    options_.study.threads = std::max(1, std::min<int>(service_->pool()->threads(),
                                                       static_cast<int>(std::thread::hardware_concurrency())));
    if (!header.candidates().empty()) {
      auto candidates = plan::ParseCandidates(header.candidates(), options_.weight_threshold);
      if (!candidates.ok()) return candidates.status();
      options_.candidates = *std::move(candidates);
    }
    UploadSession& session = stream_.session();
    JobUploadOptions upload;
    upload.work_dir = service_->options().work_dir;
    upload.pool = service_->pool();
    upload.reserves_output = header.apply();
    if (absl::Status s = session.StartJob(upload, header.files()); !s.ok()) return s;
    input_path_ = session.model_path();
    const std::string name = std::filesystem::path(input_path_).filename().string();
    const std::string out = JoinPath(session.job_dir_path(), "out");
    output_path_ = session.is_package() ? JoinPath(out, "model.mlpackage") : JoinPath(out, name);
    v1::PlanResponse r;
    r.mutable_accepted()->set_job_id(NewJobId());
    r.mutable_accepted()->set_upload_bytes(session.bytes_declared());
    outbox_.push_back(std::move(r));
    PumpLocked();
    return absl::OkStatus();  // an empty upload is done at once: UploadStream::Declared

  }

  void MaybeUploadProgressLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_->mu) {
    const UploadSession& session = stream_.session();
    const uint64_t done = session.bytes_received();
    if (done - last_progress_bytes_ < (uint64_t{4} << 20) && done != session.bytes_declared()) return;
    last_progress_bytes_ = done;
    v1::PlanResponse r;
    r.mutable_progress()->set_phase(v1::PlanProgress::UPLOAD);
    r.mutable_progress()->set_bytes_done(done);
    r.mutable_progress()->set_bytes_total(session.bytes_declared());
    QueueLatestProgressLocked(std::move(r));
  }

  // Only the latest progress matters: at most one waits.
  void QueueLatestProgressLocked(v1::PlanResponse r) ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_->mu) {
    if (!outbox_.empty() && outbox_.back().has_progress()) outbox_.back() = std::move(r);
    else outbox_.push_back(std::move(r));
    PumpLocked();
  }

  void SubmitLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_->mu) {
    if (finished_) return;
    control_ = std::make_shared<engine::JobControl>();
    control_->SetDeadline(deadline_);
    outcome_ = std::make_shared<PlanOutcome>();
    UploadSession& session = stream_.session();
    auto estimate = session.MemoryEstimate();
    if (!estimate.ok()) {
      FinishLocked(ToGrpcStatus(estimate.status()));
      return;
    }
    engine::CompressJob job;
    job.input_path = input_path_;
    job.output_path = output_path_;
    // The study holds every candidate's decoded weights (float32: about
    // twice an fp16 model's bytes each) beside the job's own estimate.
    const uint64_t candidates = options_.candidates.empty() ? 8 : options_.candidates.size();
    job.memory_estimate = *estimate + session.bytes_declared() * 2 * candidates;
    if (service_->options().wait_for_worker) job.admission_deadline = deadline_;
    job.deadline = deadline_;
    job.control = control_;

    PlanFanOutRequest fan;
    fan.model_path = input_path_;
    fan.upload_root = session.is_package() ? input_path_ : std::filesystem::path(input_path_).parent_path().string();
    fan.header = header_;
    fan.local_threads = options_.study.threads;
    fan.deadline = deadline_;
    fan.metrics = service_->metrics();
    std::shared_ptr<engine::JobControl> control = control_;
    fan.cancelled = [control] { return control->Cancelled(); };

    std::shared_ptr<CallState> state = state_;
    std::shared_ptr<PlanOutcome> outcome = outcome_;
    job.task = [options = options_, fan, factory = service_->plan_fan_out(), state, outcome,
                model_name = header_.model_name().empty() ? std::filesystem::path(input_path_).filename().string()
                                                          : header_.model_name(),
                input = input_path_, output = output_path_, apply = header_.apply(),
                metrics = service_->metrics()](engine::JobControl* control) mutable -> absl::Status {
      options.study.cancelled = fan.cancelled;
      auto last = std::make_shared<std::chrono::steady_clock::time_point>();
      auto last_mu = std::make_shared<absl::Mutex>();
      options.progress = [state, last, last_mu](const plan::PlanProgress& p) {
        {
          // Trials report often; a progress message every 100 ms is enough.
          absl::MutexLock lock(last_mu.get());
          const auto now = std::chrono::steady_clock::now();
          const bool edge = p.phase != plan::PlanProgress::Phase::kTrials || p.trials_done == 0 ||
                            p.trials_done == p.trials_total;
          if (!edge && now - *last < std::chrono::milliseconds(100)) return;
          *last = now;
        }
        absl::MutexLock lock(&state->mu);
        if (PlanReactor* r = state->reactor) {
          r->AssertHeld();
          r->QueueProgressLocked(p);
        }
      };
      // Made before the plan starts: remote workers build their studies beside ours.
      options.fan_out = factory ? factory(fan) : nullptr;
      if (!options.fan_out) options.fan_out = LocalPlanFanOut(fan);
      absl::StatusOr<plan::PlanResult> result = plan::MakePlan(input, options);
      options.fan_out = nullptr;  // ends the remote workers' streams now, not when the job is destroyed
      if (!result.ok()) return result.status();
      metrics->PlanTrials("pruned", result->trials_pruned);
      result->model = model_name;
      absl::StatusOr<std::string> yaml = plan::PlanConfigYaml(result->config);
      if (!yaml.ok()) return yaml.status();
      v1::PlanOutputs& out = outcome->outputs;
      out.set_config_yaml(*yaml);
      out.set_report_json(plan::PlanReportJson(*result) + "\n");
      out.set_pareto_svg(plan::ParetoSvg(*result));
      *out.mutable_result() = ToProto(*result);
      if (apply) {
        {
          absl::MutexLock lock(&state->mu);
          if (PlanReactor* r = state->reactor) {
            r->AssertHeld();
            r->QueueApplyLocked();
          }
        }
        // As `coremlz plan --apply` (and `compress --config` of the YAML) writes it.
        absl::StatusOr<engine::CompressionReport> report = engine::CompressModelPath(
            input, output, result->config, engine::CompressOptions{}, engine::WriteOptions{}, control);
        if (!report.ok()) return report.status();
        out.set_applied_model_bytes(report->model_bytes_after);
        outcome->applied = true;
      }
      return absl::OkStatus();
    };
    std::shared_ptr<JobDir> dir = session.job_dir();  // keeps the files while the job runs
    job.done = [state, dir](absl::StatusOr<engine::CompressionReport> report) {
      absl::MutexLock lock(&state->mu);
      if (PlanReactor* r = state->reactor) {
        r->AssertHeld();
        r->JobDoneLocked(report.status());
      }
    };
    job_running_ = true;
    job_submitted_ = true;
    job_start_ = std::chrono::steady_clock::now();
    if (absl::Status s = service_->pool()->Submit(std::move(job)); !s.ok()) {
      job_running_ = false;
      FinishLocked(ToGrpcStatus(s));
      return;
    }
    service_->UpdateWorkerGauges();
    v1::PlanResponse r;
    r.mutable_progress()->set_phase(v1::PlanProgress::QUEUED);
    r.mutable_progress()->set_queue_position(service_->pool()->queue_depth());
    QueueLatestProgressLocked(std::move(r));
  }

  // Queued messages, then the artifact chunk by chunk, then the status.
  void PumpLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_->mu) {
    if (writing_ || finished_) return;
    if (!outbox_.empty()) {
      WriteLocked(std::move(outbox_.front()));
      outbox_.pop_front();
      return;
    }
    if (artifact_.active()) {
      v1::CompressResponse c;
      if (absl::Status s = artifact_.Next(&c); !s.ok()) {
        artifact_.Close();
        FinishLocked(ToGrpcStatus(s));
        return;
      }
      v1::PlanResponse r;
      if (c.has_artifact_file()) {
        *r.mutable_artifact_file() = std::move(*c.mutable_artifact_file());
      } else if (c.has_artifact_chunk()) {
        service_->metrics()->ArtifactBytes(c.artifact_chunk().data().size());
        r.mutable_artifact_chunk()->Swap(c.mutable_artifact_chunk());
      }
      if (r.msg_case() != v1::PlanResponse::MSG_NOT_SET) {
        WriteLocked(std::move(r));
        return;
      }
    }
    if (result_ready_ && !job_running_) FinishLocked(grpc::Status::OK);
  }

  void WriteLocked(v1::PlanResponse r) ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_->mu) {
    current_ = std::move(r);
    writing_ = true;
    write_started_ = absl::Now();
    StartWrite(&current_);
  }

  // As Compress: a client that sends no header, stalls its upload or stops
  // reading loses its slot (--header-timeout-seconds, --idle-timeout-seconds).
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
        // A write cannot be abandoned: cancel the call (OnCancel frees the
        // slot and stops the plan).
        context_->TryCancel();
        return;
      }
      next = std::min(next, write_started_ + idle);
    }
    stream_.ArmStallCheck(now, next, [state = state_] {
      absl::MutexLock lock(&state->mu);
      if (PlanReactor* r = state->reactor) {
        r->AssertHeld();
        r->CheckStallLocked();
      }
    });
  }

  void FinishLocked(grpc::Status status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_->mu) {
    if (finished_) return;
    finished_ = true;
    // The call stops counting against --max-calls now, not at OnDone.
    slot_.Release();
    status = ForCaller(status, stream_.session().job_dir_path());
    final_status_ = FromGrpcStatus(status);
    if (control_) control_->Cancel();
    // Counted before the client can see the status.
    if (job_submitted_) {
      service_->metrics()->Plan(OutcomeLabel(final_status_),
                                std::chrono::duration<double>(std::chrono::steady_clock::now() - job_start_).count());
    }
    Finish(status);
  }

  // Set at construction, then only read.
  CompressorService* const service_;
  grpc::CallbackServerContext* const context_;
  const std::shared_ptr<CallState> state_;
  const absl::Time deadline_;

  // Everything else is read and written under state_->mu: gRPC's reactor
  // callbacks take it, and so does every callback from another thread
  // (the job's, the plan's progress, the stall timer).
  CallSlot slot_ ABSL_GUARDED_BY(state_->mu);
  UploadStream stream_ ABSL_GUARDED_BY(state_->mu);
  absl::Time write_started_ ABSL_GUARDED_BY(state_->mu);

  v1::PlanRequest request_ ABSL_GUARDED_BY(state_->mu);
  v1::PlanHeader header_ ABSL_GUARDED_BY(state_->mu);
  plan::PlanOptions options_ ABSL_GUARDED_BY(state_->mu);
  std::string input_path_ ABSL_GUARDED_BY(state_->mu);
  std::string output_path_ ABSL_GUARDED_BY(state_->mu);
  uint64_t last_progress_bytes_ ABSL_GUARDED_BY(state_->mu) = 0;

  std::shared_ptr<engine::JobControl> control_ ABSL_GUARDED_BY(state_->mu);
  std::shared_ptr<PlanOutcome> outcome_ ABSL_GUARDED_BY(state_->mu);
  bool job_running_ ABSL_GUARDED_BY(state_->mu) = false;
  bool job_submitted_ ABSL_GUARDED_BY(state_->mu) = false;
  std::chrono::steady_clock::time_point job_start_ ABSL_GUARDED_BY(state_->mu);
  bool result_ready_ ABSL_GUARDED_BY(state_->mu) = false;

  std::deque<v1::PlanResponse> outbox_ ABSL_GUARDED_BY(state_->mu);
  v1::PlanResponse current_ ABSL_GUARDED_BY(state_->mu);  // the write in flight
  bool writing_ ABSL_GUARDED_BY(state_->mu) = false;
  bool finished_ ABSL_GUARDED_BY(state_->mu) = false;
  bool cancelled_ ABSL_GUARDED_BY(state_->mu) = false;
  absl::Status final_status_ ABSL_GUARDED_BY(state_->mu);
  ArtifactStream artifact_ ABSL_GUARDED_BY(state_->mu);
};

}  // namespace

grpc::ServerBidiReactor<v1::PlanRequest, v1::PlanResponse>* NewPlanReactor(CompressorService* service,
                                                                             grpc::CallbackServerContext* context) {
  return new PlanReactor(service, context);
}

}  // namespace coremlz::api
