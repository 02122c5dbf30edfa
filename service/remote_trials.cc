#include "service/remote_trials.h"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <functional>
#include <deque>
#include <map>
#include <optional>
#include <set>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "api/channel.h"
#include "api/client_call.h"
#include "api/convert.h"
#include "api/grpc_status.h"
#include "api/transfer.h"
#include "coremlz/v1/worker.grpc.pb.h"
#include "common/file_util.h"
#include "common/status_macros.h"
#include "plan/candidate_build.h"
#include "plan/model_study.h"
#include "service/test_await_workers.h"

namespace coremlz::service {
namespace {

using Clock = std::chrono::steady_clock;

// Numbered work every party takes from - the plan's candidate builds, then
// its trials - and the results by number. Parties may prefer or be limited
// to some items (a worker runs only the trials of candidates it built).
template <typename Result>
class WorkBoard {
 public:
  using Filter = std::function<bool(size_t)>;

  WorkBoard(size_t n, std::function<void()> on_done, const std::function<bool()>& cancelled)
      : results_(n), have_(n, false), remaining_(n), on_done_(std::move(on_done)), cancelled_(cancelled) {
    for (size_t i = 0; i < n; ++i) pending_.push_back(i);
  }

  // The next item `allowed` (null: any) lets this party run, one `preferred`
  // first. `wait`: until one is free (another party may give some back) or
  // none remain; else nullopt when none is free now.
  std::optional<size_t> Take(bool wait, const Filter& allowed = nullptr, const Filter& preferred = nullptr) {
    absl::MutexLock lock(&mu_);
    while (true) {
      if (StoppingLocked()) return std::nullopt;
      std::optional<std::deque<size_t>::iterator> pick;
      for (auto it = pending_.begin(); it != pending_.end(); ++it) {
        if (allowed && !allowed(*it)) continue;
        if (!pick) pick = it;
        if (!preferred || preferred(*it)) {
          pick = it;
          break;
        }
      }
      if (pick) {
        const size_t i = **pick;
        pending_.erase(*pick);
        return i;
      }
      if (!wait) return std::nullopt;
      cv_.WaitWithTimeout(&mu_, absl::Milliseconds(50));  // the cancel hook is polled
    }
  }

  // How many items wait in each group `key` puts them in.
  std::map<int, int> CountPending(const std::function<int(size_t)>& key) {
    absl::MutexLock lock(&mu_);
    std::map<int, int> count;
    for (size_t i : pending_) ++count[key(i)];
    return count;
  }

  void Complete(size_t i, Result r) {
    {
      absl::MutexLock lock(&mu_);
      if (have_[i]) return;
      have_[i] = true;
      results_[i] = std::move(r);
      --remaining_;
      if (remaining_ == 0) cv_.SignalAll();
    }
    if (on_done_) on_done_();
  }

  // A lost party's items, for another party; how many were still to do.
  int PutBack(const std::set<size_t>& items) {
    absl::MutexLock lock(&mu_);
    int n = 0;
    for (size_t i : items) {
      if (have_[i]) continue;
      pending_.push_front(i);
      ++n;
    }
    cv_.SignalAll();
    return n;
  }

  void Fail(const absl::Status& s) {
    absl::MutexLock lock(&mu_);
    if (error_.ok()) error_ = s;
    cv_.SignalAll();
  }

  // Whether the parties should stop: everything done, an error, or cancelled.
  bool Stopping() {
    absl::MutexLock lock(&mu_);
    return StoppingLocked();
  }
  // Whether the work ends without every item done: an error, or cancelled.
  bool Failed() {
    absl::MutexLock lock(&mu_);
    return !error_.ok() || (cancelled_ && cancelled_());
  }

  // The results; with `allow_missing`, items never done stay default.
  absl::StatusOr<std::vector<Result>> Results(bool allow_missing = false) {
    absl::MutexLock lock(&mu_);
    if (!allow_missing) {
      if (cancelled_ && cancelled_()) return absl::CancelledError("the plan was cancelled");
      if (!error_.ok()) return error_;
      if (remaining_ != 0) return absl::InternalError(absl::StrCat(remaining_, " items were never run"));
    }
    return std::move(results_);
  }
  std::vector<bool> Done() {
    absl::MutexLock lock(&mu_);
    return have_;
  }

