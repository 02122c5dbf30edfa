#include "api/plan_reactor.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <memory>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "api/grpc_status.h"
#include "api/job_call.h"
#include "api/job_labels.h"
#include "api/plan_convert.h"
#include "api/plan_fan_out.h"
#include "api/transfer.h"
#include "api/upload_call.h"
#include "api/upload_stream.h"
#include "common/file_util.h"
#include "engine/compress_model.h"
#include "engine/worker_pool.h"
#include "plan/plan_outputs.h"
#include "plan/planner.h"

namespace coremlz::api {
namespace {

class PlanReactor;
using PlanState = CallState<PlanReactor>;

// What the plan job hands back (written by the job's thread before `done`).
struct PlanOutcome {
  v1::PlanOutputs outputs;
  bool applied = false;
};

v1::PlanProgress::Phase PhaseOf(plan::PlanProgress::Phase phase) {
  switch (phase) {
    case plan::PlanProgress::Phase::kStudy: return v1::PlanProgress::STUDY;
    case plan::PlanProgress::Phase::kTrials: return v1::PlanProgress::TRIALS;
    case plan::PlanProgress::Phase::kCompare: return v1::PlanProgress::COMPARE;
    case plan::PlanProgress::Phase::kRounds: return v1::PlanProgress::ROUNDS;
    case plan::PlanProgress::Phase::kPareto: return v1::PlanProgress::PARETO;
  }
  return v1::PlanProgress::PHASE_UNSPECIFIED;
}

class PlanReactor final : public UploadCall<PlanReactor, v1::PlanRequest, v1::PlanResponse> {
 public:
  PlanReactor(CompressorService* service, grpc::CallbackServerContext* context)
      : UploadCall(service, context) {
    Begin();
  }

  // From the plan's threads, which hold state_->mu.
  void PlanProgressLocked(const plan::PlanProgress& p) ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_->mu) {
    v1::PlanResponse r;
    v1::PlanProgress* pr = r.mutable_progress();
    pr->set_phase(PhaseOf(p.phase));
    pr->set_trials_done(p.trials_done);
    pr->set_trials_total(p.trials_total);
    pr->set_round(p.round);
    QueueProgressLocked(std::move(r));
  }

