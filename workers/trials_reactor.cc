#include "workers/trials_reactor.h"

#include <algorithm>
#include <deque>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "api/convert.h"
#include "api/grpc_status.h"
#include "api/transfer.h"
#include "api/job_call.h"
#include "api/upload_session.h"
#include "common/file_util.h"
#include "engine/worker_pool.h"
#include "plan/candidate.h"
#include "plan/planner.h"
#include "workers/test_hang.h"

namespace coremlz::workers {
namespace {

class TrialsReactor;

struct CallState {
  absl::Mutex mu;
  TrialsReactor* reactor ABSL_GUARDED_BY(mu) = nullptr;  // null once the call is over
};

// A build or a trial, as the front asked for it.
struct WorkItem {
  bool build = false;
  v1::CandidateRef candidate;  // build
  v1::TrialRef trial;          // trial
};

// Work received and not yet taken, shared by the reactor and the job's
// threads (which outlive neither, but may outlive the reactor).
class TrialQueue {
 public:
  void Push(WorkItem t) {
    absl::MutexLock lock(&mu_);
    trials_.push_back(t);
  }
  // No more trials will come.
  void Close() {
    absl::MutexLock lock(&mu_);
    closed_ = true;
  }
  void Cancel() {
    absl::MutexLock lock(&mu_);
    cancelled_ = true;
  }
  // The next trial; nullopt once closed and empty, or cancelled.
  std::optional<WorkItem> Pop() {
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(this, &TrialQueue::ReadyLocked));
    if (cancelled_ || trials_.empty()) return std::nullopt;
    WorkItem t = trials_.front();
    trials_.pop_front();
    return t;
  }

 private:
  bool ReadyLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return cancelled_ || closed_ || !trials_.empty(); }

  absl::Mutex mu_;
  std::deque<WorkItem> trials_ ABSL_GUARDED_BY(mu_);
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
};

class TrialsReactor final : public grpc::ServerBidiReactor<v1::TrialsRequest, v1::TrialsResponse> {
 public:
  TrialsReactor(api::CompressorService* service, grpc::CallbackServerContext* context)
      : service_(service), state_(std::make_shared<CallState>()), queue_(std::make_shared<TrialQueue>()) {
    {
      absl::MutexLock lock(&state_->mu);
      state_->reactor = this;
    }
    deadline_ = api::DeadlineOf(context);
    if (grpc::Status admitted = service_->AdmitCall(*context); !admitted.ok()) {
      absl::MutexLock lock(&state_->mu);
      FinishLocked(admitted);
      return;
    }
    admitted_ = true;
    StartRead(&request_);
  }

  void OnReadDone(bool ok) override {
    absl::MutexLock lock(&state_->mu);
    if (finished_) return;
    if (!ok) {
      if (phase_ == Phase::kHeader) {
        FinishLocked({grpc::StatusCode::INVALID_ARGUMENT, "the stream ended without a header"});
      } else if (phase_ == Phase::kUpload) {
        FinishLocked(api::ToGrpcStatus(upload_->EndedEarly()));
      } else {
        queue_->Close();  // the front wants no more trials
        PumpLocked();
      }
      return;
    }
    if (phase_ == Phase::kHeader) {
      if (!request_.has_header()) {
        FinishLocked({grpc::StatusCode::INVALID_ARGUMENT, "the first message must be a header"});
        return;
      }
      if (absl::Status s = OnHeaderLocked(request_.header()); !s.ok()) {
        FinishLocked(api::ToGrpcStatus(s));
        return;
      }
    } else if (phase_ == Phase::kUpload) {
      if (!request_.has_chunk()) {
        FinishLocked({grpc::StatusCode::INVALID_ARGUMENT, "only file chunks may follow the header until the model is complete"});
        return;
      }
      if (absl::Status s = upload_->Add(request_.chunk()); !s.ok()) {
        FinishLocked(api::ToGrpcStatus(s));
        return;
      }
      if (absl::Status b = upload_->CheckMemory(); !b.ok()) {
        FinishLocked(api::ToGrpcStatus(b));
        return;
      }
      if (upload_->complete()) {
        if (absl::Status done = upload_->Finish(); !done.ok()) {
          FinishLocked(api::ToGrpcStatus(done));
          return;
        }
        SubmitLocked();
      }
    } else {
      WorkItem item;
      if (request_.has_trial()) {
        item.trial = request_.trial();
      } else if (request_.has_build()) {
        item.build = true;
        item.candidate = request_.build();
      } else {
        FinishLocked({grpc::StatusCode::INVALID_ARGUMENT, "only builds and trials may follow the model"});
        return;
      }
      queue_->Push(std::move(item));
    }
    if (finished_) return;
    request_.Clear();
    StartRead(&request_);
  }

  void OnWriteDone(bool ok) override {
    absl::MutexLock lock(&state_->mu);
    writing_ = false;
    if (!ok) {
      Stop();
      if (!finished_) FinishLocked({grpc::StatusCode::CANCELLED, "the front stopped reading"});
      return;
    }
    PumpLocked();
  }