 private:
  bool StoppingLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return remaining_ == 0 || !error_.ok() || (cancelled_ && cancelled_());
  }

  absl::Mutex mu_;
  absl::CondVar cv_;
  std::deque<size_t> pending_ ABSL_GUARDED_BY(mu_);
  std::vector<Result> results_ ABSL_GUARDED_BY(mu_);
  std::vector<bool> have_ ABSL_GUARDED_BY(mu_);
  size_t remaining_ ABSL_GUARDED_BY(mu_);
  absl::Status error_ ABSL_GUARDED_BY(mu_);
  const std::function<void()> on_done_;
  const std::function<bool()>& cancelled_;
};

// How long a worker with work outstanding may go without answering before
// it is taken for hung: its work then goes back to the board. Derived from
// what the plan's work has taken so far (the slowest single item, anywhere)
// with a floor for the first items, and never more than a third of the time
// left before the call's deadline, so that the rerun still fits.
class Patience {
 public:
  Patience(absl::Duration floor, double factor, absl::Time deadline) : factor_(factor), deadline_(deadline) {
    absl::MutexLock lock(&mu_);
    floor_ = floor;
  }
  void Saw(absl::Duration took) {
    absl::MutexLock lock(&mu_);
    slowest_ = std::max(slowest_, took);
  }
  // A bound known before any item was timed (see FanOut::Build).
  void AtLeast(absl::Duration floor) {
    absl::MutexLock lock(&mu_);
    floor_ = std::max(floor_, floor);
  }
  absl::Duration Limit() {
    absl::MutexLock lock(&mu_);
    absl::Duration limit = std::max(floor_, slowest_ * factor_);
    if (deadline_ != absl::InfiniteFuture()) {
      limit = std::min(limit, std::max(absl::Seconds(1), (deadline_ - absl::Now()) / 3));
    }
    return limit;
  }

 private:
  absl::Duration floor_ ABSL_GUARDED_BY(mu_);
  const double factor_;
  const absl::Time deadline_;
  absl::Mutex mu_;
  absl::Duration slowest_ ABSL_GUARDED_BY(mu_) = absl::ZeroDuration();
};

// One worker stream's liveness: when it last answered, and whether it owes
// anything. The stream's canceller reads it to end a hung worker's call.
class Liveness {
 public:
  void Owe(bool owing) {
    absl::MutexLock lock(&mu_);
    if (owing && !owing_) last_ = absl::Now();
    owing_ = owing;
  }
  void Answered() {
    absl::MutexLock lock(&mu_);
    last_ = absl::Now();
  }
  // Owes something and has said nothing for longer than `limit`.
  bool Hung(absl::Duration limit) {
    absl::MutexLock lock(&mu_);
    if (owing_ && absl::Now() - last_ > limit) hung_ = true;
    return hung_;
  }
  bool hung() {
    absl::MutexLock lock(&mu_);
    return hung_;
  }