  void QueueApplyLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_->mu) {
    v1::PlanResponse r;
    r.mutable_progress()->set_phase(v1::PlanProgress::APPLY);
    QueueProgressLocked(std::move(r));
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
      DropRepliesLocked();
      FinishLocked(ToGrpcStatus(status));
      return;
    }
    ArtifactFiles artifact;
    if (outcome_->applied) {
      absl::StatusOr<ArtifactFiles> described = DescribeArtifactLocked(output_path_);
      if (!described.ok()) {
        FinishLocked(ToGrpcStatus(described.status()));
        return;
      }
      artifact = *std::move(described);
    }
    StoreResultLocked(outcome_->applied ? output_path_ : std::string(), artifact.files, {}, outcome_->outputs);
    ResultReadyLocked(std::move(outcome_->outputs), outcome_->applied, std::move(artifact));
  }

  // A verified hit: the outputs as the plan wrote them and, with apply, the
  // model it compressed, placed in this job's output directory.
  void OnCacheHitLocked(ResultStore::Hit hit) override ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_->mu) {
    const bool applied = !hit.artifact_path.empty();
    if (applied) output_path_ = hit.artifact_path;
    ResultReadyLocked(std::move(hit.plan), applied, ArtifactOf(hit));
  }

 private:
  // The outputs, then (applied) the model, then the status.
  void ResultReadyLocked(v1::PlanOutputs outputs, bool applied, ArtifactFiles artifact)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_->mu) {
    v1::PlanResponse r;
    *r.mutable_outputs() = std::move(outputs);
    QueueLocked(std::move(r));
    if (applied) StartArtifactLocked(std::move(artifact));
    result_ready_ = true;
    PumpLocked();
  }

  absl::Status OnHeaderLocked(const v1::PlanHeader& header) override ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_->mu) {
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
    const plan::PlanOptions defaults;
    options_.weight_threshold = header.has_weight_threshold() ? header.weight_threshold() : defaults.weight_threshold;
    options_.study.samples = header.samples() == 0 ? defaults.study.samples : header.samples();
    options_.study.seed = header.seed();
    options_.study.function = header.function();
    options_.study.threads = std::max(1, std::min<int>(service_->pool()->threads(),
                                                       static_cast<int>(std::thread::hardware_concurrency())));
    if (!header.candidates().empty()) {
      auto candidates = plan::ParseCandidates(header.candidates(), options_.weight_threshold);
      if (!candidates.ok()) return candidates.status();
      options_.candidates = *std::move(candidates);
    }
    if (ResultStore* cache = service_->cache()) UseCacheLocked(cache->KeyFor(header), header.no_cache());
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
    QueueLocked(std::move(r));
    return absl::OkStatus();  // an empty upload is done at once: UploadStream::Declared
  }

  void OnUploadedLocked() override ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_->mu) {
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

    std::shared_ptr<PlanState> state = state_;
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
          r->PlanProgressLocked(p);
        }
      };
      // Made before the plan starts: remote workers make their baselines beside ours.
      PlanFanOut fan_out = factory ? factory(fan) : PlanFanOut{};
      options.fan_out = fan_out.trials ? std::move(fan_out.trials) : LocalPlanFanOut(fan);
      options.study.build_fan_out = std::move(fan_out.builds);
      options.trials_finished = std::move(fan_out.finished);
      absl::StatusOr<plan::PlanResult> result = plan::MakePlan(input, options);
      // Ends the remote workers' streams now (when the plan failed before
      // its trials were finished), not when the job is destroyed.
      options.fan_out = nullptr;
      options.study.build_fan_out = nullptr;
      options.trials_finished = nullptr;
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
    job.threads = options_.study.threads;  // no slot is lent to others' helpers on its cores
    job_running_ = true;
    job_submitted_ = true;
    job_start_ = std::chrono::steady_clock::now();
    if (absl::Status s = service_->pool()->Submit(std::move(job)); !s.ok()) {
      job_running_ = false;
      FinishLocked(ToGrpcStatus(s));
      return;
    }
    service_->UpdateWorkerGauges();
    QueueQueuedLocked(service_->pool()->queue_depth());
  }

  // After the outputs and the applied model: the status.
  void PumpTailLocked() override ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_->mu) {
    if (result_ready_ && !job_running_) FinishLocked(grpc::Status::OK);
  }

  bool WorkPendingLocked() const override ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_->mu) { return job_running_; }

  void StopWorkLocked() override ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_->mu) {
    if (control_) control_->Cancel();
  }

  // Counted before the client can see the status.
  void OnFinishLocked(const absl::Status& status) override ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_->mu) {
    if (!job_submitted_) return;
    service_->metrics()->Plan(OutcomeLabel(status),
                              std::chrono::duration<double>(std::chrono::steady_clock::now() - job_start_).count());
  }

  // Read and written under state_->mu: gRPC's reactor callbacks take it,
  // and so does every callback from another thread (the job's, the plan's
  // progress).
  v1::PlanHeader header_ ABSL_GUARDED_BY(state_->mu);
  plan::PlanOptions options_ ABSL_GUARDED_BY(state_->mu);
  std::string input_path_ ABSL_GUARDED_BY(state_->mu);
  std::string output_path_ ABSL_GUARDED_BY(state_->mu);

  std::shared_ptr<engine::JobControl> control_ ABSL_GUARDED_BY(state_->mu);
  std::shared_ptr<PlanOutcome> outcome_ ABSL_GUARDED_BY(state_->mu);
  bool job_running_ ABSL_GUARDED_BY(state_->mu) = false;
  bool job_submitted_ ABSL_GUARDED_BY(state_->mu) = false;
  std::chrono::steady_clock::time_point job_start_ ABSL_GUARDED_BY(state_->mu);
  bool result_ready_ ABSL_GUARDED_BY(state_->mu) = false;
};

}  // namespace

grpc::ServerBidiReactor<v1::PlanRequest, v1::PlanResponse>* NewPlanReactor(CompressorService* service,
                                                                             grpc::CallbackServerContext* context) {
  return new PlanReactor(service, context);
}

}  // namespace coremlz::api
