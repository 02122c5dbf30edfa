#include "service/remote_trials.h"

#include <cstdio>
#include <deque>
#include <map>
#include <optional>
#include <set>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "api/channel.h"
#include "api/client_call.h"
#include "api/grpc_status.h"
#include "api/transfer.h"
#include "coremlz/v1/worker.grpc.pb.h"
#include "plan/model_study.h"

namespace coremlz::service {
namespace {

// The plan's trials: a queue every party takes from, and the results by
// trial index.
class TrialBoard {
 public:
  TrialBoard(size_t n, const std::function<void()>& on_done, const std::function<bool()>& cancelled,
             api::ServerMetrics* metrics)
      : results_(n), have_(n, false), remaining_(n), on_done_(on_done), cancelled_(cancelled), metrics_(metrics) {
    for (size_t i = 0; i < n; ++i) pending_.push_back(i);
  }

  // The next trial to run. `wait`: until one is free (another party may
  // give some back) or none remain; else nullopt when none is free now.
  std::optional<size_t> Take(bool wait) {
    absl::MutexLock lock(&mu_);
    while (true) {
      if (StoppingLocked()) return std::nullopt;
      if (!pending_.empty()) {
        const size_t i = pending_.front();
        pending_.pop_front();
        return i;
      }
      if (!wait) return std::nullopt;
      cv_.WaitWithTimeout(&mu_, absl::Milliseconds(50));  // the cancel hook is polled
    }
  }

  void Complete(size_t i, plan::TrialResult r) {
    {
      absl::MutexLock lock(&mu_);
      if (have_[i]) return;
      have_[i] = true;
      results_[i] = std::move(r);
      --remaining_;
      if (remaining_ == 0) cv_.SignalAll();
    }
    if (metrics_ != nullptr) metrics_->PlanTrials("measured", 1);
    if (on_done_) on_done_();
  }

  // A lost worker's trials, for another party.
  void PutBack(const std::set<size_t>& trials) {
    absl::MutexLock lock(&mu_);
    int n = 0;
    for (size_t i : trials) {
      if (have_[i]) continue;
      pending_.push_front(i);
      ++n;
    }
    if (metrics_ != nullptr) metrics_->PlanTrials("rerun", n);
    cv_.SignalAll();
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

  absl::StatusOr<std::vector<plan::TrialResult>> Results() {
    absl::MutexLock lock(&mu_);
    if (cancelled_ && cancelled_()) return absl::CancelledError("the plan was cancelled");
    if (!error_.ok()) return error_;
    if (remaining_ != 0) return absl::InternalError(absl::StrCat(remaining_, " trials were never run"));
    return std::move(results_);
  }

 private:
  bool StoppingLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return remaining_ == 0 || !error_.ok() || (cancelled_ && cancelled_());
  }

