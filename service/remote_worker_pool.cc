#include "service/remote_worker_pool.h"

#include <netdb.h>
#include <sys/socket.h>
#include <arpa/inet.h>

#include <condition_variable>
#include <deque>
#include <filesystem>
#include <list>
#include <mutex>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "api/convert.h"
#include "api/grpc_status.h"
#include "api/transfer.h"
#include "common/file_util.h"
#include "common/status_macros.h"
#include "coremlz/v1/worker.grpc.pb.h"

namespace coremlz::service {
namespace {

struct ResolvedTarget {
  std::string channel_target;  // what grpc dials
  int workers = 0;              // how many addresses it resolved to now
};

// "dns:///name:port" is handed to gRPC (it re-resolves); a comma list of
// host:port is resolved here into an ipv4:/ipv6: address list.
absl::StatusOr<ResolvedTarget> Resolve(const std::string& target) {
  auto lookup = [](const std::string& host, const std::string& port, std::vector<std::string>* v4,
                   std::vector<std::string>* v6) {
    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* res = nullptr;
    if (::getaddrinfo(host.c_str(), port.c_str(), &hints, &res) != 0) return false;
    for (addrinfo* a = res; a != nullptr; a = a->ai_next) {
      char buf[INET6_ADDRSTRLEN] = {};
      if (a->ai_family == AF_INET) {
        ::inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(a->ai_addr)->sin_addr, buf, sizeof(buf));
        v4->push_back(absl::StrCat(buf, ":", port));
      } else if (a->ai_family == AF_INET6) {
        ::inet_ntop(AF_INET6, &reinterpret_cast<sockaddr_in6*>(a->ai_addr)->sin6_addr, buf, sizeof(buf));
        v6->push_back(absl::StrCat("[", buf, "]:", port));
      }
    }
    ::freeaddrinfo(res);
    return true;
  };
  auto split_host_port = [](absl::string_view hp, std::string* host, std::string* port) {
    const size_t colon = hp.rfind(':');
    if (colon == absl::string_view::npos) return false;
    *host = std::string(hp.substr(0, colon));
    *port = std::string(hp.substr(colon + 1));
    if (!host->empty() && host->front() == '[') *host = host->substr(1, host->size() - 2);
    return true;
  };
  ResolvedTarget r;
  std::vector<std::string> v4, v6;
  if (absl::StartsWith(target, "dns:")) {
    std::string rest = target.substr(absl::StartsWith(target, "dns:///") ? 7 : 4);
    std::string host, port;
    if (!split_host_port(rest, &host, &port)) return absl::InvalidArgumentError(absl::StrCat("--remote-workers: no port in ", target));
    lookup(host, port, &v4, &v6);
    r.channel_target = target;
    r.workers = static_cast<int>(v4.size() + v6.size());
    return r;
  }
  for (absl::string_view part : absl::StrSplit(target, ',', absl::SkipEmpty())) {
    std::string host, port;
    if (!split_host_port(part, &host, &port)) return absl::InvalidArgumentError(absl::StrCat("--remote-workers: no port in ", part));
    if (!lookup(host, port, &v4, &v6)) return absl::InvalidArgumentError(absl::StrCat("--remote-workers: cannot resolve ", host));
  }
  if (v4.empty() && v6.empty()) return absl::InvalidArgumentError(absl::StrCat("--remote-workers: no address in ", target));
  if (!v4.empty() && !v6.empty()) return absl::InvalidArgumentError("--remote-workers: mix of IPv4 and IPv6 addresses");
  r.channel_target = v4.empty() ? absl::StrCat("ipv6:", absl::StrJoin(v6, ",")) : absl::StrCat("ipv4:", absl::StrJoin(v4, ","));
  r.workers = static_cast<int>(v4.size() + v6.size());
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
      : options_(std::move(options)), channel_(std::move(channel)), stub_(v1::Worker::NewStub(channel_)), workers_(workers) {
    dispatcher_ = std::thread([this] { Dispatch(); });
  }
  ~RemoteWorkerPool() override { Shutdown(absl::ZeroDuration()); }

