#include "engine/worker_pool.h"

#include <unistd.h>

#include <map>
#include <optional>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/memory_release.h"
#include "common/status_macros.h"
#include "engine/compress_model.h"
#include "engine/job_queue.h"
#include "engine/pool_parallel_for.h"
#include "engine/task_pool.h"
#include "format/mil_program.h"
#include "format/neural_network_weights.h"
#include "format/package.h"
#include "format/tensor.h"

namespace coremlz::engine {
namespace {

std::string Mib(uint64_t bytes) { return absl::StrCat(bytes >> 20, " MiB"); }

// Admits a job's helpers to the worker slots no job is using (JobQueue's
// lending), each piece charged against the memory budget.
class SlotLending : public HelperGate {
 public:
  explicit SlotLending(JobQueue* queue) : queue_(queue) {}
  bool Enter(uint64_t bytes) override { return queue_->TryLend(bytes); }
  void Leave(uint64_t bytes, bool ran) override { queue_->EndLend(bytes, ran); }

 private:
  JobQueue* const queue_;
};

class LocalWorkerPool : public WorkerPool {
 public:
  explicit LocalWorkerPool(const LocalWorkerPoolOptions& o)
      : options_(Resolved(o)), queue_(QueueOptions()), lending_(&queue_) {
    // Idle worker slots help the running jobs with their weights' groups:
    // one helper thread per slot beyond a job's own, which runs only while
    // the queue lends it a free slot.
    if (options_.threads > 1) {
      helpers_ = std::make_unique<TaskPool>(options_.threads - 1);
      parallel_ = std::make_unique<PoolParallelFor>(helpers_.get(), options_.threads - 1, &lending_);
    }
    for (int i = 0; i < options_.threads; ++i) threads_.emplace_back([this] { Loop(); });
  }

  ~LocalWorkerPool() override { Shutdown(absl::ZeroDuration()); }

  absl::Status Submit(CompressJob job) override { return queue_.Submit(std::move(job)); }

  int busy() const override { return queue_.running(); }
  int queue_depth() const override { return queue_.waiting(); }
  int threads() const override { return options_.threads; }
  int64_t slots_lent() const override { return queue_.lends(); }
  bool reads_arriving_input() const override { return true; }

  absl::Status CheckMemory(uint64_t estimate) const override {
    if (estimate <= options_.memory_budget) return absl::OkStatus();
    return absl::ResourceExhaustedError(absl::StrCat(
        "the model needs about ", Mib(estimate), " to process, more than this server's memory budget of ",
        Mib(options_.memory_budget), "; use a server with a larger --memory-budget-mb"));
  }

  void Shutdown(absl::Duration grace) override {
    queue_.Shutdown(grace);
    for (auto& t : threads_) t.join();
    threads_.clear();
  }

 private:
  // Fills in the defaults: one thread per core, half the machine's memory.
  static LocalWorkerPoolOptions Resolved(LocalWorkerPoolOptions o) {
    if (o.threads <= 0) o.threads = std::max(1u, std::thread::hardware_concurrency());
    if (o.memory_budget == 0) {
      const long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGE_SIZE);
      o.memory_budget = pages > 0 && page > 0 ? static_cast<uint64_t>(pages) * page / 2 : uint64_t{4} << 30;
    }
    return o;
  }

  JobQueueOptions QueueOptions() const {
    JobQueueOptions q;
    q.slots = options_.threads;
    q.queue_capacity = options_.queue_capacity;
    q.memory_budget = options_.memory_budget;
    q.admissible = [this](const CompressJob& job) { return CheckMemory(job.memory_estimate); };
    q.busy_message = [](int slots, size_t waiting) {
      return absl::StrCat("all ", slots, " workers are busy and ", waiting, " jobs are queued; retry in a few seconds");
    };
    q.expired_message = "the job queue stayed full until the call's deadline; retry later";
    return q;
  }

  void Loop() {
    while (std::optional<CompressJob> job = queue_.Take()) {
      job->done(RunJob(*job));
      const bool idle = queue_.Finish(*job);
      job.reset();  // the call may still hold the control; the pool is done with it
      // The last job of a busy spell: give its memory back to the system.
      if (idle) ReleaseFreeMemory();
    }
  }

  absl::StatusOr<CompressionReport> RunJob(const CompressJob& job) const {
    if (job.control->Cancelled()) return absl::CancelledError("the job was cancelled");
    if (job.task) {
      RETURN_IF_ERROR(job.task(job.control.get()));
      return CompressionReport();
    }
    CompressOptions options = job.options;
    if (options.parallel == nullptr) options.parallel = parallel_.get();
    absl::StatusOr<CompressionReport> report = CompressModelPath(job.input_path, job.output_path, job.config,
                                                                 options, WriteOptions{true}, job.control.get(),
                                                                 job.arriving.get());
    if (report.ok() && job.after) {
      job.after(&*report, job.control.get());
      if (job.control->Cancelled()) return absl::CancelledError("the job was cancelled");
    }
    return report;
  }

  const LocalWorkerPoolOptions options_;
  JobQueue queue_;
  // A job's Run waits for the helpers that joined it, so none outlives its
  // job; a helper queued after its Run returned touches neither the gate
  // nor the queue. The helper threads are joined before lending_ and
  // queue_ go (declared after them).
  SlotLending lending_;
  std::unique_ptr<TaskPool> helpers_;
  std::unique_ptr<PoolParallelFor> parallel_;
  std::vector<std::thread> threads_;
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
  int64_t slots_lent() const override { return inner_->slots_lent(); }
  absl::Status CheckMemory(uint64_t estimate) const override { return inner_->CheckMemory(estimate); }
  bool reads_arriving_input() const override { return inner_->reads_arriving_input(); }
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
  // A NeuralNetwork keeps its weights inside the spec, in a package as in a
  // bare .mlmodel: the same job, the same estimate.
  if (format::HasNeuralNetwork(model)) return EstimateModelFileMemory(spec_bytes);
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