 private:
  absl::Mutex mu_;
  bool owing_ ABSL_GUARDED_BY(mu_) = false;
  bool hung_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time last_ ABSL_GUARDED_BY(mu_) = absl::Now();
};

// The worker addresses of a --remote-workers target, resolved now.
std::vector<std::string> Addresses(const std::string& target) {
  std::vector<std::string> out;
  if (std::optional<std::string> name = api::DnsName(target)) {
    std::optional<api::HostPort> hp = api::SplitHostPort(*name);
    if (!hp) return out;
    absl::StatusOr<api::ResolvedAddresses> resolved = api::ResolveHost(hp->host, hp->port);
    if (!resolved.ok()) return out;
    out = resolved->ipv4;
    out.insert(out.end(), resolved->ipv6.begin(), resolved->ipv6.end());
    return out;
  }
  for (absl::string_view a : absl::StrSplit(target, ',', absl::SkipWhitespace())) out.emplace_back(a);
  return out;
}

// Whether a worker's baseline is the front's: the same candidates, samples
// and outputs (then the same options gave the same numbers).
absl::Status SameStudy(const v1::StudyReady& ready, const plan::StudyShape& shape) {
  bool same = ready.candidates_size() == static_cast<int>(shape.candidates.size()) &&
              ready.samples() == shape.samples && ready.outputs_size() == static_cast<int>(shape.outputs.size());
  for (int i = 0; same && i < ready.candidates_size(); ++i) same = ready.candidates(i) == shape.candidates[i];
  for (int i = 0; same && i < ready.outputs_size(); ++i) same = ready.outputs(i) == shape.outputs[i];
  if (same) return absl::OkStatus();
  return absl::FailedPreconditionError("the worker built a different study (another coremlz version?)");
}

// One plan's fan-out. The workers' streams start with the plan (upload and
// baseline beside the front's own), then take candidate builds beside the
// front's threads, then the trials of the candidates each built (the front
// has every candidate - built here or received - and runs any trial).
class FanOut {
 public:
  FanOut(RemoteTrialsOptions options, std::shared_ptr<grpc::ChannelCredentials> credentials,
         api::PlanFanOutRequest request)
      : options_(std::move(options)),
        credentials_(std::move(credentials)),
        request_(std::move(request)),
        build_patience_(absl::Seconds(60), 4, request_.deadline),
        trial_patience_(absl::Seconds(5), 20, request_.deadline) {
    const std::vector<std::string> addresses = Addresses(options_.target);
    for (size_t i = 0; i < addresses.size(); ++i) {
      threads_.emplace_back([this, address = addresses[i], i] { Serve(address, static_cast<int>(i)); });
    }
  }
  ~FanOut() { Close(); }

  // No more trial batches: ends the workers' streams and waits for them.
  void Close() {
    {
      absl::MutexLock lock(&mu_);
      closed_ = true;
    }
    for (std::thread& t : threads_) {
      if (t.joinable()) t.join();
    }
  }

  std::vector<plan::CandidateRun> Build(const std::vector<plan::CandidateJob>& jobs,
                                        const plan::CandidateBuilder& local, const plan::StudyShape& shape) {
    // The study's baseline ran the whole model on every sample, twice, just
    // before: no trial (a part of the model on every sample) should take
    // longer than that, so a worker silent for several times it is hung.
    trial_patience_.AtLeast((absl::Now() - started_) * 4);
    WorkBoard<plan::CandidateRun> board(jobs.size(), nullptr, request_.cancelled);
    {
      absl::MutexLock lock(&mu_);
      shape_ = shape;  // a copy: streams that come late check against it during the trials
      jobs_ = &jobs;
      builds_ = &board;
      if (TestAwaitsWorkers()) {
        mu_.AwaitWithTimeout(absl::Condition(this, &FanOut::WorkersSettledLocked), absl::Seconds(120));
      }
    }
    auto local_loop = [&] {
      while (std::optional<size_t> i = board.Take(true)) {
        const auto start = Clock::now();
        plan::CandidateRun run = local(jobs[*i]);
        build_patience_.Saw(absl::FromChrono(Clock::now() - start));
        board.Complete(*i, std::move(run));
      }
    };
    std::vector<std::thread> locals;
    for (int t = 1; t < request_.local_threads; ++t) locals.emplace_back(local_loop);
    local_loop();
    for (std::thread& t : locals) t.join();
    // Workers may still be receiving a build the board no longer needs
    // (cancelled): wait for them to let go of the board.
    {
      absl::MutexLock lock(&mu_);
      builds_ = nullptr;
      mu_.Await(absl::Condition(this, &FanOut::NoBuildersLocked));
    }
    absl::StatusOr<std::vector<plan::CandidateRun>> runs = board.Results(true);
    std::vector<plan::CandidateRun> out = runs.ok() ? *std::move(runs) : std::vector<plan::CandidateRun>(jobs.size());
    const std::vector<bool> done = board.Done();
    for (size_t i = 0; i < out.size(); ++i) {
      if (!done[i]) out[i].status = absl::CancelledError("the plan was cancelled");
    }
    return out;
  }

