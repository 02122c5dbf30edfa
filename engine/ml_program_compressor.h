// Compresses the weights of an ML Program, blob by blob.
//
// Usage, for any source of the weight file bytes (a mapped file or an
// upload arriving in chunks):
//   1. Create() parses nothing new: it plans from the model spec alone which
//      const ops get which technique, and which blobs must be read.
//   2. For each weight file: BeginWeightFile(), then OnBlob() for every
//      needed blob in ascending offset order (BlobStreamReader delivers
//      exactly that), then FinishWeightFile(). Compressed tensors and the
//      blobs that stay are written to the output sink as they come, so peak
//      memory is about one tensor, not the model.
//   3. FinishModel() rewrites the program (new constexpr ops, rewired
//      consumers, moved blob offsets) and returns the new model.mlmodel.
//
// ml_program_compressor.cc is ~660 lines: planning, the blob stream, weights
// shared across functions, and the threaded compute/apply split all read and
// write the one plan (tasks by blob, remaining references, new offsets); the
// independent parts are already elsewhere (weight_compressor, op_spec,
// function_index, task_pool).
#ifndef COREMLZ_ENGINE_ML_PROGRAM_COMPRESSOR_H_
#define COREMLZ_ENGINE_ML_PROGRAM_COMPRESSOR_H_

#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/byte_sink.h"
#include "coreml/model.pb.h"
#include "engine/config.h"
#include "engine/config_usage.h"
#include "engine/job_control.h"
#include "engine/pool_parallel_for.h"
#include "engine/report.h"
#include "engine/target.h"
#include "engine/task_pool.h"
#include "engine/weight_compressor.h"
#include "format/blob_storage.h"
#include "format/package.h"

namespace coremlz::engine {

struct FunctionIndex;

struct CompressOptions {
  // The deployment target the caller asks for. It must not be below the
  // model's own, and an ML Program cannot be moved to a newer opset here
  // (that is a re-conversion); unset means "the model's".
  std::optional<Target> target;
  // Largest Manifest.json a package may have (coremlzd --max-manifest-kb).
  uint64_t max_manifest_bytes = format::kDefaultMaxManifestBytes;
  // Synthetic samples for the output check (0: none). The engine only carries
  // it: the check runs above it, where the executor lives.
  int check_samples = 0;
  // Weights compressed at once (the embedded CLI's --threads). The output
  // is the same whatever the number: results are written in blob order.
  // coremlzd leaves it at 1 and runs jobs in parallel instead.
  int threads = 1;
  // With threads == 1: lent by the caller (coremlzd's worker pool, from its
  // idle worker threads) to solve one weight's groups side by side; must
  // outlive the compression. Ignored with threads > 1, where the
  // compressor's own pool lends its idle threads.
  const compress::ParallelFor* parallel = nullptr;
};

class MlProgramCompressor {
 public:
  static absl::StatusOr<std::unique_ptr<MlProgramCompressor>> Create(CoreML::Specification::Model model,
                                                                     const CompressionConfig& config,
                                                                     const CompressOptions& options);
  ~MlProgramCompressor();

  struct WeightFileNeeds {
    std::string file_name;         // as the program names it ("@model_path/weights/weight.bin")
    std::vector<uint64_t> offsets;  // metadata offsets to deliver, ascending, unique
    bool exists = true;            // false: a new file for compressed immediates
  };
  const std::vector<WeightFileNeeds>& weight_files() const { return files_; }
  // The name of the (first) op reading the blob at `offset` of `file_name`,
  // for error messages; empty if none.
  std::string BlobOwner(const std::string& file_name, uint64_t offset) const;
  Target target() const { return target_; }
  int weights_planned() const;

  absl::Status BeginWeightFile(const std::string& file_name, ByteSink* out);
  absl::Status OnBlob(const format::BlobMetadata& metadata, absl::string_view data, JobControl* control);
  absl::Status FinishWeightFile();

  // The rewritten, serialized model specification.
  absl::StatusOr<std::string> FinishModel();
  CompressionReport& report() { return report_; }
  // Which op_name/op_type keys matched, for CompressionReport::warnings.
  const ConfigUsage& usage() const { return usage_; }

