#include "service/remote_worker_pool.h"

#include <list>
#include <optional>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "api/artifact_receiver.h"
#include "api/channel.h"
#include "api/client_call.h"
#include "api/convert.h"
#include "api/grpc_status.h"
#include "api/transfer.h"
#include "common/file_util.h"
#include "common/status_macros.h"
#include "coremlz/v1/worker.grpc.pb.h"
#include "engine/job_queue.h"

namespace coremlz::service {
namespace {

struct ResolvedTarget {
  std::string channel_target;  // what grpc dials
  int workers = 0;              // how many addresses it resolved to now
};

// "dns:///name:port" is handed to gRPC (it re-resolves); a comma list of
// host:port is resolved here into an ipv4:/ipv6: address list.
absl::StatusOr<ResolvedTarget> Resolve(const std::string& target) {
  ResolvedTarget r;
  if (std::optional<std::string> name = api::DnsName(target)) {
    std::optional<api::HostPort> hp = api::SplitHostPort(*name);
    if (!hp) return absl::InvalidArgumentError(absl::StrCat("--remote-workers: no port in ", target));
    absl::StatusOr<api::ResolvedAddresses> found = api::ResolveHost(hp->host, hp->port);
    r.channel_target = target;
    r.workers = found.ok() ? static_cast<int>(found->size()) : 0;
    return r;
  }
  api::ResolvedAddresses all;
  for (absl::string_view part : absl::StrSplit(target, ',', absl::SkipEmpty())) {
    std::optional<api::HostPort> hp = api::SplitHostPort(part);
    if (!hp) return absl::InvalidArgumentError(absl::StrCat("--remote-workers: no port in ", part));
    absl::StatusOr<api::ResolvedAddresses> found = api::ResolveHost(hp->host, hp->port);
    if (!found.ok()) return absl::InvalidArgumentError(absl::StrCat("--remote-workers: cannot resolve ", hp->host));
    all.ipv4.insert(all.ipv4.end(), found->ipv4.begin(), found->ipv4.end());
    all.ipv6.insert(all.ipv6.end(), found->ipv6.begin(), found->ipv6.end());
  }
  if (all.size() == 0) return absl::InvalidArgumentError(absl::StrCat("--remote-workers: no address in ", target));
  if (!all.ipv4.empty() && !all.ipv6.empty()) return absl::InvalidArgumentError("--remote-workers: mix of IPv4 and IPv6 addresses");
  r.channel_target = all.ipv4.empty() ? absl::StrCat("ipv6:", absl::StrJoin(all.ipv6, ","))
                                      : absl::StrCat("ipv4:", absl::StrJoin(all.ipv4, ","));
  r.workers = static_cast<int>(all.size());
  return r;
}

bool Retryable(absl::StatusCode code) {
  return code == absl::StatusCode::kUnavailable || code == absl::StatusCode::kResourceExhausted ||
         code == absl::StatusCode::kUnknown || code == absl::StatusCode::kInternal ||
         code == absl::StatusCode::kAborted || code == absl::StatusCode::kDataLoss;
}

class RemoteWorkerPool : public engine::WorkerPool {
 public:
  RemoteWorkerPool(RemoteWorkerPoolOptions options, std::shared_ptr<grpc::Channel> channel, int workers)
      : options_(std::move(options)),
        channel_(std::move(channel)),
        stub_(v1::Worker::NewStub(channel_)),
        queue_(QueueOptions(options_, workers)) {
    dispatcher_ = std::thread([this] { Dispatch(); });
    resolver_ = std::thread([this] { FollowWorkerCount(); });
  }
  ~RemoteWorkerPool() override { Shutdown(absl::ZeroDuration()); }

  absl::Status Submit(engine::CompressJob job) override { return queue_.Submit(std::move(job)); }

  int busy() const override { return queue_.running(); }
  int queue_depth() const override { return queue_.waiting(); }
  int threads() const override { return queue_.slots(); }

  void Shutdown(absl::Duration grace) override {
    queue_.Shutdown(grace);
    {
      absl::MutexLock lock(&mu_);
      stopping_ = true;
    }
    stopped_.SignalAll();
    if (dispatcher_.joinable()) dispatcher_.join();
    if (resolver_.joinable()) resolver_.join();
    // Every job has finished; some threads may not have handed themselves
    // over yet.
    std::list<std::thread> last;
    {
      absl::MutexLock lock(&mu_);
      last.swap(jobs_);
    }
    for (std::thread& t : last) t.join();
    JoinFinishedJobs();
  }

