#include "engine/worker_pool.h"

#include <unistd.h>

#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/memory_release.h"
#include "common/status_macros.h"
#include "engine/compress_model.h"
#include "format/package.h"
#include "format/tensor.h"

namespace coremlz::engine {
namespace {

std::string Mib(uint64_t bytes) { return absl::StrCat(bytes >> 20, " MiB"); }

class LocalWorkerPool : public WorkerPool {
 public:
  explicit LocalWorkerPool(const LocalWorkerPoolOptions& o) : options_(o) {
    if (options_.threads <= 0) options_.threads = std::max(1u, std::thread::hardware_concurrency());
    if (options_.memory_budget == 0) {
      const long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGE_SIZE);
      options_.memory_budget = pages > 0 && page > 0 ? static_cast<uint64_t>(pages) * page / 2 : uint64_t{4} << 30;
    }
    for (int i = 0; i < options_.threads; ++i) threads_.emplace_back([this] { Loop(); });
    reaper_ = std::thread([this] { Reap(); });
  }

  ~LocalWorkerPool() override { Shutdown(absl::ZeroDuration()); }

  absl::Status Submit(CompressJob job) override {
    if (!job.control || !job.done) return absl::InvalidArgumentError("a job needs a control and a done callback");
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return absl::UnavailableError("the server is shutting down; retry on another replica");
    if (job.memory_estimate > options_.memory_budget) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "the model needs about ", Mib(job.memory_estimate), " to compress, more than this server's memory budget of ",
          Mib(options_.memory_budget), "; use a server with a larger --memory-budget-mb"));
    }
    // Room: a free worker, or a free place in the queue behind the busy ones.
    const size_t capacity = static_cast<size_t>(options_.threads - running_) + options_.queue_capacity;
    if (queue_.size() >= capacity && !job.admission_deadline) {
      return absl::ResourceExhaustedError(absl::StrCat("all ", options_.threads, " workers are busy and ", queue_.size(),
                                                       " jobs are queued; retry in a few seconds"));
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
  int threads() const override { return options_.threads; }

  void Shutdown(absl::Duration grace) override {
    std::vector<CompressJob> dropped;
    {
      std::unique_lock<std::mutex> lock(mu_);
      if (stopping_ && threads_.empty()) return;
      stopping_ = true;
      for (auto& job : queue_) dropped.push_back(std::move(job));
      queue_.clear();
      // Running jobs get the grace period, then are cancelled.
      cv_.wait_for(lock, absl::ToChronoNanoseconds(grace), [this] { return running_ == 0; });
      for (JobControl* c : running_controls_) c->Cancel();
      cv_.notify_all();
    }
    for (auto& job : dropped) job.done(absl::UnavailableError("the server shut down before the job started"));
    for (auto& t : threads_) t.join();
    threads_.clear();
    if (reaper_.joinable()) reaper_.join();
  }

 private:
  // Takes the first queued job that fits the free memory; queued jobs that
  // were cancelled or waited too long are answered by the reaper.
  void Loop() {
    while (true) {
      CompressJob job;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [this] { return stopping_ || Runnable() != queue_.end(); });
        if (stopping_) return;
        auto it = Runnable();
        job = std::move(*it);
        queue_.erase(it);
        ++running_;
        memory_in_use_ += job.memory_estimate;
        running_controls_.push_back(job.control.get());
      }
      absl::StatusOr<CompressionReport> result =
          job.control->Cancelled() ? absl::StatusOr<CompressionReport>(absl::CancelledError("the job was cancelled"))
                                   : CompressModelPath(job.input_path, job.output_path, job.config, job.options,
                                                       WriteOptions{true}, job.control.get());
      job.done(std::move(result));
      const uint64_t estimate = job.memory_estimate;
      const JobControl* control = job.control.get();
      bool idle = false;
      {
        std::lock_guard<std::mutex> lock(mu_);
        --running_;
        memory_in_use_ -= estimate;
        running_controls_.erase(std::find(running_controls_.begin(), running_controls_.end(), control));
        idle = running_ == 0 && queue_.empty();
      }
      job = CompressJob();  // the call may still hold the control; the pool is done with it
      cv_.notify_all();
      // The last job of a busy spell: give its memory back to the system.
      if (idle) ReleaseFreeMemory();
    }
  }

  std::deque<CompressJob>::iterator Runnable() {
    if (running_ >= options_.threads) return queue_.end();
    for (auto it = queue_.begin(); it != queue_.end(); ++it) {
      if (memory_in_use_ + it->memory_estimate <= options_.memory_budget) return it;
    }
    return queue_.end();
  }

  void Reap() {
    while (true) {
      std::vector<std::pair<CompressJob, absl::Status>> finished;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait_for(lock, std::chrono::milliseconds(100), [this] { return stopping_; });
        if (stopping_) return;
        const absl::Time now = absl::Now();
        // Jobs over the queue capacity are only allowed while they wait.
        size_t position = 0;
        for (auto it = queue_.begin(); it != queue_.end(); ++position) {
          absl::Status s;
          if (it->control->Cancelled()) {
            s = absl::CancelledError("the job was cancelled while queued");
          } else if (position >= static_cast<size_t>(options_.queue_capacity + options_.threads - running_) &&
                     it->admission_deadline &&
                     now > *it->admission_deadline) {
            s = absl::ResourceExhaustedError("the job queue stayed full until the call's deadline; retry later");
          }
          if (s.ok()) {
            ++it;
            continue;
          }
          finished.emplace_back(std::move(*it), s);
          it = queue_.erase(it);
        }
      }
      for (auto& [job, status] : finished) job.done(status);
    }
  }

  LocalWorkerPoolOptions options_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<CompressJob> queue_;
  std::vector<JobControl*> running_controls_;
  int running_ = 0;
  uint64_t memory_in_use_ = 0;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
  std::thread reaper_;
};