  void OnCancel() override {
    absl::MutexLock lock(&state_->mu);
    ReleaseAdmissionLocked();
    Stop();
    if (!job_running_ && !finished_) FinishLocked({grpc::StatusCode::CANCELLED, "the call was cancelled"});
  }

  void OnDone() override {
    {
      absl::MutexLock lock(&state_->mu);
      state_->reactor = nullptr;
    }
    ReleaseAdmissionLocked();
    delete this;
  }

  void QueueLocked(v1::TrialsResponse r) {
    if (finished_) return;
    outbox_.push_back(std::move(r));
    PumpLocked();
  }

  void JobDoneLocked(const absl::Status& status) {
    job_running_ = false;
    if (finished_) return;
    if (!status.ok()) {
      outbox_.clear();
      FinishLocked(api::ToGrpcStatus(status));
      return;
    }
    job_done_ = true;
    PumpLocked();
  }

 private:
  enum class Phase { kHeader, kUpload, kTrials };

  absl::Status OnHeaderLocked(const v1::PlanHeader& header) {
    if (header.samples() < 0 || header.samples() > 1000) {
      return absl::InvalidArgumentError(absl::StrCat("samples must be 1..1000 (0: 4), not ", header.samples()));
    }
    if (header.has_weight_threshold() && header.weight_threshold() < 0) {
      return absl::InvalidArgumentError("weight_threshold must be >= 0");
    }
    // The options exactly as the front's Plan call makes them.
    options_.weight_threshold = header.has_weight_threshold() ? header.weight_threshold() : 2048;
    options_.study.samples = header.samples() == 0 ? 4 : header.samples();
    options_.study.seed = header.seed();
    options_.study.function = header.function();
    options_.study.threads = std::max(1, service_->pool()->threads());
    if (!header.candidates().empty()) {
      auto candidates = plan::ParseCandidates(header.candidates(), options_.weight_threshold);
      if (!candidates.ok()) return candidates.status();
      options_.candidates = *std::move(candidates);
    }
    upload_ = std::make_unique<api::UploadSession>(service_->options().limits);
    api::JobUploadOptions upload;
    upload.work_dir = service_->options().work_dir;
    upload.pool = service_->pool();
    if (absl::Status s_ = upload_->StartJob(upload, header.files()); !s_.ok()) return s_;
    phase_ = Phase::kUpload;
    if (upload_->bytes_declared() == 0) {
      if (absl::Status s_ = upload_->Finish(); !s_.ok()) return s_;
      SubmitLocked();
    }
    return absl::OkStatus();
  }

