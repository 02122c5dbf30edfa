#include "api/compress_reactor.h"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <mutex>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "api/call_timer.h"
#include "api/convert.h"
#include "api/grpc_status.h"
#include "api/job_call.h"
#include "api/result_store.h"
#include "api/transfer.h"
#include "api/upload_budget.h"
#include "api/validator.h"
#include "common/file_util.h"
#include "engine/target.h"
#include "engine/worker_pool.h"
#include "execute/output_check.h"

namespace coremlz::api {
namespace {

std::string NewJobId() {
  static std::atomic<uint64_t> counter{0};
  return absl::StrCat(absl::ToUnixMillis(absl::Now()), "-", counter.fetch_add(1));
}

// The technique label of a job for metrics: "palettize", "prune+palettize", ...
std::string TechniqueLabel(const engine::CompressionConfig& config) {
  std::vector<std::string> parts;
  for (const auto& pass : config.passes) {
    std::string t = "mixed";
    if (pass.config.global) t = engine::TechniqueName(*pass.config.global);
    else if (!pass.config.op_type_configs.empty() && pass.config.op_type_configs.begin()->second)
      t = engine::TechniqueName(*pass.config.op_type_configs.begin()->second);
    else if (!pass.config.op_name_configs.empty() && pass.config.op_name_configs.begin()->second)
      t = engine::TechniqueName(*pass.config.op_name_configs.begin()->second);
    parts.push_back(t);
  }
  return absl::StrJoin(parts, "+");
}

std::string OutcomeLabel(const absl::Status& s) {
  switch (s.code()) {
    case absl::StatusCode::kOk: return "ok";
    case absl::StatusCode::kCancelled:
    case absl::StatusCode::kDeadlineExceeded: return "cancelled";
    case absl::StatusCode::kResourceExhausted: return "rejected";
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kDataLoss:
    case absl::StatusCode::kNotFound: return "invalid";
    default: return "error";
  }
}

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
  std::mutex mu;
  CompressReactor* reactor = nullptr;  // null once the call is over
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
    state_->reactor = this;
    start_ = std::chrono::steady_clock::now();
    deadline_ = DeadlineOf(context);
    if (const TokenAuth* auth = service_->auth()) {
      grpc::Status s = auth->Check(*context);
      if (!s.ok()) {
        std::lock_guard<std::mutex> lock(state_->mu);
        FinishLocked(s);
        return;
      }
    }
    if (absl::Status admitted = service_->Admit(); !admitted.ok()) {
      std::lock_guard<std::mutex> lock(state_->mu);
      FinishLocked(ToGrpcStatus(admitted));
      return;
    }
    admitted_ = true;
    {
      std::lock_guard<std::mutex> lock(state_->mu);
      called_at_ = last_read_ = absl::Now();
      CheckStallLocked();
    }
    StartRead(&request_);
  }