class DelayingControl : public JobControl {
 public:
  DelayingControl(std::shared_ptr<JobControl> inner, absl::Duration delay) : inner_(std::move(inner)), delay_(delay) {}
  bool Cancelled() const override { return inner_->Cancelled(); }
  void OnProgress(const Progress& p) override {
    inner_->OnProgress(p);
    const absl::Time end = absl::Now() + delay_;
    while (absl::Now() < end && !inner_->Cancelled()) absl::SleepFor(absl::Milliseconds(5));
  }

 private:
  std::shared_ptr<JobControl> inner_;
  absl::Duration delay_;
};

class DelayingWorkerPool : public WorkerPool {
 public:
  DelayingWorkerPool(std::unique_ptr<WorkerPool> inner, absl::Duration delay) : inner_(std::move(inner)), delay_(delay) {}
  absl::Status Submit(CompressJob job) override {
    job.control = std::make_shared<DelayingControl>(job.control, delay_);
    return inner_->Submit(std::move(job));
  }
  int busy() const override { return inner_->busy(); }
  int queue_depth() const override { return inner_->queue_depth(); }
  int threads() const override { return inner_->threads(); }
  void Shutdown(absl::Duration grace) override { inner_->Shutdown(grace); }

 private:
  std::unique_ptr<WorkerPool> inner_;
  absl::Duration delay_;
};

}  // namespace

std::unique_ptr<WorkerPool> MakeDelayingWorkerPool(std::unique_ptr<WorkerPool> inner, absl::Duration delay) {
  return std::make_unique<DelayingWorkerPool>(std::move(inner), delay);
}

std::unique_ptr<WorkerPool> MakeLocalWorkerPool(const LocalWorkerPoolOptions& options) {
  return std::make_unique<LocalWorkerPool>(options);
}

absl::StatusOr<uint64_t> EstimateJobMemory(const std::string& path) {
  if (!IsDirectory(path)) {
    ASSIGN_OR_RETURN(uint64_t size, FileSize(path));
    return size * 6 + (uint64_t{16} << 20);  // parsed, decoded floats, rewritten
  }
  ASSIGN_OR_RETURN(std::unique_ptr<format::MlPackage> pkg, format::MlPackage::Open(path));
  uint64_t largest = 0;
  if (pkg->model().has_mlprogram()) {
    for (const auto& [name, f] : pkg->model().mlprogram().functions()) {
      for (const auto& [key, block] : f.block_specializations()) {
        for (const auto& op : block.operations()) {
          if (op.type() != "const" || op.outputs_size() != 1) continue;
          if (!op.outputs(0).type().has_tensortype()) continue;
          const std::string& const_name = op.outputs(0).name();
          auto info = format::ReadTensorType(op.outputs(0).type());
          if (!info.ok()) {
            return absl::Status(info.status().code(), absl::StrCat("const \"", const_name, "\": ", info.status().message()));
          }
          auto count = format::ElementCount(info->shape);
          if (!count.ok()) {
            return absl::InvalidArgumentError(absl::StrCat("const \"", const_name, "\": ", count.status().message()));
          }
          // A declared shape cannot be trusted to size memory before its data
          // was read: one larger than the file that holds it is refused here,
          // as the reader would refuse it later, instead of looking like a
          // model too big for this server.
          auto val = op.attributes().find("val");
          if (val != op.attributes().end() && val->second.has_blobfilevalue()) {
            const std::string& file = val->second.blobfilevalue().filename();
            auto rel = pkg->layout().ResolveBlobFile(file);
            auto size = rel.ok() ? FileSize(pkg->PathOf(*rel)) : absl::StatusOr<uint64_t>(rel.status());
            auto bytes = format::StorageBytes(info->type, *count);
            if (size.ok() && bytes.ok() && *bytes > *size) {
              return absl::InvalidArgumentError(absl::StrCat(
                  "const \"", const_name, "\" declares ", format::ElementTypeName(info->type),
                  format::ShapeString(info->shape), " (", *bytes, " bytes), more than all of ", file, " (", *size,
                  " bytes)"));
            }
          }
          largest = std::max(largest, *count);
        }
      }
    }
  }
  // Per element: fp32 values, reconstruction, a copy for pruning/sorting,
  // indices and the packed output: about 20 bytes; plus the spec and slack.
  return largest * 20 + pkg->model_bytes().size() * 4 + (uint64_t{32} << 20);
}

}  // namespace coremlz::engine