 private:
  struct Task;
  struct Computed;
  struct Pending;
  MlProgramCompressor() = default;
  absl::Status Plan(const CompressionConfig& config);
  // Records every blob reference: which blobs each weight file must deliver
  // and what the program declares they hold.
  absl::Status RecordBlobReferences(CoreML::Specification::MILSpec::Program* program);
  // Plans the compression of one const op of `function`, or reports why not.
  absl::Status PlanConst(const CoreML::Specification::MILSpec::Operation& op, const std::string& function,
                         const FunctionIndex& index, const CompressionConfig& config);
  // Compresses one weight from its stored values (fp16/fp32 bytes).
  absl::Status RunTask(Task& task, const format::TensorView& source, JobControl* control);
  // Completes a task from the earlier one it shares its source with.
  absl::Status CopyOutcome(Task& task);
  // RunTask in two halves: the compression and its metrics (thread-safe,
  // touches no member), then the report and the writer (in blob order).
  // The stored values are widened inside Compute and moved into the
  // kernels, so a weight is never held as two float copies.
  static Computed Compute(const Task& task, const format::TensorView& source, Target target, JobControl* control,
                          const compress::ParallelFor* parallel);
  absl::Status Apply(Task& task, Computed computed, JobControl* control);
  void ReportProgress(const Task& task, JobControl* control) const;
  // With threads > 1: finishes pending blobs, oldest first, until at most
  // `keep` remain.
  absl::Status Drain(size_t keep, JobControl* control);
  // Drains until a blob of `elements` more fits under the in-flight limit.
  absl::Status MakeRoomFor(uint64_t elements, JobControl* control);
  // Writes a source blob that something still reads, under the same
  // sharing rule as new blobs; returns its new offset.
  absl::StatusOr<uint64_t> WriteKeptBlob(const std::pair<std::string, uint64_t>& key, const format::BlobMetadata& meta,
                                         absl::string_view data);

  CoreML::Specification::Model model_;
  Target target_ = Target::kIOS16;        // what new ops are emitted for
  Target model_target_ = Target::kIOS16;  // the model's own
  bool target_asked_ = false;             // the caller asked for a newer target
  bool bump_opset_ = false;
  // Planned tasks by source weight + name + compression, for sharing; and
  // report rows of skipped blob weights, so each is listed once.
  std::map<std::string, std::vector<Task*>> share_;
  std::map<std::string, size_t> skipped_rows_;
  std::vector<std::unique_ptr<Task>> tasks_;
  std::vector<WeightFileNeeds> files_;
  // (file, offset) -> references that remain after compression.
  std::map<std::pair<std::string, uint64_t>, int> remaining_refs_;
  std::map<std::pair<std::string, uint64_t>, std::string> blob_owners_;
  struct DeclaredBlob {
    std::string owner;
    format::ElementType type;
    format::Shape shape;
  };
  std::map<std::pair<std::string, uint64_t>, std::vector<DeclaredBlob>> blob_declared_;
  std::map<std::pair<std::string, uint64_t>, std::vector<Task*>> tasks_by_blob_;
  std::map<std::pair<std::string, uint64_t>, uint64_t> new_offsets_;
  // Writing state for the current weight file.
  std::string current_file_;
  std::unique_ptr<format::BlobStorageWriter> writer_;
  ByteSink* sink_ = nullptr;
  CompressionReport report_;
  ConfigUsage usage_;
  int weights_done_ = 0;
  uint64_t bytes_total_ = 0, bytes_done_ = 0;
  int threads_ = 1;
  std::deque<std::unique_ptr<Pending>> pending_;
  // Elements of the blobs being compressed on the pool, and their limit: the
  // largest weight's. Several small weights compress in parallel, but the
  // memory in flight never exceeds what one thread needs for the largest
  // (the bound LLM-sized models are held to).
  uint64_t pending_elements_ = 0;
  uint64_t pending_element_limit_ = 0;
  JobControl* drain_control_ = nullptr;  // the control of the blobs pending
  // Lends the pool's idle threads to one weight's groups; outlives the pool
  // (declared before it), whose tasks point to it.
  std::unique_ptr<PoolParallelFor> own_parallel_;
  // own_parallel_, or CompressOptions::parallel without a pool of our own.
  const compress::ParallelFor* parallel_ = nullptr;
  // Last: destroyed first, so its threads finish before what they read goes.
  std::unique_ptr<TaskPool> pool_;
};

}  // namespace coremlz::engine

#endif  // COREMLZ_ENGINE_ML_PROGRAM_COMPRESSOR_H_