  void SubmitLocked() {
    phase_ = Phase::kTrials;
    control_ = std::make_shared<engine::JobControl>();
    control_->SetDeadline(deadline_);
    auto estimate = upload_->MemoryEstimate();
    if (!estimate.ok()) {
      FinishLocked(api::ToGrpcStatus(estimate.status()));
      return;
    }
    engine::CompressJob job;
    job.input_path = upload_->model_path();
    const uint64_t candidates = options_.candidates.empty() ? 8 : options_.candidates.size();
    job.memory_estimate = *estimate + upload_->bytes_declared() * 2 * candidates;
    job.deadline = deadline_;
    job.control = control_;
    job.threads = options_.study.threads;  // its study's threads are not the pool's to lend
    std::shared_ptr<CallState> state = state_;
    std::shared_ptr<TrialQueue> queue = queue_;
    job.task = [options = options_, state, queue, model = upload_->model_path(),
                work = JoinPath(upload_->job_dir_path(), "out")](engine::JobControl* control) mutable -> absl::Status {
      options.study.cancelled = [control] { return control->Cancelled(); };
      if (absl::Status made = MakeDirectories(work); !made.ok()) return made;
      absl::StatusOr<std::unique_ptr<plan::CandidateTrials>> study = plan::TrialsForPlan(model, options, work);
      if (!study.ok()) return study.status();
      plan::CandidateTrials& s = **study;
      v1::TrialsResponse ready;
      for (const plan::Candidate& c : s.candidates()) ready.mutable_ready()->add_candidates(c.name);
      ready.mutable_ready()->set_samples(s.baseline().samples());
      for (const std::string& o : s.baseline().output_names()) ready.mutable_ready()->add_outputs(o);
      Send(state, std::move(ready));
      absl::Mutex error_mu;
      absl::Status error;
      auto fail = [&](absl::Status e) {
        absl::MutexLock lock(&error_mu);
        if (error.ok()) error = std::move(e);
        queue->Cancel();
      };
      // A build's answer and its package's chunks go out together.
      absl::Mutex send_mu;
      const bool hang = TestHangsTrials();
      auto work_loop = [&] {
        while (std::optional<WorkItem> item = queue->Pop()) {
          if (control->Cancelled()) return;
          if (item->build) {
            const int index = item->candidate.candidate();
            if (index < 0 || index >= static_cast<int>(s.candidates().size()) ||
                s.candidates()[index].name != item->candidate.name()) {
              return fail(absl::InvalidArgumentError(absl::StrCat("no candidate ", index, " named \"",
                                                                  item->candidate.name(), "\" in this study")));
            }
            absl::StatusOr<plan::CandidateTrials::Built> built = s.Build(index);
            if (!built.ok()) return fail(built.status());
            if (control->Cancelled()) return;
            v1::TrialsResponse r;
            v1::CandidateBuilt* b = r.mutable_built();
            *b->mutable_candidate() = item->candidate;
            b->set_code(static_cast<int>(built->status.code()));
            b->set_message(std::string(built->status.message()));
            for (const engine::WeightReport& w : built->report.weights) *b->add_weights() = api::ToProto(w);
            *b->mutable_summary() = api::SummaryOf(built->report);
            std::string root;
            std::vector<v1::FileInfo> files;
            if (built->status.ok() && !item->candidate.keep_only()) {
              absl::StatusOr<std::vector<v1::FileInfo>> described = api::DescribeModelFiles(built->package, &root);
              if (!described.ok()) return fail(described.status());
              files = *std::move(described);
              for (const v1::FileInfo& f : files) *b->add_files() = f;
            }
            absl::MutexLock lock(&send_mu);
            Send(state, std::move(r));
            absl::Status sent = api::SendFiles(root, files, 0, [&](v1::FileChunk&& chunk) {
              v1::TrialsResponse c;
              *c.mutable_chunk() = std::move(chunk);
              Send(state, std::move(c));
              return !control->Cancelled();
            });
            if (!sent.ok()) return fail(sent);
            continue;
          }
          if (hang) {
            // Test only: accept the trial and never answer, like a hung process.
            while (!control->Cancelled()) absl::SleepFor(absl::Milliseconds(20));
            return;
          }
          const v1::TrialRef& t = item->trial;
          absl::StatusOr<plan::TrialResult> r = s.Run(t.weight_name(), t.candidate_name());
          if (!r.ok()) return fail(r.status());
          v1::TrialsResponse done;
          v1::TrialDone* d = done.mutable_done();
          *d->mutable_trial() = t;
          d->set_bytes(r->bytes);
          d->mutable_noise()->Add(r->noise.begin(), r->noise.end());
          absl::MutexLock lock(&send_mu);
          Send(state, std::move(done));
        }
      };
      std::vector<std::thread> threads;
      for (int i = 1; i < options.study.threads; ++i) threads.emplace_back(work_loop);
      work_loop();
      for (std::thread& t : threads) t.join();
      if (control->Cancelled()) return control->StopStatus();
      absl::MutexLock lock(&error_mu);
      return error;
    };
    std::shared_ptr<api::JobDir> dir = upload_->job_dir();
    job.done = [state, dir](absl::StatusOr<engine::CompressionReport> report) {
      absl::MutexLock lock(&state->mu);
      if (state->reactor != nullptr) state->reactor->JobDoneLocked(report.status());
    };
    job_running_ = true;
    if (absl::Status s = service_->pool()->Submit(std::move(job)); !s.ok()) {
      job_running_ = false;
      FinishLocked(api::ToGrpcStatus(s));
    }
  }

  static void Send(const std::shared_ptr<CallState>& state, v1::TrialsResponse r) {
    absl::MutexLock lock(&state->mu);
    if (state->reactor != nullptr) state->reactor->QueueLocked(std::move(r));
  }

  void PumpLocked() {
    if (writing_ || finished_) return;
    if (!outbox_.empty()) {
      current_ = std::move(outbox_.front());
      outbox_.pop_front();
      writing_ = true;
      StartWrite(&current_);
      return;
    }
    if (job_done_) FinishLocked(grpc::Status::OK);
  }

  void Stop() {
    if (control_) control_->Cancel();
    queue_->Cancel();
  }

  void FinishLocked(grpc::Status status) {
    if (finished_) return;
    finished_ = true;
    ReleaseAdmissionLocked();
    Stop();
    Finish(api::ForCaller(status, upload_ ? upload_->job_dir_path() : ""));
  }

  void ReleaseAdmissionLocked() {
    if (admitted_ && !released_) service_->Release();
    released_ = true;
  }

  api::CompressorService* service_;
  std::shared_ptr<CallState> state_;
  std::shared_ptr<TrialQueue> queue_;
  absl::Time deadline_;
  bool admitted_ = false, released_ = false;
  v1::TrialsRequest request_;
  plan::PlanOptions options_;
  Phase phase_ = Phase::kHeader;
  std::unique_ptr<api::UploadSession> upload_;
  std::shared_ptr<engine::JobControl> control_;
  bool job_running_ = false, job_done_ = false;
  std::deque<v1::TrialsResponse> outbox_;
  v1::TrialsResponse current_;
  bool writing_ = false, finished_ = false;
};

}  // namespace

grpc::ServerBidiReactor<v1::TrialsRequest, v1::TrialsResponse>* NewTrialsReactor(api::CompressorService* service,
                                                                                  grpc::CallbackServerContext* context) {
  return new TrialsReactor(service, context);
}

}  // namespace coremlz::workers
