#include "engine/worker_pool.h"

#include <unistd.h>

#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/memory_release.h"
#include "common/status_macros.h"
#include "engine/compress_model.h"
#include "format/mil_program.h"
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
    RETURN_IF_ERROR(CheckMemory(job.memory_estimate));
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

  absl::Status CheckMemory(uint64_t estimate) const override {
    if (estimate <= options_.memory_budget) return absl::OkStatus();
    return absl::ResourceExhaustedError(absl::StrCat(
        "the model needs about ", Mib(estimate), " to process, more than this server's memory budget of ",
        Mib(options_.memory_budget), "; use a server with a larger --memory-budget-mb"));
  }

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
      absl::StatusOr<CompressionReport> result = RunJob(job);
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

  static absl::StatusOr<CompressionReport> RunJob(const CompressJob& job) {
    if (job.control->Cancelled()) return absl::CancelledError("the job was cancelled");
    if (job.task) {
      RETURN_IF_ERROR(job.task(job.control.get()));
      return CompressionReport();
    }
    absl::StatusOr<CompressionReport> report = CompressModelPath(job.input_path, job.output_path, job.config,
                                                                 job.options, WriteOptions{true}, job.control.get());
    if (report.ok() && job.after) {
      job.after(&*report, job.control.get());
      if (job.control->Cancelled()) return absl::CancelledError("the job was cancelled");
    }
    return report;
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
  absl::Status CheckMemory(uint64_t estimate) const override { return inner_->CheckMemory(estimate); }
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

namespace {

namespace mil = CoreML::Specification::MILSpec;

// The program's part of the estimate: the largest tensor, dense, over every
// block (nested ones included), and the number of ops.
absl::StatusOr<uint64_t> EstimateProgram(const CoreML::Specification::Model& model, uint64_t spec_bytes,
                                         const format::PackageLayout& layout, const FileSizeFn& file_size) {
  uint64_t largest = 0, ops = 0;
  if (model.has_mlprogram()) {
    // Dense element counts of constexpr outputs, for chained ops.
    std::map<std::string, uint64_t> produced;
    RETURN_IF_ERROR(format::ForEachBlock(model.mlprogram(), [&](const mil::Block* block,
                                                                const format::BlockContext&) -> absl::Status {
      for (const mil::Operation& op : block->operations()) {
        ++ops;
        const bool is_const = op.type() == "const";
        if (!is_const && !format::IsConstexprOp(op.type())) continue;
        // A constexpr op cannot produce more than its inputs encode: each
        // input element (a 1-bit mask element, an index) stands for at most
        // one output vector of kMaxVector elements. Bounding declared shapes
        // by that keeps a malformed op from posing as a model too large for
        // this server; the decompressor rejects it later.
        constexpr uint64_t kMaxVector = 64;
        uint64_t inputs = 0;
        if (!is_const) {
          auto add = [&](const mil::Value& v) {
            if (!v.type().has_tensortype()) return;
            auto info = format::ReadTensorType(v.type());
            if (!info.ok()) return;
            inputs += format::ElementCount(info->shape).value_or(0);
          };
          for (const auto& [name, arg] : op.inputs()) {
            for (const auto& b : arg.arguments()) {
              if (b.binding_case() == mil::Argument::Binding::kValue) add(b.value());
              else if (auto it = produced.find(b.name()); it != produced.end()) inputs += it->second;
            }
          }
          for (const auto& [name, v] : op.attributes()) {
            if (name != "name") add(v);
          }
        }
        for (const mil::NamedValueType& out : op.outputs()) {
          if (!out.type().has_tensortype()) continue;
          const std::string& const_name = out.name();
          auto info = format::ReadTensorType(out.type());
          if (!info.ok()) {
            return absl::Status(info.status().code(), absl::StrCat(op.type(), " \"", const_name, "\": ", info.status().message()));
          }
          auto count = format::ElementCount(info->shape);
          if (!count.ok()) {
            return absl::InvalidArgumentError(absl::StrCat(op.type(), " \"", const_name, "\": ", count.status().message()));
          }
          uint64_t n = *count;
          if (is_const) {
            // A declared shape cannot be trusted to size memory before its
            // data was read: one larger than the file that holds it is
            // refused here, as the reader would refuse it later, instead of
            // looking like a model too big for this server.
            auto val = op.attributes().find("val");
            if (val != op.attributes().end() && val->second.has_blobfilevalue()) {
              const std::string& file = val->second.blobfilevalue().filename();
              auto rel = layout.ResolveBlobFile(file);
              auto size = rel.ok() ? file_size(*rel) : absl::StatusOr<uint64_t>(rel.status());
              auto bytes = format::StorageBytes(info->type, n);
              if (size.ok() && bytes.ok() && *bytes > *size) {
                return absl::InvalidArgumentError(absl::StrCat(
                    "const \"", const_name, "\" declares ", format::ElementTypeName(info->type),
                    format::ShapeString(info->shape), " (", *bytes, " bytes), more than all of ", file, " (", *size,
                    " bytes)"));
              }
            }
          } else {
            n = std::min(n, inputs > UINT64_MAX / kMaxVector ? UINT64_MAX : inputs * kMaxVector);
            produced[out.name()] = n;
          }
          largest = std::max(largest, n);
        }
      }
      return absl::OkStatus();
    }));
  }
  // Saturating: declared shapes may be astronomically large.
  const uint64_t weights = largest > UINT64_MAX / kBytesPerElement ? UINT64_MAX : largest * kBytesPerElement;
  const uint64_t rest = MinimumSpecMemory(spec_bytes) + ops * kBytesPerOp;
  return weights > UINT64_MAX - rest ? UINT64_MAX : weights + rest;
}

absl::StatusOr<uint64_t> EstimatePackage(const std::string& dir, const FileSizeFn& file_size,
                                         uint64_t max_manifest_bytes) {
  ASSIGN_OR_RETURN(format::PackageLayout layout, format::PackageLayout::Read(dir, max_manifest_bytes));
  const std::string spec_path = JoinPath(dir, layout.model_path);
  ASSIGN_OR_RETURN(std::string bytes, ReadFile(spec_path, uint64_t{2} << 30));
  ASSIGN_OR_RETURN(CoreML::Specification::Model model, format::ParseModelSpec(bytes, spec_path));
  const uint64_t spec_bytes = bytes.size();
  bytes = std::string();
  return EstimateProgram(model, spec_bytes, layout, file_size);
}

}  // namespace

absl::StatusOr<uint64_t> EstimateJobMemory(const std::string& path, uint64_t max_manifest_bytes) {
  if (!IsDirectory(path)) {
    ASSIGN_OR_RETURN(uint64_t size, FileSize(path));
    return EstimateModelFileMemory(size);
  }
  // A complete package gets the reader's full checks (items that exist, ...).
  ASSIGN_OR_RETURN(std::unique_ptr<format::MlPackage> pkg, format::MlPackage::Open(path, max_manifest_bytes));
  return EstimateProgram(pkg->model(), pkg->model_bytes().size(), pkg->layout(),
                         [&](const std::string& rel) { return FileSize(pkg->PathOf(rel)); });
}

absl::StatusOr<uint64_t> EstimateUploadMemory(const std::string& dir, const FileSizeFn& declared,
                                              uint64_t max_manifest_bytes) {
  return EstimatePackage(dir, declared, max_manifest_bytes);
}

}  // namespace coremlz::engine