 private:
  static engine::JobQueueOptions QueueOptions(const RemoteWorkerPoolOptions& options, int workers) {
    engine::JobQueueOptions q;
    q.slots = options.per_worker_concurrency * std::max(1, workers);
    q.queue_capacity = options.queue_capacity;
    q.busy_message = [](int slots, size_t waiting) {
      return absl::StrCat("all ", slots, " remote worker slots are busy and ", waiting,
                          " jobs are queued; retry in a few seconds");
    };
    q.expired_message = "no remote worker slot freed up before the call's deadline";
    q.expire_admitted_jobs = true;
    return q;
  }

  // One thread per running job: the number of slots follows the workers.
  void Dispatch() {
    while (std::optional<engine::CompressJob> job = queue_.Take()) {
      JoinFinishedJobs();
      absl::MutexLock lock(&mu_);
      jobs_.emplace_back([this, job = std::move(*job)]() mutable { RunJob(std::move(job)); });
    }
  }

  // Follows the worker count (a Deployment scaling up or down).
  void FollowWorkerCount() {
    while (true) {
      {
        absl::MutexLock lock(&mu_);
        if (stopping_) return;
      }
      absl::StatusOr<ResolvedTarget> r = Resolve(options_.target);
      if (r.ok() && r->workers > 0) queue_.SetSlots(options_.per_worker_concurrency * r->workers);
      absl::MutexLock lock(&mu_);
      const absl::Time wake = absl::Now() + absl::Seconds(10);
      while (!stopping_ && !stopped_.WaitWithDeadline(&mu_, wake)) {
      }
    }
  }

  void RunJob(engine::CompressJob job) {
    // Inspection reads the upload the front holds: it runs here, on one of
    // the pool's slots, so that it queues and is cancelled like a job.
    absl::StatusOr<engine::CompressionReport> result;
    if (job.task) {
      absl::Status s = job.control->Cancelled() ? absl::CancelledError("the job was cancelled") : job.task(job.control.get());
      if (s.ok()) result = engine::CompressionReport();
      else result = s;
    } else {
      result = Execute(job);
    }
    job.done(std::move(result));
    queue_.Finish(job);
    // Hand this thread over to be joined.
    absl::MutexLock lock(&mu_);
    for (auto it = jobs_.begin(); it != jobs_.end(); ++it) {
      if (it->get_id() == std::this_thread::get_id()) {
        finished_jobs_.push_back(std::move(*it));
        jobs_.erase(it);
        break;
      }
    }
  }

  void JoinFinishedJobs() {
    std::vector<std::thread> finished;
    {
      absl::MutexLock lock(&mu_);
      finished.swap(finished_jobs_);
    }
    for (std::thread& t : finished) t.join();
  }

  absl::StatusOr<engine::CompressionReport> Execute(const engine::CompressJob& job) {
    std::string root;
    ASSIGN_OR_RETURN(std::vector<v1::FileInfo> files, api::DescribeModelFiles(job.input_path, &root));
    v1::CompressRequest header;
    *header.mutable_header()->mutable_config() = api::ToProto(job.config);
    if (job.options.target) header.mutable_header()->set_target(engine::TargetName(*job.options.target));
    header.mutable_header()->set_check_samples(job.options.check_samples);
    for (const auto& f : files) *header.mutable_header()->add_files() = f;
    std::vector<std::string> attempts;
    for (int attempt = 1; attempt <= options_.max_attempts; ++attempt) {
      if (job.control->Cancelled()) return absl::CancelledError("the job was cancelled");
      if (absl::Now() >= job.deadline) break;
      absl::StatusOr<engine::CompressionReport> r = Attempt(job, header, root, files);
      if (r.ok() || !Retryable(r.status().code())) return r;
      attempts.push_back(absl::StrCat("attempt ", attempt, ": ", absl::StatusCodeToString(r.status().code()), " ",
                                      r.status().message()));
      absl::SleepFor(absl::Milliseconds(100 * attempt));
    }
    if (job.control->Cancelled()) return absl::CancelledError("the job was cancelled");
    if (absl::Now() >= job.deadline) {
      return absl::DeadlineExceededError(absl::StrCat("the deadline passed while retrying on workers: ", absl::StrJoin(attempts, "; ")));
    }
    return absl::UnavailableError(absl::StrCat("no remote worker completed the job: ", absl::StrJoin(attempts, "; ")));
  }