  absl::StatusOr<std::vector<plan::TrialResult>> Run(const plan::TrialRunner& local,
                                                     const std::vector<plan::Trial>& trials,
                                                     const std::function<void()>& on_done) {
    api::ServerMetrics* metrics = request_.metrics;
    WorkBoard<plan::TrialResult> board(
        trials.size(),
        [&on_done, metrics] {
          if (metrics != nullptr) metrics->PlanTrials("measured", 1);
          if (on_done) on_done();
        },
        request_.cancelled);
    const plan::ModelStudy* study = dynamic_cast<const plan::ModelStudy*>(&local);
    if (study == nullptr) return absl::InternalError("the plan's trials have no study");
    {
      absl::MutexLock lock(&mu_);
      study_ = study;
      trials_ = &trials;
      trial_board_ = &board;
      ++batch_;
    }
    // The front prefers trials of candidates no worker holds, leaving the
    // workers theirs; it takes the rest once those are done.
    auto local_loop = [&] {
      while (true) {
        // A snapshot: the board's lock is taken after (never inside) mu_.
        const std::set<std::string> held = HeldRemotely();
        const WorkBoard<plan::TrialResult>::Filter unheld = [&](size_t i) {
          return held.count(study->candidates()[trials[i].candidate].name) == 0;
        };
        std::optional<size_t> i = board.Take(true, nullptr, unheld);
        if (!i) break;
        const auto start = Clock::now();
        absl::StatusOr<plan::TrialResult> r = local.Run(trials[*i]);
        trial_patience_.Saw(absl::FromChrono(Clock::now() - start));
        if (r.ok()) {
          board.Complete(*i, *std::move(r));
          continue;
        }
        if (r.status().code() != absl::StatusCode::kCancelled && metrics != nullptr) metrics->PlanTrials("failed", 1);
        board.Fail(r.status());
      }
    };
    std::vector<std::thread> locals;
    if (TestTrialsOnWorkersOnly()) {
      const auto give_up = Clock::now() + std::chrono::seconds(kTestTrialsOnWorkersPatienceSeconds);
      while (!board.Stopping()) {
        if (Clock::now() > give_up) {
          board.Fail(absl::DeadlineExceededError("COREMLZ_TEST_TRIALS_ON_WORKERS: the workers did not run the trials"));
          break;
        }
        absl::SleepFor(absl::Milliseconds(20));
      }
    } else {
      for (int t = 1; t < request_.local_threads; ++t) locals.emplace_back(local_loop);
      local_loop();
    }
    for (std::thread& t : locals) t.join();
    // The streams stay for a later batch (Close ends them); each lets go of
    // this board once it owes nothing, and none may touch it afterwards.
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(this, &FanOut::NoServersLocked));
      trial_board_ = nullptr;
      study_ = nullptr;
      trials_ = nullptr;
    }
    return board.Results();
  }

  static plan::CandidateFanOut Builds(std::shared_ptr<FanOut> fan) {
    return [fan](const std::vector<plan::CandidateJob>& jobs, const plan::CandidateBuilder& local,
                 const plan::StudyShape& shape) { return fan->Build(jobs, local, shape); };
  }

 private:
  std::set<std::string> HeldRemotely() {
    absl::MutexLock lock(&mu_);
    return std::set<std::string>(held_.begin(), held_.end());
  }

  bool PhaseOrClosedLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return closed_ || builds_ != nullptr || trial_board_ != nullptr;
  }
  bool NoBuildersLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return building_ == 0; }
  bool WorkersSettledLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    // Every stream settled, or as many took a build as there are.
    return closed_ || settled_ == threads_.size() || (jobs_ != nullptr && settled_ >= jobs_->size());
  }
  bool NoServersLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return serving_ == 0; }
  // A stream waiting for a trial batch after the one it served last.
  struct NextBatch {
    FanOut* fan;
    int served;
    // Evaluated by Await with mu_ held.
    static bool ReadyOrClosed(NextBatch* n) ABSL_NO_THREAD_SAFETY_ANALYSIS {
      return n->fan->closed_ || (n->fan->trial_board_ != nullptr && n->fan->batch_ > n->served);
    }
  };

  // A finished batch is no reason to stop: the stream waits for the next.
  bool ShouldStop() {
    absl::MutexLock lock(&mu_);
    if (closed_) return true;
    if (trial_board_ != nullptr) return trial_board_->Failed();
    return request_.cancelled && request_.cancelled();
  }
  // The batch is over (a stream building a candidate for it can stop).
  bool BatchDone() {
    absl::MutexLock lock(&mu_);
    return trial_board_ != nullptr && trial_board_->Stopping();
  }

  // Receives one build's answer (CandidateBuilt, then its package's chunks)
  // into `staging` and loads it.
  absl::StatusOr<plan::CandidateRun> ReceiveBuild(
      grpc::ClientReaderWriter<v1::TrialsRequest, v1::TrialsResponse>* stream, const plan::CandidateJob& job,
      const std::string& staging, const std::string& function, Liveness* live) {
    v1::TrialsResponse response;
    if (!stream->Read(&response)) return absl::UnavailableError("the stream ended during a build");
    live->Answered();
    if (!response.has_built() || response.built().candidate().candidate() != job.index) {
      return absl::InternalError("an unexpected answer to a build");
    }
    const v1::CandidateBuilt& built = response.built();
    std::vector<v1::WeightReport> rows(built.weights().begin(), built.weights().end());
    engine::CompressionReport report = api::ReportFrom(rows, built.summary());
    const absl::Status status(static_cast<absl::StatusCode>(built.code()), built.message());
    switch (status.code()) {
      case absl::StatusCode::kOk:
      case absl::StatusCode::kFailedPrecondition:  // the target cannot express it: the same anywhere
      case absl::StatusCode::kInvalidArgument:     // the model's own weights: the same anywhere
      case absl::StatusCode::kUnimplemented:
      case absl::StatusCode::kOutOfRange:
        break;
      default:  // the worker's trouble (cancelled, out of memory or disk, ...): built elsewhere instead
        return absl::UnavailableError(absl::StrCat("the worker could not build ", job.candidate.name, ": ",
                                                   status.ToString()));
    }
    if (!status.ok()) {
      plan::CandidateRun run;
      run.status = status;
      run.report = std::move(report);
      return run;
    }
    // A NeuralNetwork's candidate is one .mlmodel file, sent under its own
    // name (taken now: reading the chunks reuses `response`, `built` with it).
    std::string loaded = staging;
    if (absl::EndsWith(job.package, ".mlmodel")) {
      if (built.files_size() != 1) return absl::InternalError("a build's .mlmodel did not come as one file");
      loaded = JoinPath(staging, built.files(0).path());
    }
    RETURN_IF_ERROR(MakeDirectories(staging));
    api::FileReceiver files(staging, api::TransferLimits{});
    RETURN_IF_ERROR(files.DeclareAll(built.files()));
    while (files.bytes_received() < files.bytes_declared() || !files.Finish().ok()) {
      if (!stream->Read(&response)) return absl::UnavailableError("the stream ended during a build's package");
      live->Answered();
      if (!response.has_chunk()) return absl::InternalError("a build's package was cut short");
      RETURN_IF_ERROR(files.Add(response.chunk()));
    }
    RETURN_IF_ERROR(files.Finish());
    return plan::LoadCandidate(loaded, function, std::move(report));
  }

  // One worker's share: upload and baseline, builds, then batch after batch
  // the trials of the candidates it built, until the plan closes the
  // fan-out or the stream fails (or hangs: what it owes then goes back to
  // the board).
  void Serve(const std::string& address, int number) {
    auto stub = v1::Worker::NewStub(api::OpenChannel(address, credentials_));
    grpc::ClientContext ctx;
    api::PrepareCall(&ctx, request_.deadline, options_.token);
    Liveness live;
    std::atomic<bool> in_trials{false};
    std::atomic<bool> sharing{false};  // a build during the trials: a build's patience
    // A shared build its batch no longer needs is cut short (the stream
    // ends with it, and takes no later batch): not an error to report.
    std::atomic<bool> cut{false};
    api::CallCanceller canceller(
        &ctx,
        [&] {
          if (sharing && BatchDone()) {
            cut = true;
            return true;
          }
          return ShouldStop() ||
                 live.Hung(in_trials && !sharing ? trial_patience_.Limit() : build_patience_.Limit());
        },
        absl::Milliseconds(50));
    auto stream = stub->Trials(&ctx);
    std::set<size_t> outstanding;  // trials sent, not answered
    std::set<std::string> built;   // candidates this worker holds
    WorkBoard<plan::TrialResult>* board = nullptr;
    WorkBoard<plan::CandidateRun>* builds = nullptr;
    std::optional<size_t> building;  // the build in flight
    std::string what = "trials";
    bool settled = false;  // took its first build, or never will
    auto settle = [&] {
      if (settled) return;
      settled = true;
      absl::MutexLock lock(&mu_);
      ++settled_;
    };
    const absl::Status status = [&]() -> absl::Status {
      v1::TrialsRequest header;
      *header.mutable_header() = request_.header;
      header.mutable_header()->set_apply(false);
      if (!stream->Write(header)) return absl::UnavailableError("the stream broke at the header");
      const std::vector<v1::FileInfo> files(request_.header.files().begin(), request_.header.files().end());
      absl::Status sent = api::SendFiles(request_.upload_root, files, 0, [&](v1::FileChunk&& chunk) {
        v1::TrialsRequest r;
        *r.mutable_chunk() = std::move(chunk);
        return stream->Write(r);
      });
      if (!sent.ok()) return sent;
      v1::TrialsResponse response;
      if (!stream->Read(&response)) return absl::UnavailableError("the stream ended before the study was ready");
      if (!response.has_ready()) return absl::InternalError("the worker answered before its study was ready");
      const v1::StudyReady ready = response.ready();
      const std::vector<plan::CandidateJob>* jobs = nullptr;
      {
        absl::MutexLock lock(&mu_);
        mu_.Await(absl::Condition(this, &FanOut::PhaseOrClosedLocked));
        if (closed_) return absl::OkStatus();  // the plan ended before its builds
        if (builds_ != nullptr) {
          if (absl::Status same = SameStudy(ready, *shape_); !same.ok()) return same;
          builds = builds_;
          jobs = jobs_;
          ++building_;
        }
      }
      // Builds, one at a time, until none is left to take.
      what = "builds";
      absl::Status build_status = [&]() -> absl::Status {
        if (builds == nullptr) return absl::OkStatus();
        while (std::optional<size_t> i = builds->Take(true)) {
          settle();
          building = *i;
          const plan::CandidateJob& job = (*jobs)[*i];
          v1::TrialsRequest r;
          r.mutable_build()->set_candidate(job.index);
          r.mutable_build()->set_name(job.candidate.name);
          if (!stream->Write(r)) return absl::UnavailableError("the stream broke sending a build");
          live.Owe(true);
          const auto start = Clock::now();
          absl::StatusOr<plan::CandidateRun> run = ReceiveBuild(
              stream.get(), job, absl::StrCat(job.package, ".worker", number), request_.header.function(), &live);
          live.Owe(false);
          if (!run.ok()) return run.status();
          build_patience_.Saw(absl::FromChrono(Clock::now() - start));
          if (run->status.ok()) {
            built.insert(job.candidate.name);
            absl::MutexLock lock(&mu_);
            held_.insert(job.candidate.name);
          }
          building.reset();
          builds->Complete(*i, *std::move(run));
        }
        return absl::OkStatus();
      }();
      settle();
      if (builds != nullptr) {
        if (!build_status.ok() && building) builds->PutBack({*building});
        absl::MutexLock lock(&mu_);
        --building_;
      }
      if (!build_status.ok()) return build_status;
      what = "trials";
      in_trials = true;
      // Trial batches (a plan re-admitting a pruned candidate asks for a
      // second) until the plan closes the fan-out.
      std::set<std::string> refused;  // candidates this worker could not build
      bool study_checked = builds != nullptr;
      for (int served = 0;;) {
        const plan::ModelStudy* study = nullptr;
        const std::vector<plan::Trial>* trials = nullptr;
        {
          absl::MutexLock lock(&mu_);
          NextBatch next{this, served};
          mu_.Await(absl::Condition(&NextBatch::ReadyOrClosed, &next));
          if (closed_) return absl::OkStatus();  // no more trials (or the plan ended before them)
          if (!study_checked) {
            if (!shape_) return absl::OkStatus();  // no study was built here to compare with
            if (absl::Status same = SameStudy(ready, *shape_); !same.ok()) return same;
            study_checked = true;
          }
          board = trial_board_;
          study = study_;
          trials = trials_;
          served = batch_;
          ++serving_;
        }
        const size_t noise_entries = static_cast<size_t>(study->samples()) * study->output_names().size();
        const WorkBoard<plan::TrialResult>::Filter mine = [&](size_t i) {
          return built.count(study->candidates()[(*trials)[i].candidate].name) > 0;
        };
        // With nothing of its own left, a worker builds the candidate with the
        // most trials still waiting (another party built it) and takes a share
        // of them: a build costs a few trials' time, and the trials are the
        // same bits wherever they run. At least twice the window must wait
        // (one, when the test knob leaves every trial to the workers).
        const int share_at_least = TestTrialsOnWorkersOnly() ? 1 : 2 * std::max(1, options_.window);
        auto share = [&]() -> absl::StatusOr<bool> {
          if (board->Stopping()) return false;  // the batch is over: nothing to share
          const std::map<int, int> waiting = board->CountPending([&](size_t i) { return (*trials)[i].candidate; });
          int best = -1, most = 0;
          for (const auto& [c, n] : waiting) {
            const plan::Candidate& candidate = study->candidates()[c];
            if (!candidate.config || built.count(candidate.name) || refused.count(candidate.name)) continue;
            if (n > most) {
              best = c;
              most = n;
            }
          }
          if (best < 0 || most < share_at_least) return false;
          const std::string name = study->candidates()[best].name;
          // The worker numbers candidates as the request listed them, before
          // the study dropped what the target cannot express.
          int index = -1;
          {
            absl::MutexLock lock(&mu_);
            for (size_t k = 0; shape_ && k < shape_->candidates.size(); ++k) {
              if (shape_->candidates[k] == name) index = static_cast<int>(k);
            }
          }
          if (index < 0) return false;
          v1::TrialsRequest r;
          r.mutable_build()->set_candidate(index);
          r.mutable_build()->set_name(name);
          r.mutable_build()->set_keep_only(true);
          sharing = true;
          what = "shared build";
          live.Owe(true);
          if (!stream->Write(r)) return absl::UnavailableError("the stream broke sending a build");
          v1::TrialsResponse answer;
          if (!stream->Read(&answer)) return absl::UnavailableError("the stream ended during a build");
          live.Answered();
          live.Owe(false);
          sharing = false;
          what = "trials";
          if (!answer.has_built() || answer.built().candidate().candidate() != index) {
            return absl::InternalError("an unexpected answer to a build");
          }
          if (answer.built().code() != 0) {
            refused.insert(name);
            return false;
          }
          built.insert(name);
          {
            absl::MutexLock lock(&mu_);
            held_.insert(name);
          }
          if (request_.metrics != nullptr) request_.metrics->PlanSharedBuild();
          return true;
        };
        std::map<size_t, Clock::time_point> sent_at;
        while (true) {
          while (outstanding.size() < static_cast<size_t>(std::max(1, options_.window))) {
            std::optional<size_t> i = board->Take(false, mine);
            if (!i && outstanding.empty()) {
              absl::StatusOr<bool> shared = share();
              if (!shared.ok()) return shared.status();
              if (*shared) continue;
              i = board->Take(true, mine);  // wait for one of its own (put back by a lost party) or the end
            }
            if (!i) break;
            const plan::Trial& t = (*trials)[*i];
            v1::TrialsRequest r;
            r.mutable_trial()->set_weight(t.weight);
            r.mutable_trial()->set_candidate(t.candidate);
            r.mutable_trial()->set_weight_name(study->weights()[t.weight].name);
            r.mutable_trial()->set_candidate_name(study->candidates()[t.candidate].name);
            outstanding.insert(*i);
            sent_at[*i] = Clock::now();
            live.Owe(true);
            if (!stream->Write(r)) return absl::UnavailableError("the stream broke sending a trial");
          }
          if (outstanding.empty()) break;  // this batch is done
          if (!stream->Read(&response)) return absl::UnavailableError("the stream ended with trials outstanding");
          live.Answered();
          if (!response.has_done()) return absl::InternalError("an unexpected message among the trials' results");
          const v1::TrialDone& d = response.done();
          size_t index = trials->size();
          for (size_t o : outstanding) {
            if ((*trials)[o].weight == d.trial().weight() && (*trials)[o].candidate == d.trial().candidate()) index = o;
          }
          if (index == trials->size() || static_cast<size_t>(d.noise_size()) != noise_entries) {
            return absl::InternalError("a result for no trial sent, or of the wrong size");
          }
          plan::TrialResult result;
          result.bytes = d.bytes();
          result.noise.assign(d.noise().begin(), d.noise().end());
          outstanding.erase(index);
          if (outstanding.empty()) live.Owe(false);
          // Answers come in order per worker thread: the time since it was sent
          // bounds one trial's, generously.
          trial_patience_.Saw(absl::FromChrono(Clock::now() - sent_at[index]) / options_.window);
          sent_at.erase(index);
          board->Complete(index, std::move(result));
        }
        absl::MutexLock lock(&mu_);
        board = nullptr;
        --serving_;
      }
    }();
    settle();
    {
      absl::MutexLock lock(&mu_);
      for (const std::string& c : built) {
        if (auto it = held_.find(c); it != held_.end()) held_.erase(it);
      }
    }
    const bool hung = live.hung();
    if (board != nullptr) {  // stopped during a batch: what it owed goes back, then it lets go
      if (!outstanding.empty()) {
        const int n = board->PutBack(outstanding);
        if (request_.metrics != nullptr) request_.metrics->PlanTrials("rerun", n);
      }
      absl::MutexLock lock(&mu_);
      --serving_;
    }
    stream->WritesDone();
    if (!status.ok() || ShouldStop() || hung) ctx.TryCancel();
    grpc::Status finished = stream->Finish();
    if (hung && !ShouldStop()) {
      std::fprintf(stderr,
                   "coremlzd: worker %s did not answer its plan %s within %.1f s; what it owed goes to the others\n",
                   address.c_str(), what.c_str(),
                   absl::ToDoubleSeconds(what == "trials" ? trial_patience_.Limit() : build_patience_.Limit()));
    } else if (!status.ok() && !ShouldStop() && !cut) {
      std::fprintf(stderr, "coremlzd: plan %s on worker %s stopped (%s%s%s); its work goes to the others\n",
                   what.c_str(), address.c_str(), std::string(status.message()).c_str(), finished.ok() ? "" : ": ",
                   finished.error_message().c_str());
    }
  }

  const RemoteTrialsOptions options_;
  const std::shared_ptr<grpc::ChannelCredentials> credentials_;
  const api::PlanFanOutRequest request_;
  const absl::Time started_ = absl::Now();
  Patience build_patience_;
  Patience trial_patience_;
  absl::Mutex mu_;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  std::optional<plan::StudyShape> shape_ ABSL_GUARDED_BY(mu_);
  const std::vector<plan::CandidateJob>* jobs_ ABSL_GUARDED_BY(mu_) = nullptr;
  WorkBoard<plan::CandidateRun>* builds_ ABSL_GUARDED_BY(mu_) = nullptr;
  int building_ ABSL_GUARDED_BY(mu_) = 0;  // streams holding builds_
  size_t settled_ ABSL_GUARDED_BY(mu_) = 0;  // streams past their first build (TestAwaitsWorkers)
  std::multiset<std::string> held_ ABSL_GUARDED_BY(mu_);  // candidates live workers built, once per worker
  WorkBoard<plan::TrialResult>* trial_board_ ABSL_GUARDED_BY(mu_) = nullptr;
  const plan::ModelStudy* study_ ABSL_GUARDED_BY(mu_) = nullptr;
  const std::vector<plan::Trial>* trials_ ABSL_GUARDED_BY(mu_) = nullptr;
  int batch_ ABSL_GUARDED_BY(mu_) = 0;    // trial batches begun (Run calls)
  int serving_ ABSL_GUARDED_BY(mu_) = 0;  // streams attached to the current batch's board
  std::vector<std::thread> threads_;
};

}  // namespace

api::PlanFanOutFactory MakeRemoteTrialsFanOut(const RemoteTrialsOptions& options) {
  return [options](const api::PlanFanOutRequest& request) -> api::PlanFanOut {
    absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> creds = api::ChannelCredentials(options.tls);
    if (!creds.ok()) return {};  // checked when the pool was made; the plan then runs locally
    auto fan = std::make_shared<FanOut>(options, *creds, request);
    api::PlanFanOut out;
    out.builds = FanOut::Builds(fan);
    out.trials = [fan](const plan::TrialRunner& local, const std::vector<plan::Trial>& trials,
                       const std::function<void()>& on_done) { return fan->Run(local, trials, on_done); };
    out.finished = [fan] { fan->Close(); };
    return out;
  };
}

}  // namespace coremlz::service