  absl::Mutex mu_;
  absl::CondVar cv_;
  std::deque<size_t> pending_ ABSL_GUARDED_BY(mu_);
  std::vector<plan::TrialResult> results_ ABSL_GUARDED_BY(mu_);
  std::vector<bool> have_ ABSL_GUARDED_BY(mu_);
  size_t remaining_ ABSL_GUARDED_BY(mu_);
  absl::Status error_ ABSL_GUARDED_BY(mu_);
  const std::function<void()>& on_done_;
  const std::function<bool()>& cancelled_;
  api::ServerMetrics* metrics_;
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

// Whether a worker's study is the front's: the same candidates, weights,
// samples and outputs (then the same options gave the same numbers).
absl::Status SameStudy(const v1::StudyReady& ready, const plan::ModelStudy& study) {
  bool same = ready.candidates_size() == static_cast<int>(study.candidates().size()) &&
              ready.weights_size() == static_cast<int>(study.weights().size()) &&
              ready.samples() == study.samples() &&
              ready.outputs_size() == static_cast<int>(study.output_names().size());
  for (int i = 0; same && i < ready.candidates_size(); ++i) same = ready.candidates(i) == study.candidates()[i].name;
  for (int i = 0; same && i < ready.weights_size(); ++i) same = ready.weights(i) == study.weights()[i].name;
  for (int i = 0; same && i < ready.outputs_size(); ++i) same = ready.outputs(i) == study.output_names()[i];
  if (same) return absl::OkStatus();
  return absl::FailedPreconditionError("the worker built a different study (another coremlz version?)");
}

// One plan's fan-out. The workers' streams start with the plan (upload and
// study beside the front's own study), then wait for the trials; Run()
// hands them the board.
class FanOut {
 public:
  FanOut(RemoteTrialsOptions options, std::shared_ptr<grpc::ChannelCredentials> credentials,
         api::PlanFanOutRequest request)
      : options_(std::move(options)), credentials_(std::move(credentials)), request_(std::move(request)) {
    for (const std::string& address : Addresses(options_.target)) {
      threads_.emplace_back([this, address] { Serve(address); });
    }
  }
  ~FanOut() {
    {
      absl::MutexLock lock(&mu_);
      closed_ = true;
    }
    for (std::thread& t : threads_) {
      if (t.joinable()) t.join();
    }
  }

  absl::StatusOr<std::vector<plan::TrialResult>> Run(const plan::TrialRunner& local,
                                                     const std::vector<plan::Trial>& trials,
                                                     const std::function<void()>& on_done) {
    TrialBoard board(trials.size(), on_done, request_.cancelled, request_.metrics);
    std::map<std::pair<int, int>, size_t> index_of;
    for (size_t i = 0; i < trials.size(); ++i) index_of[{trials[i].weight, trials[i].candidate}] = i;
    {
      absl::MutexLock lock(&mu_);
      // Remote workers need the front's study to check theirs against.
      study_ = dynamic_cast<const plan::ModelStudy*>(&local);
      trials_ = &trials;
      index_of_ = &index_of;
      board_ = &board;
    }
    auto local_loop = [&] {
      while (std::optional<size_t> i = board.Take(true)) {
        absl::StatusOr<plan::TrialResult> r = local.Run(trials[*i]);
        if (r.ok()) {
          board.Complete(*i, *std::move(r));
          continue;
        }
        if (r.status().code() != absl::StatusCode::kCancelled && request_.metrics != nullptr) {
          request_.metrics->PlanTrials("failed", 1);
        }
        board.Fail(r.status());
      }
    };
    std::vector<std::thread> locals;
    for (int t = 1; t < request_.local_threads; ++t) locals.emplace_back(local_loop);
    local_loop();
    for (std::thread& t : locals) t.join();
    // The streams end once the board stops; none may touch it afterwards.
    for (std::thread& t : threads_) {
      if (t.joinable()) t.join();
    }
    {
      absl::MutexLock lock(&mu_);
      board_ = nullptr;
      closed_ = true;
    }
    return board.Results();
  }

 private:
  bool TrialsOrClosedLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return closed_ || board_ != nullptr; }

  bool ShouldStop() {
    absl::MutexLock lock(&mu_);
    if (closed_) return true;
    if (board_ != nullptr) return board_->Stopping();
    return request_.cancelled && request_.cancelled();
  }