  void OnReadDone(bool ok) override {
    std::lock_guard<std::mutex> lock(state_->mu);
    if (finished_) return;
    last_read_ = absl::Now();
    if (!ok) {
      // Half-close (or the client went away).
      if (phase_ == Phase::kHeader) {
        FinishLocked({grpc::StatusCode::INVALID_ARGUMENT, "the stream ended without a header"});
      } else if (phase_ == Phase::kUpload) {
        absl::Status s = receiver_->Finish();  // names the incomplete file
        FinishLocked(ToGrpcStatus(s.ok() ? absl::DataLossError("the stream ended before the upload completed") : s));
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
      absl::Status s = receiver_->Add(request_.chunk());
      if (!s.ok()) {
        FinishLocked(ToGrpcStatus(s));
        return;
      }
      service_->metrics()->UploadBytes(request_.chunk().data().size());
      if (absl::Status b = budget_->AfterChunk(); !b.ok()) {
        FinishLocked(ToGrpcStatus(b));
        return;
      }
      MaybeUploadProgressLocked();
      if (receiver_->bytes_received() == receiver_->bytes_declared()) {
        absl::Status done = receiver_->Finish();
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
    std::lock_guard<std::mutex> lock(state_->mu);
    writing_ = false;
    if (!ok) {
      // The client is gone; the call ends (cancellation will follow).
      if (control_) control_->Cancel();
      CloseArtifactLocked();
      outbox_.clear();
      if (!finished_) FinishLocked({grpc::StatusCode::CANCELLED, "the client stopped reading"});
      return;
    }
    PumpLocked();
  }

  void OnCancel() override {
    std::lock_guard<std::mutex> lock(state_->mu);
    cancelled_ = true;
    // The caller has gone: its slot is free for the next call even while a
    // running job winds down (the worker pool's memory budget still counts it).
    ReleaseAdmissionLocked();
    if (control_) control_->Cancel();
    if (validation_control_) validation_control_->Cancel();
    // A job in flight answers through JobDone; otherwise end now.
    if (!job_running_ && !validation_pending_ && !finished_) {
      outbox_.clear();
      CloseArtifactLocked();
      FinishLocked({grpc::StatusCode::CANCELLED, "the call was cancelled"});
    }
  }

  void OnDone() override {
    {
      std::lock_guard<std::mutex> lock(state_->mu);
      state_->reactor = nullptr;
      CloseArtifactLocked();
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
    auto hit = service_->cache()->Lookup(cache_key_, JoinPath(job_dir_->path, "out"));
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
    std::shared_ptr<JobDir> dir = job_dir_;
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
      artifact_files_ = std::move(*files);
      artifact_root_ = root;
      artifact_active_ = !artifact_files_.empty();
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
    auto dir = MakeJobDir(service_->options().work_dir);
    if (!dir.ok()) return dir.status();
    job_dir_ = *dir;
    receiver_ = std::make_unique<FileReceiver>(JoinPath(job_dir_->path, "in"), service_->options().limits);
    if (absl::Status s = receiver_->DeclareAll(header.files()); !s.ok()) return s;
    auto model = receiver_->ModelPath();
    if (!model.ok()) return model.status();
    input_path_ = *model;
    // The output is about the size of the input (never larger but for fp16
    // of an fp16 model's rewrite); room for both is checked up front.
    if (absl::Status s = CheckDiskRoom(job_dir_->path, receiver_->bytes_declared(), receiver_->bytes_declared()); !s.ok()) {
      return s;
    }
    budget_ = std::make_unique<UploadBudget>(service_->pool(), service_->options().limits.max_manifest_bytes, receiver_.get(),
                                             input_path_, IsPackageUpload());
    if (absl::Status s = budget_->AtHeader(); !s.ok()) return s;
    options_.max_manifest_bytes = service_->options().limits.max_manifest_bytes;
    const std::string name = std::filesystem::path(input_path_).filename().string();
    output_path_ = IsPackageUpload() ? JoinPath(job_dir_->path, "out/model.mlpackage") : JoinPath(job_dir_->path, "out/" + name);
    job_id_ = NewJobId();
    v1::CompressResponse r;
    r.mutable_accepted()->set_job_id(job_id_);
    r.mutable_accepted()->set_upload_bytes(receiver_->bytes_declared());
    outbox_.push_back(std::move(r));
    phase_ = Phase::kUpload;
    PumpLocked();
    if (receiver_->bytes_declared() == 0) {
      // Nothing to wait for (all files empty): check and start.
      absl::Status done = receiver_->Finish();
      if (!done.ok()) return done;
      SubmitLocked();
    }
    return absl::OkStatus();
  }

  bool IsPackageUpload() const { return input_path_ == receiver_->dir(); }

  void MaybeUploadProgressLocked() {
    const uint64_t done = receiver_->bytes_received();
    if (done - last_progress_bytes_ < (uint64_t{4} << 20) && done != receiver_->bytes_declared()) return;
    last_progress_bytes_ = done;
    v1::CompressResponse r;
    r.mutable_progress()->set_phase(v1::Progress::UPLOAD);
    r.mutable_progress()->set_bytes_done(done);
    r.mutable_progress()->set_bytes_total(receiver_->bytes_declared());
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
          std::lock_guard<std::mutex> lock(state->mu);
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
    auto estimate = budget_->Estimate();
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
    std::shared_ptr<JobDir> dir = job_dir_;  // keeps the files while the job runs
    job.done = [state, dir](absl::StatusOr<engine::CompressionReport> report) {
      std::lock_guard<std::mutex> lock(state->mu);
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
    std::shared_ptr<JobDir> dir = job_dir_;
    vj.done = [state, dir](absl::StatusOr<v1::ValidationResult> result) {
      std::lock_guard<std::mutex> lock(state->mu);
      if (state->reactor != nullptr) state->reactor->ValidationDoneLocked(std::move(result));
    };
    Validator* validator = service_->validator();
    // The validator may call back synchronously: run it off this lock.
    service_->tasks()->Post([validator, vj = std::move(vj)]() mutable { validator->Validate(std::move(vj)); });
  }

  void CloseArtifactLocked() {
    if (artifact_file_ != nullptr) std::fclose(artifact_file_);
    artifact_file_ = nullptr;
    artifact_active_ = false;
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
    if (artifact_active_) {
      v1::CompressResponse r;
      absl::Status s = NextArtifactMessageLocked(&r);
      if (!s.ok()) {
        CloseArtifactLocked();
        FinishLocked(ToGrpcStatus(s));
        return;
      }
      if (r.msg_case() != v1::CompressResponse::MSG_NOT_SET) {
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

  absl::Status NextArtifactMessageLocked(v1::CompressResponse* r) {
    if (artifact_index_ >= artifact_files_.size()) {
      CloseArtifactLocked();
      return absl::OkStatus();
    }
    const v1::FileInfo& info = artifact_files_[artifact_index_];
    if (artifact_file_ == nullptr && !artifact_header_sent_) {
      r->mutable_artifact_file()->set_file_index(static_cast<uint32_t>(artifact_index_));
      *r->mutable_artifact_file()->mutable_info() = info;
      artifact_header_sent_ = true;
      artifact_offset_ = 0;
      const std::string path = JoinPath(artifact_root_, info.path());
      artifact_file_ = std::fopen(path.c_str(), "rbe");
      if (artifact_file_ == nullptr) return absl::InternalError(absl::StrCat("cannot read the artifact file ", info.path()));
      return absl::OkStatus();
    }
    if (artifact_offset_ >= info.size()) {
      std::fclose(artifact_file_);
      artifact_file_ = nullptr;
      artifact_header_sent_ = false;
      ++artifact_index_;
      return NextArtifactMessageLocked(r);
    }
    const size_t want = static_cast<size_t>(std::min<uint64_t>(kMaxChunkBytes, info.size() - artifact_offset_));
    std::string data(want, '\0');
    if (std::fread(data.data(), 1, want, artifact_file_) != want) {
      return absl::InternalError(absl::StrCat("the artifact file ", info.path(), " is shorter than listed"));
    }
    auto* chunk = r->mutable_artifact_chunk();
    chunk->set_file_index(static_cast<uint32_t>(artifact_index_));
    chunk->set_offset(artifact_offset_);
    chunk->set_data(std::move(data));
    artifact_offset_ += want;
    service_->metrics()->ArtifactBytes(want);
    return absl::OkStatus();
  }

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
                                   " (--idle-timeout-seconds); ", receiver_->bytes_received(), " of ",
                                   receiver_->bytes_declared(), " bytes received")});
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
      std::lock_guard<std::mutex> lock(state->mu);
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
    status = ForCaller(status, job_dir_ ? job_dir_->path : "");
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
  std::shared_ptr<JobDir> job_dir_;
  std::unique_ptr<FileReceiver> receiver_;
  std::unique_ptr<UploadBudget> budget_;
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

  std::vector<v1::FileInfo> artifact_files_;
  std::string artifact_root_;
  bool artifact_active_ = false;
  size_t artifact_index_ = 0;
  bool artifact_header_sent_ = false;
  uint64_t artifact_offset_ = 0;
  std::FILE* artifact_file_ = nullptr;
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
  std::lock_guard<std::mutex> lock(state_->mu);
  if (state_->reactor != nullptr) state_->reactor->QueueProgressLocked(p);
}

}  // namespace

grpc::ServerBidiReactor<v1::CompressRequest, v1::CompressResponse>* NewCompressReactor(
    CompressorService* service, grpc::CallbackServerContext* context) {
  return new CompressReactor(service, context);
}

}  // namespace coremlz::api