  absl::StatusOr<engine::CompressionReport> Attempt(const engine::CompressJob& job, const v1::CompressRequest& header,
                                                    const std::string& root, const std::vector<v1::FileInfo>& files) {
    // The artifact lands here and moves to output_path only when complete.
    const std::string staging = absl::StrCat(job.output_path, ".remote-staging");
    RETURN_IF_ERROR(RemoveAll(staging));
    RETURN_IF_ERROR(MakeDirectories(staging));
    struct Cleanup {
      std::string dir;
      ~Cleanup() { (void)RemoveAll(dir); }
    } cleanup{staging};
    api::ArtifactReceiver artifact(staging);

    grpc::ClientContext ctx;
    api::PrepareCall(&ctx, job.deadline, options_.token);
    auto stream = stub_->Run(&ctx);
    std::vector<v1::WeightReport> rows;
    v1::Summary summary;
    bool have_summary = false;
    grpc::Status status;
    {
      api::CallCanceller canceller(&ctx, [&] { return job.control->Cancelled(); }, absl::Milliseconds(20));
      std::thread writer([&] {
        if (!stream->Write(header)) return;
        (void)api::SendFiles(root, files, 0, [&](v1::FileChunk&& c) {
          v1::CompressRequest r;
          *r.mutable_chunk() = std::move(c);
          return stream->Write(r);
        });
        stream->WritesDone();
      });
      v1::CompressResponse response;
      while (stream->Read(&response)) {
        if (response.has_progress() && response.progress().phase() == v1::Progress::COMPRESS) {
          engine::Progress p;
          p.weights_done = response.progress().weights_done();
          p.weights_total = response.progress().weights_total();
          p.bytes_done = response.progress().bytes_done();
          p.bytes_total = response.progress().bytes_total();
          p.current = response.progress().current();
          job.control->OnProgress(p);
        } else if (response.has_weight()) {
          rows.push_back(response.weight());
        } else if (response.has_summary()) {
          summary = response.summary();
          have_summary = true;
        } else if (!artifact.Receive(response).ok()) {
          ctx.TryCancel();
        }
      }
      writer.join();
      status = stream->Finish();
    }
    if (!artifact.status().ok()) {
      return absl::DataLossError(absl::StrCat("the worker's artifact failed its check: ", artifact.status().message()));
    }
    if (!status.ok()) return api::FromGrpcStatus(status);
    if (!have_summary) return absl::DataLossError("the worker ended the job without a summary");
    ASSIGN_OR_RETURN(std::string produced, artifact.Complete());
    RETURN_IF_ERROR(api::CommitArtifact(produced, job.output_path));
    return api::ReportFrom(rows, summary);
  }

  RemoteWorkerPoolOptions options_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Worker::Stub> stub_;
  engine::JobQueue queue_;
  absl::Mutex mu_;
  absl::CondVar stopped_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::list<std::thread> jobs_ ABSL_GUARDED_BY(mu_);             // running
  std::vector<std::thread> finished_jobs_ ABSL_GUARDED_BY(mu_);  // done, to be joined
  std::thread dispatcher_;
  std::thread resolver_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<engine::WorkerPool>> MakeRemoteWorkerPool(const RemoteWorkerPoolOptions& options) {
  if (options.per_worker_concurrency < 1) return absl::InvalidArgumentError("--worker-concurrency must be >= 1");
  ASSIGN_OR_RETURN(ResolvedTarget target, Resolve(options.target));
  ASSIGN_OR_RETURN(std::shared_ptr<grpc::ChannelCredentials> creds, api::ChannelCredentials(options.tls));
  api::ChannelOptions channel_options;
  channel_options.round_robin = true;
  channel_options.detect_dead_peers = true;
  auto channel = api::OpenChannel(target.channel_target, creds, channel_options);
  return std::unique_ptr<engine::WorkerPool>(new RemoteWorkerPool(options, channel, std::max(1, target.workers)));
}

}  // namespace coremlz::service