  // One worker's share: upload and study, then trials until none remain or
  // the stream fails (its outstanding trials then go back to the board).
  void Serve(const std::string& address) {
    auto stub = v1::Worker::NewStub(api::OpenChannel(address, credentials_));
    grpc::ClientContext ctx;
    api::PrepareCall(&ctx, request_.deadline, options_.token);
    api::CallCanceller canceller(&ctx, [this] { return ShouldStop(); }, absl::Milliseconds(50));
    auto stream = stub->Trials(&ctx);
    std::set<size_t> outstanding;
    TrialBoard* board = nullptr;
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
      const plan::ModelStudy* study = nullptr;
      const std::vector<plan::Trial>* trials = nullptr;
      const std::map<std::pair<int, int>, size_t>* index_of = nullptr;
      {
        absl::MutexLock lock(&mu_);
        mu_.Await(absl::Condition(this, &FanOut::TrialsOrClosedLocked));
        if (board_ == nullptr) return absl::OkStatus();  // the plan ended before its trials
        board = board_;
        study = study_;
        trials = trials_;
        index_of = index_of_;
      }
      if (study == nullptr) return absl::FailedPreconditionError("the front's trials have no study to compare with");
      if (absl::Status same = SameStudy(response.ready(), *study); !same.ok()) return same;
      const size_t noise_entries = static_cast<size_t>(study->samples()) * study->output_names().size();
      while (true) {
        while (outstanding.size() < static_cast<size_t>(std::max(1, options_.window))) {
          std::optional<size_t> i = board->Take(outstanding.empty());
          if (!i) break;
          v1::TrialsRequest r;
          r.mutable_trial()->set_weight((*trials)[*i].weight);
          r.mutable_trial()->set_candidate((*trials)[*i].candidate);
          outstanding.insert(*i);
          if (!stream->Write(r)) return absl::UnavailableError("the stream broke sending a trial");
        }
        if (outstanding.empty()) return absl::OkStatus();  // nothing left to run
        if (!stream->Read(&response)) return absl::UnavailableError("the stream ended with trials outstanding");
        if (!response.has_done()) return absl::InternalError("an unexpected message among the trials' results");
        const v1::TrialDone& d = response.done();
        auto it = index_of->find({d.trial().weight(), d.trial().candidate()});
        if (it == index_of->end() || !outstanding.count(it->second) ||
            static_cast<size_t>(d.noise_size()) != noise_entries) {
          return absl::InternalError("a result for no trial sent, or of the wrong size");
        }
        plan::TrialResult result;
        result.bytes = d.bytes();
        result.noise.assign(d.noise().begin(), d.noise().end());
        outstanding.erase(it->second);
        board->Complete(it->second, std::move(result));
      }
    }();
    if (board != nullptr && !outstanding.empty()) board->PutBack(outstanding);
    stream->WritesDone();
    if (!status.ok() || ShouldStop()) ctx.TryCancel();
    grpc::Status finished = stream->Finish();
    if (!status.ok() && !ShouldStop()) {
      std::fprintf(stderr, "coremlzd: plan trials on worker %s stopped (%s%s%s); its trials go to the others\n",
                   address.c_str(), std::string(status.message()).c_str(), finished.ok() ? "" : ": ",
                   finished.error_message().c_str());
    }
  }

  const RemoteTrialsOptions options_;
  const std::shared_ptr<grpc::ChannelCredentials> credentials_;
  const api::PlanFanOutRequest request_;
  absl::Mutex mu_;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  TrialBoard* board_ ABSL_GUARDED_BY(mu_) = nullptr;
  const plan::ModelStudy* study_ ABSL_GUARDED_BY(mu_) = nullptr;
  const std::vector<plan::Trial>* trials_ ABSL_GUARDED_BY(mu_) = nullptr;
  const std::map<std::pair<int, int>, size_t>* index_of_ ABSL_GUARDED_BY(mu_) = nullptr;
  std::vector<std::thread> threads_;
};

}  // namespace

api::PlanFanOutFactory MakeRemoteTrialsFanOut(const RemoteTrialsOptions& options) {
  return [options](const api::PlanFanOutRequest& request) -> plan::TrialFanOut {
    absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> creds = api::ChannelCredentials(options.tls);
    if (!creds.ok()) return nullptr;  // checked when the pool was made; the trials then run locally
    auto fan = std::make_shared<FanOut>(options, *creds, request);
    return [fan](const plan::TrialRunner& local, const std::vector<plan::Trial>& trials,
                 const std::function<void()>& on_done) { return fan->Run(local, trials, on_done); };
  };
}

}  // namespace coremlz::service
