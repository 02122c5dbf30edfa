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
#ifndef COREMLZ_ENGINE_ML_PROGRAM_COMPRESSOR_H_
#define COREMLZ_ENGINE_ML_PROGRAM_COMPRESSOR_H_

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
#include "engine/report.h"
#include "engine/target.h"
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

  CoreML::Specification::Model model_;
  Target target_ = Target::kIOS16;
  bool bump_opset_ = false;
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
};

}  // namespace coremlz::engine

#endif  // COREMLZ_ENGINE_ML_PROGRAM_COMPRESSOR_H_