  absl::Status Submit(engine::CompressJob job) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return absl::UnavailableError("the server is shutting down; retry on another replica");
    const size_t room = static_cast<size_t>(std::max(0, Capacity() - running_)) + options_.queue_capacity;
    if (queue_.size() >= room && !job.admission_deadline) {
      return absl::ResourceExhaustedError(absl::StrCat("all ", Capacity(), " remote worker slots are busy and ",
                                                       queue_.size(), " jobs are queued; retry in a few seconds"));
    }
    queue_.push_back(std::move(job));
    cv_.notify_all();
    return absl::OkStatus();
  }

  int busy() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return running_;
  }
  int queue_depth() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return static_cast<int>(queue_.size());
  }
  int threads() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return Capacity();
  }

  void Shutdown(absl::Duration grace) override {
    std::deque<engine::CompressJob> dropped;
    {
      std::unique_lock<std::mutex> lock(mu_);
      if (stopping_ && !dispatcher_.joinable()) return;
      stopping_ = true;
      dropped.swap(queue_);
      cv_.notify_all();
      cv_.wait_for(lock, absl::ToChronoNanoseconds(grace), [this] { return running_ == 0; });
      for (engine::JobControl* c : controls_) c->Cancel();
      cv_.wait(lock, [this] { return running_ == 0; });
    }
    for (auto& job : dropped) job.done(absl::UnavailableError("the server shut down before the job started"));
    if (dispatcher_.joinable()) dispatcher_.join();
    for (auto& t : finished_threads_) t.join();
    finished_threads_.clear();
  }

 private:
  int Capacity() const { return options_.per_worker_concurrency * std::max(1, workers_); }

  void Dispatch() {
    absl::Time next_resolve = absl::Now();
    std::unique_lock<std::mutex> lock(mu_);
    while (!stopping_) {
      // Follow the worker count (a Deployment scaling up or down).
      if (absl::Now() >= next_resolve) {
        lock.unlock();
        auto r = Resolve(options_.target);
        lock.lock();
        if (r.ok() && r->workers > 0) workers_ = r->workers;
        next_resolve = absl::Now() + absl::Seconds(10);
      }
      // Expire queued jobs that were cancelled or waited past their deadline.
      for (auto it = queue_.begin(); it != queue_.end();) {
        absl::Status s;
        if (it->control->Cancelled()) s = absl::CancelledError("the job was cancelled while queued");
        else if (it->admission_deadline && absl::Now() > *it->admission_deadline) s = absl::ResourceExhaustedError("no remote worker slot freed up before the call's deadline");
        if (s.ok()) {
          ++it;
          continue;
        }
        engine::CompressJob job = std::move(*it);
        it = queue_.erase(it);
        lock.unlock();
        job.done(s);
        lock.lock();
      }
      while (!queue_.empty() && running_ < Capacity()) {
        engine::CompressJob job = std::move(queue_.front());
        queue_.pop_front();
        ++running_;
        controls_.push_back(job.control.get());
        threads_.emplace_back([this, job = std::move(job)]() mutable { RunJob(std::move(job)); });
      }
      cv_.wait_for(lock, std::chrono::milliseconds(100));
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
    std::lock_guard<std::mutex> lock(mu_);
    --running_;
    controls_.erase(std::find(controls_.begin(), controls_.end(), job.control.get()));
    // Move this thread's handle aside so it can be joined later.
    for (auto it = threads_.begin(); it != threads_.end(); ++it) {
      if (it->get_id() == std::this_thread::get_id()) {
        finished_threads_.push_back(std::move(*it));
        threads_.erase(it);
        break;
      }
    }
    cv_.notify_all();
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
    api::FileReceiver receiver(staging, api::TransferLimits{uint64_t{1} << 40, 100000, api::kMaxChunkBytes});

    grpc::ClientContext ctx;
    if (job.deadline != absl::InfiniteFuture()) ctx.set_deadline(absl::ToChronoTime(job.deadline));
    if (!options_.token.empty()) ctx.AddMetadata("authorization", "Bearer " + options_.token);
    auto stream = stub_->Run(&ctx);
    std::atomic<bool> finished{false};
    std::thread watcher([&] {
      while (!finished.load()) {
        if (job.control->Cancelled()) {
          ctx.TryCancel();
          return;
        }
        absl::SleepFor(absl::Milliseconds(20));
      }
    });
    std::thread writer([&] {
      if (!stream->Write(header)) return;
      (void)api::SendFiles(root, files, 0, [&](v1::FileChunk&& c) {
        v1::CompressRequest r;
        *r.mutable_chunk() = std::move(c);
        return stream->Write(r);
      });
      stream->WritesDone();
    });
    std::vector<v1::WeightReport> rows;
    v1::Summary summary;
    bool have_summary = false;
    absl::Status receive;
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
      } else if (response.has_artifact_file() && receive.ok()) {
        receive = receiver.Declare(response.artifact_file().info());
      } else if (response.has_artifact_chunk() && receive.ok()) {
        receive = receiver.Add(response.artifact_chunk());
      } else if (response.has_summary()) {
        summary = response.summary();
        have_summary = true;
      }
      if (!receive.ok()) ctx.TryCancel();
    }
    writer.join();
    grpc::Status status = stream->Finish();
    finished.store(true);
    watcher.join();
    if (!receive.ok()) return absl::DataLossError(absl::StrCat("the worker's artifact failed its check: ", receive.message()));
    if (!status.ok()) return api::FromGrpcStatus(status);
    if (!have_summary) return absl::DataLossError("the worker ended the job without a summary");
    RETURN_IF_ERROR(receiver.Finish());
    // Commit: a package arrives as its tree, a NeuralNetwork as one file.
    std::string produced = staging;
    if (receiver.files().size() == 1 && receiver.files()[0].path() != "Manifest.json" &&
        receiver.files()[0].path().find('/') == std::string::npos) {
      produced = JoinPath(staging, receiver.files()[0].path());
    }
    RETURN_IF_ERROR(RemoveAll(job.output_path));
    std::error_code ec;
    std::filesystem::rename(produced, job.output_path, ec);
    if (ec) return absl::InternalError(absl::StrCat("cannot commit the artifact: ", ec.message()));
    return api::ReportFrom(rows, summary);
  }

  RemoteWorkerPoolOptions options_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Worker::Stub> stub_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<engine::CompressJob> queue_;
  std::vector<engine::JobControl*> controls_;
  std::list<std::thread> threads_;
  std::vector<std::thread> finished_threads_;
  int running_ = 0;
  int workers_ = 1;
  bool stopping_ = false;
  std::thread dispatcher_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<engine::WorkerPool>> MakeRemoteWorkerPool(const RemoteWorkerPoolOptions& options) {
  if (options.per_worker_concurrency < 1) return absl::InvalidArgumentError("--worker-concurrency must be >= 1");
  ASSIGN_OR_RETURN(ResolvedTarget target, Resolve(options.target));
  ASSIGN_OR_RETURN(std::shared_ptr<grpc::ChannelCredentials> creds, api::ChannelCredentials(options.tls));
  grpc::ChannelArguments args;
  args.SetLoadBalancingPolicyName("round_robin");
  args.SetMaxReceiveMessageSize(8 << 20);
  args.SetMaxSendMessageSize(8 << 20);
  // Notice dead workers quickly so round_robin stops picking them.
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 10000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 5000);
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 200);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 5000);
  auto channel = grpc::CreateCustomChannel(target.channel_target, creds, args);
  return std::unique_ptr<engine::WorkerPool>(new RemoteWorkerPool(options, channel, std::max(1, target.workers)));
}

}  // namespace coremlz::service
