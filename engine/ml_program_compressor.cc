#include "engine/ml_program_compressor.h"

#include <algorithm>
#include <chrono>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/notification.h"
#include "common/status_macros.h"
#include "compress/metrics.h"
#include "compress/reduce.h"
#include "engine/config_resolution.h"
#include "engine/function_index.h"
#include "engine/op_spec.h"
#include "format/fp16.h"
#include "format/mil_program.h"
#include "format/package.h"

namespace coremlz::engine {
namespace mil = CoreML::Specification::MILSpec;
using format::ElementType;

inline constexpr char kDefaultWeightFile[] = "@model_path/weights/weight.bin";

struct MlProgramCompressor::Task {
  WeightTask weight;
  std::string function;
  // Source of the values: a blob, or an immediate value copied at planning.
  bool in_blob = false;
  std::string file_name;
  uint64_t offset = 0;
  std::optional<format::Tensor> immediate;
  // Another function's use of the same source weight under the same name
  // and compression: its outcome is copied, nothing is compressed or
  // written again, and its report row is that task's.
  Task* same_as = nullptr;
  // Outcome.
  bool done = false;
  bool replaced = false;
  std::vector<mil::Operation> ops;
  std::string final_output;
  size_t report_index = 0;
};

// What Compute hands to Apply.
struct MlProgramCompressor::Computed {
  absl::StatusOr<WeightResult> result = absl::UnknownError("not computed");
  bool cancelled = false;  // stopped inside a kernel
  absl::Status finite;
  compress::ErrorMetrics error;
  double sparsity = 0;
  uint64_t distinct = 0;
};

// A blob whose weights are being compressed on the pool: it is finished
// (ops and report rows, then the original if still read) in arrival order.
struct MlProgramCompressor::Pending {
  struct Slot {
    Task* task = nullptr;
    Computed computed;
    absl::Notification done;
  };
  std::pair<std::string, uint64_t> key;
  format::BlobMetadata meta;
  std::shared_ptr<const std::string> data;  // the blob's bytes, copied
  std::vector<std::shared_ptr<Slot>> slots;
};

MlProgramCompressor::~MlProgramCompressor() = default;

int MlProgramCompressor::weights_planned() const { return static_cast<int>(tasks_.size()); }

namespace {

// Every MIL value holding tensor data in an op: attributes (const "val",
// iOS16 constexpr parameters) and inline input bindings (iOS18).
template <typename OpT, typename Fn>
void ForEachValue(OpT& op, Fn&& fn) {
  for (auto& [name, value] : *op.mutable_attributes()) fn(name, value);
  for (auto& [name, arg] : *op.mutable_inputs()) {
    for (auto& b : *arg.mutable_arguments()) {
      if (b.binding_case() == mil::Argument::Binding::kValue) fn(name, *b.mutable_value());
    }
  }
}

// A weight's stored values (fp16 or fp32) as one flat view.
format::TensorView FlatView(ElementType type, absl::string_view bytes, uint64_t count) {
  return format::TensorView{type, {static_cast<int64_t>(count)}, bytes};
}

// Error metrics of `reconstructed` against the stored values, widened a
// piece at a time: the original never sits beside the reconstruction as a
// second float copy (for LLM-sized weights that copy was the peak).
absl::StatusOr<compress::ErrorMetrics> CompareToStored(const format::TensorView& stored,
                                                       absl::Span<const float> reconstructed) {
  const uint64_t count = reconstructed.size();
  const uint64_t width = format::BitWidth(stored.type) / 8;
  compress::ErrorAccumulator acc;
  if (stored.type == ElementType::kFloat16 || stored.type == ElementType::kFloat32) {
    if (stored.bytes.size() != count * width) return absl::InvalidArgumentError("tensor bytes do not match its shape");
    // Widened into a buffer that stays in L1 (no allocation per piece).
    constexpr uint64_t kPiece = 2048;
    float piece[kPiece];
    uint16_t halves[kPiece];
    for (uint64_t i = 0; i < count; i += kPiece) {
      const uint64_t n = std::min(kPiece, count - i);
      if (stored.type == ElementType::kFloat16) {
        std::memcpy(halves, stored.bytes.data() + 2 * i, 2 * n);
        format::HalfToFloat(absl::MakeConstSpan(halves, n), absl::MakeSpan(piece, n));
      } else {
        std::memcpy(piece, stored.bytes.data() + 4 * i, 4 * n);
      }
      acc.Add(absl::MakeConstSpan(piece, n), reconstructed.subspan(i, n));
    }
    return acc.Result();
  }
  constexpr uint64_t kPiece = 1 << 16;
  for (uint64_t i = 0; i < count; i += kPiece) {
    const uint64_t n = std::min(kPiece, count - i);
    ASSIGN_OR_RETURN(std::vector<float> piece,
                     format::ToFloats(FlatView(stored.type, stored.bytes.substr(i * width, n * width), n)));
    acc.Add(piece, reconstructed.subspan(i, n));
  }
  return acc.Result();
}

}  // namespace

absl::StatusOr<std::unique_ptr<MlProgramCompressor>> MlProgramCompressor::Create(CoreML::Specification::Model model,
                                                                                 const CompressionConfig& config,
                                                                                 const CompressOptions& options) {
  if (!model.has_mlprogram()) return absl::InvalidArgumentError("the model is not an ML Program");
  RETURN_IF_ERROR(Validate(config));
  // A malformed graph (a name defined twice, a cycle) would be rewritten and
  // written out as a model Core ML cannot load: refuse it first.
  RETURN_IF_ERROR(format::ValidateProgramGraph(model.mlprogram()));
  std::unique_ptr<MlProgramCompressor> c(new MlProgramCompressor());
  ASSIGN_OR_RETURN(Target model_target, TargetFromSpecVersion(model.specificationversion()));
  c->report_.model_kind = "mlprogram";
  c->report_.spec_version_before = model.specificationversion();
  // Constexpr ops exist from iOS16; Core ML tools move iOS15 programs there.
  c->target_ = std::max(model_target, Target::kIOS16);
  c->bump_opset_ = model_target == Target::kIOS15;
  if (options.target) {
    if (*options.target < model_target) {
      return absl::FailedPreconditionError(absl::StrCat(
          "the model already requires ", TargetName(model_target), " (specification version ", SpecVersion(model_target),
          "); it cannot be compressed for the older ", TargetName(*options.target)));
    }
    if (*options.target > c->target_) {
      return absl::FailedPreconditionError(absl::StrCat(
          "the model targets ", TargetName(model_target), "; moving an ML Program to ", TargetName(*options.target),
          " means re-converting it (coremltools convert with minimum_deployment_target=", TargetName(*options.target),
          "), which a data-free compressor cannot do safely"));
    }
  }
  c->model_target_ = model_target;
  c->target_asked_ = options.target.has_value() && *options.target > model_target;
  // Until something is compressed the model keeps its version (FinishModel).
  c->report_.target = TargetName(model_target);
  c->report_.spec_version_after = c->report_.spec_version_before;
  c->model_ = std::move(model);
  RETURN_IF_ERROR(c->Plan(config));
  c->threads_ = std::max(1, options.threads);
  if (c->threads_ > 1) {
    c->pool_ = std::make_unique<TaskPool>(c->threads_);
    c->own_parallel_ = std::make_unique<PoolParallelFor>(c->pool_.get(), c->threads_ - 1);
    c->parallel_ = c->own_parallel_.get();
  } else {
    c->parallel_ = options.parallel;
  }
  return c;
}

absl::Status MlProgramCompressor::Plan(const CompressionConfig& config) {
  mil::Program& program = *model_.mutable_mlprogram();
  ASSIGN_OR_RETURN(ProgramIndex index, IndexFunctions(program));
  RETURN_IF_ERROR(RecordBlobReferences(&program));
  RETURN_IF_ERROR(format::ForEachBlock(program, [&](const mil::Block* block, const format::BlockContext& ctx) -> absl::Status {
    const FunctionIndex& function_index = index[ctx.function];
    for (const mil::Operation& op : block->operations()) RETURN_IF_ERROR(PlanConst(op, ctx.function, function_index, config));
    return absl::OkStatus();
  }));

  // Compressed immediates need a weight file even if the model had none.
  bool immediates = std::any_of(tasks_.begin(), tasks_.end(), [](const auto& t) { return !t->in_blob; });
  if (immediates && std::none_of(files_.begin(), files_.end(), [](const auto& f) { return f.file_name == kDefaultWeightFile; })) {
    files_.push_back({kDefaultWeightFile, {}, false});
  }
  for (const auto& f : files_) bytes_total_ += f.offsets.size();  // progress counts blobs
  return absl::OkStatus();
}

// Every blob reference in the program, to copy or replace.
absl::Status MlProgramCompressor::RecordBlobReferences(mil::Program* program) {
  std::map<std::string, std::set<uint64_t>> offsets_by_file;
  RETURN_IF_ERROR(format::ForEachBlock(program, [&](mil::Block* block, const format::BlockContext&) -> absl::Status {
    absl::Status bad_type;
    for (mil::Operation& op : *block->mutable_operations()) {
      const std::string owner = op.outputs_size() > 0 ? op.outputs(0).name() : op.type();
      ForEachValue(op, [&](const std::string& input, mil::Value& v) {
        if (!v.has_blobfilevalue()) return;
        const auto key = std::make_pair(v.blobfilevalue().filename(), v.blobfilevalue().offset());
        offsets_by_file[key.first].insert(key.second);
        ++remaining_refs_[key];
        blob_owners_.emplace(key, owner);
        // What the program says the blob holds; checked against the blob's
        // own record when it arrives, for every reference (a mismatch the
        // compressor would not touch still makes a model Core ML rejects).
        auto declared = format::ReadTensorType(v.type());
        if (!declared.ok()) {
          if (bad_type.ok()) {
            bad_type = absl::Status(declared.status().code(), absl::StrCat("\"", owner, "\" (", input, "): ",
                                                                            declared.status().message()));
          }
          return;
        }
        blob_declared_[key].push_back({owner, declared->type, declared->shape});
      });
    }
    return bad_type;
  }));
  for (const auto& [file, offsets] : offsets_by_file) {
    // The name must resolve inside the package (checked again by the reader).
    format::PackageLayout probe;
    probe.model_dir = "Data/com.apple.CoreML";
    RETURN_IF_ERROR(probe.ResolveBlobFile(file).status());
    files_.push_back({file, std::vector<uint64_t>(offsets.begin(), offsets.end()), true});
  }
  return absl::OkStatus();
}

// Plans one const op; returning early leaves it out (or in the report as skipped).
absl::Status MlProgramCompressor::PlanConst(const mil::Operation& op, const std::string& function,
                                            const FunctionIndex& fi, const CompressionConfig& config) {
  if (op.type() != "const" || op.outputs_size() != 1) return absl::OkStatus();
  auto val = op.attributes().find("val");
  if (val == op.attributes().end() || !val->second.type().has_tensortype()) return absl::OkStatus();
  auto info = format::ReadTensorType(val->second.type());
  if (!info.ok()) {
    return absl::Status(info.status().code(), absl::StrCat("const \"", op.outputs(0).name(), "\": ", info.status().message()));
  }
  if (info->type != ElementType::kFloat16 && info->type != ElementType::kFloat32) return absl::OkStatus();
  ASSIGN_OR_RETURN(uint64_t count, format::ElementCount(info->shape));
  if (count < 10) return absl::OkStatus();  // never a weight for Core ML tools either
  const std::string name = op.outputs(0).name();

  WeightReport row;
  row.name = name;
  row.function = function;
  row.functions = {function};
  row.op_type = "const";
  row.shape = info->shape;
  row.dtype = std::string(format::ElementTypeName(info->type));
  row.technique = "none";
  // Set before any skip: a weight left as it is still has its size (the
  // table's "before", the planner's bytes of a kept weight).
  row.bytes_before = format::StorageBytes(info->type, count).value_or(0);
  // A weight other functions read from the same blob is listed once.
  const bool from_blob = val->second.has_blobfilevalue();
  const std::string source =
      from_blob ? absl::StrCat("blob|", val->second.blobfilevalue().filename(), "|", val->second.blobfilevalue().offset())
                : std::string();
  auto skip = [&](std::string reason) {
    const std::string key = absl::StrCat(name, "|", source, "|", reason);
    if (from_blob) {
      auto [it, inserted] = skipped_rows_.emplace(key, report_.weights.size());
      if (!inserted) {
        report_.weights[it->second].functions.push_back(function);
        return absl::OkStatus();
      }
    }
    row.skipped_reason = std::move(reason);
    report_.weights.push_back(row);
    return absl::OkStatus();
  };

  auto task = std::make_unique<Task>();
  WeightTask& w = task->weight;
  w.name = name;
  w.function = function;
  w.dtype = info->type;
  w.shape = info->shape;
  WeightUse use = DescribeUse(fi, name, w.shape.size());
  w.consumers = std::move(use.consumers);
  for (const ConsumerInfo& ci : w.consumers) row.consumers.push_back(absl::StrCat(ci.op_type, ".", ci.input));
  if (use.feeds_constexpr) return skip("already compressed data of a constexpr op");
  w.out_axis = use.out_axis;
  w.in_axis = use.in_axis;

  ASSIGN_OR_RETURN(WeightConfigs configs, ResolveWeightConfigs(config, name, w.consumers, &usage_));
  if (!configs.primary) return skip(w.consumers.empty() ? "no consumers" : "no config applies (null or unset)");
  w.primary_source = std::move(configs.primary_source);
  w.joint = std::move(configs.joint);
  w.joint_source = std::move(configs.joint_source);
  const int64_t threshold = WeightThreshold(*configs.primary);
  if (static_cast<int64_t>(count) <= threshold) {
    return skip(absl::StrCat(count, " elements <= weight_threshold ", threshold));
  }
  if (w.shape.size() <= 1) return skip("rank 1 (vectors such as biases are not compressed)");
  if (w.consumers.empty()) return skip("no consumers");
  if (fi.block_outputs.count(name)) return skip("it is a block output");
  w.primary = *configs.primary;

  task->function = function;
  if (val->second.has_blobfilevalue()) {
    task->in_blob = true;
    task->file_name = val->second.blobfilevalue().filename();
    task->offset = val->second.blobfilevalue().offset();
    tasks_by_blob_[{task->file_name, task->offset}].push_back(task.get());
  } else {
    auto t = format::DecodeImmediateTensor(val->second);
    if (!t.ok()) return absl::Status(t.status().code(), absl::StrCat("const \"", name, "\": ", t.status().message()));
    task->immediate = std::move(*t);
  }
  // Same source, name and everything the compression depends on: compress
  // once, whichever functions use it (multifunction packages).
  std::string share_key = absl::StrCat(name, "|", source, "|", format::ElementTypeName(w.dtype), format::ShapeString(w.shape),
                                       "|", ConfigKey(w.primary), "|", w.joint ? ConfigKey(*w.joint) : "-", "|", w.out_axis,
                                       ",", w.in_axis);
  for (const ConsumerInfo& ci : w.consumers) absl::StrAppend(&share_key, "|", ci.op_type, ".", ci.input, "/", ci.conv_groups);
  if (!from_blob) {
    absl::StrAppend(&share_key, "|imm");
  }
  std::vector<Task*>& candidates = share_[share_key];
  for (Task* earlier : candidates) {
    // Immediates match by value, checked byte for byte.
    if (!from_blob && earlier->immediate->bytes != task->immediate->bytes) continue;
    task->same_as = earlier;
    task->report_index = earlier->report_index;
    report_.weights[earlier->report_index].functions.push_back(function);
    tasks_.push_back(std::move(task));
    return absl::OkStatus();
  }
  candidates.push_back(task.get());
  task->report_index = report_.weights.size();
  report_.weights.push_back(row);
  tasks_.push_back(std::move(task));
  return absl::OkStatus();
}

absl::Status MlProgramCompressor::BeginWeightFile(const std::string& file_name, ByteSink* out) {
  if (writer_) return absl::FailedPreconditionError("a weight file is already open");
  current_file_ = file_name;
  sink_ = out;
  writer_ = std::make_unique<format::BlobStorageWriter>(out, format::BlobStorageWriter::kCountAtFinish);
  return absl::OkStatus();
}

absl::Status MlProgramCompressor::CopyOutcome(Task& task) {
  const Task& first = *task.same_as;
  if (!first.done) return absl::InternalError(absl::StrCat("weight \"", task.weight.name, "\" was shared before it was compressed"));
  task.done = true;
  ++weights_done_;
  task.replaced = first.replaced;
  task.ops = first.ops;  // the same names and blob offsets: one copy in weight.bin
  task.final_output = first.final_output;
  if (task.replaced && task.in_blob) --remaining_refs_[{task.file_name, task.offset}];
  return absl::OkStatus();
}

void MlProgramCompressor::ReportProgress(const Task& task, JobControl* control) const {
  if (!control) return;
  Progress p;
  p.weights_done = weights_done_;
  p.weights_total = static_cast<int>(tasks_.size());
  p.bytes_done = bytes_done_;
  p.bytes_total = bytes_total_;
  p.current = task.weight.name;
  control->OnProgress(p);
}

absl::Status MlProgramCompressor::RunTask(Task& task, const format::TensorView& source, JobControl* control) {
  ReportProgress(task, control);
  return Apply(task, Compute(task, source, target_, control, parallel_), control);
}

MlProgramCompressor::Computed MlProgramCompressor::Compute(const Task& task, const format::TensorView& source,
                                                           Target target, JobControl* control,
                                                           const compress::ParallelFor* parallel) {
  Computed c;
  absl::StatusOr<std::vector<float>> values = format::ToFloats(source);
  if (!values.ok()) {
    c.result = values.status();
    return c;
  }
  compress::CancelCheck cancel;
  if (control) cancel = control->KernelCheck();
  // Moved in: the kernels turn the values into the reconstruction in place.
  c.result = CompressWeight(task.weight, *std::move(values), target, &cancel, parallel);
  c.cancelled = cancel.cancelled();
  if (!c.result.ok() || !c.result->skipped_reason.empty()) return c;
  // A finite weight must stay finite: a model whose constants decode to
  // NaN or infinity is refused rather than written.
  const WeightResult& result = *c.result;
  // The value set holds every value the reconstruction does: finite there,
  // finite everywhere (the full pass only to say where, on failure).
  if (result.value_set && compress::AllFinite(*result.value_set)) {
    c.finite = absl::OkStatus();
  } else {
    c.finite = CheckDecodedFinite(task.weight.name, result.technique, task.weight.primary, task.weight.primary_source,
                                  task.weight.joint ? &*task.weight.joint : nullptr, task.weight.joint_source,
                                  task.weight.dtype == ElementType::kFloat16, result.reconstructed);
  }
  if (!c.finite.ok()) return c;
  absl::StatusOr<compress::ErrorMetrics> error = CompareToStored(source, result.reconstructed);
  if (!error.ok()) {
    c.result = error.status();
    return c;
  }
  c.error = *error;
  c.sparsity = compress::Sparsity(result.reconstructed);
  c.distinct = compress::DistinctCount(result.value_set ? absl::MakeConstSpan(*result.value_set)
                                                         : absl::MakeConstSpan(result.reconstructed));
  // Apply needs only the packed ops: a pending blob's slot should not hold
  // the float reconstruction too.
  std::vector<float>().swap(c.result->reconstructed);
  c.result->value_set.reset();
  return c;
}

absl::Status MlProgramCompressor::Apply(Task& task, Computed computed, JobControl* control) {
  WeightReport& row = report_.weights[task.report_index];
  if (!computed.result.ok()) {
    // Stopped inside a kernel: the job's own words (cancelled or expired).
    if (computed.cancelled && control) return control->StopStatus();
    return computed.result.status();
  }
  WeightResult& result = *computed.result;
  task.done = true;
  ++weights_done_;
  if (!result.skipped_reason.empty()) {
    row.skipped_reason = result.skipped_reason;
    ++report_.weights_skipped;
    return absl::OkStatus();
  }
  RETURN_IF_ERROR(computed.finite);
  uint64_t stored = 0;
  ASSIGN_OR_RETURN(task.ops, BuildOps(result.ops, target_, writer_.get(), current_file_, &stored));
  task.final_output = result.final_output;
  task.replaced = true;
  row.op_type = result.ops.size() == 1 ? result.ops[0].type
                                        : absl::StrCat(result.ops[0].type, " -> ", result.ops.back().type);
  row.technique = result.technique;
  row.params = result.params;
  row.bytes_after = stored;
  row.error = computed.error;
  row.sparsity = computed.sparsity;
  row.distinct_values = computed.distinct;
  ++report_.weights_compressed;
  if (task.in_blob) --remaining_refs_[{task.file_name, task.offset}];
  return absl::OkStatus();
}

absl::Status MlProgramCompressor::Drain(size_t keep, JobControl* control) {
  while (pending_.size() > keep) {
    Pending& p = *pending_.front();
    for (const auto& slot : p.slots) {
      if (slot->task->same_as != nullptr) {
        // Applied after the task it shares with (same blob, earlier slot).
        RETURN_IF_ERROR(CopyOutcome(*slot->task));
        continue;
      }
      slot->done.WaitForNotification();
      ReportProgress(*slot->task, control);
      RETURN_IF_ERROR(Apply(*slot->task, std::move(slot->computed), control));
    }
    ++bytes_done_;
    if (remaining_refs_[p.key] > 0) {
      ASSIGN_OR_RETURN(uint64_t offset, WriteKeptBlob(p.key, p.meta, *p.data));
      new_offsets_[p.key] = offset;
    }
    if (!p.slots.empty()) pending_elements_ -= p.meta.element_count();
    pending_.pop_front();
    if (control && control->Cancelled()) return control->StopStatus();
  }
  return absl::OkStatus();
}

absl::Status MlProgramCompressor::MakeRoomFor(uint64_t elements, JobControl* control) {
  if (pending_element_limit_ == 0) {
    for (const auto& task : tasks_) {
      auto count = format::ElementCount(task->weight.shape);
      if (count.ok()) pending_element_limit_ = std::max<uint64_t>(pending_element_limit_, *count);
    }
  }
  while (!pending_.empty() && pending_elements_ + elements > pending_element_limit_) {
    RETURN_IF_ERROR(Drain(pending_.size() - 1, control));
  }
  return absl::OkStatus();
}

std::string MlProgramCompressor::BlobOwner(const std::string& file_name, uint64_t offset) const {
  auto it = blob_owners_.find({file_name, offset});
  return it == blob_owners_.end() ? std::string() : it->second;
}

absl::StatusOr<uint64_t> MlProgramCompressor::WriteKeptBlob(const std::pair<std::string, uint64_t>& key,
                                                           const format::BlobMetadata& meta, absl::string_view data) {
  // Blobs kept as they were follow the same sharing rule as new ones
  // (what Core ML tools' save does); the shape is the one the program
  // declares, when every reference agrees on it.
  const std::vector<DeclaredBlob>* declared = nullptr;
  if (auto it = blob_declared_.find(key); it != blob_declared_.end() && !it->second.empty()) declared = &it->second;
  bool one_shape = declared != nullptr;
  for (size_t i = 1; one_shape && i < declared->size(); ++i) one_shape = (*declared)[i].shape == (*declared)[0].shape;
  uint64_t offset = 0;
  if (one_shape) {
    ASSIGN_OR_RETURN(offset, WriteBlob(writer_.get(), meta.type, data, meta.element_count(), (*declared)[0].shape));
  } else {
    ASSIGN_OR_RETURN(offset, writer_->Append(meta.type, data, meta.element_count()));
  }
  return offset;
}

absl::Status MlProgramCompressor::OnBlob(const format::BlobMetadata& meta, absl::string_view data, JobControl* control) {
  if (!writer_) return absl::FailedPreconditionError("OnBlob before BeginWeightFile");
  if (control && control->Cancelled()) return control->StopStatus();
  const auto key = std::make_pair(current_file_, meta.offset);
  if (auto declared = blob_declared_.find(key); declared != blob_declared_.end()) {
    for (const DeclaredBlob& d : declared->second) {
      auto count = format::ElementCount(d.shape);
      if (meta.type != d.type || !count.ok() || meta.element_count() != *count) {
        return absl::InvalidArgumentError(absl::StrCat(
            current_file_, " at offset ", meta.offset, ": \"", d.owner, "\" declares ",
            format::ElementTypeName(d.type), format::ShapeString(d.shape), " but the blob holds ",
            meta.element_count(), " ", format::ElementTypeName(meta.type), " elements"));
      }
    }
  }
  auto tasks = tasks_by_blob_.find(key);
  if (pool_ && (tasks != tasks_by_blob_.end() || !pending_.empty())) {
    drain_control_ = control;
    // Compressed on the pool; finished (and written) in arrival order by
    // Drain, at most `threads` blobs behind (each holds its stored bytes and,
    // until drained, its packed result).
    if (tasks != tasks_by_blob_.end()) RETURN_IF_ERROR(MakeRoomFor(meta.element_count(), control));
    auto p = std::make_unique<Pending>();
    p->key = key;
    p->meta = meta;
    p->data = std::make_shared<const std::string>(data);
    if (tasks != tasks_by_blob_.end()) {
      pending_elements_ += meta.element_count();
      for (Task* task : tasks->second) {
        auto slot = std::make_shared<Pending::Slot>();
        slot->task = task;
        p->slots.push_back(slot);
        if (task->same_as != nullptr) continue;  // nothing to compute: Drain copies the outcome
        pool_->Submit([slot, data = p->data, meta, target = target_, control, parallel = parallel_] {
          slot->computed =
              Compute(*slot->task, FlatView(meta.type, *data, meta.element_count()), target, control, parallel);
          slot->done.Notify();
        });
      }
    }
    pending_.push_back(std::move(p));
    return Drain(static_cast<size_t>(threads_), control);
  }
  if (tasks != tasks_by_blob_.end()) {
    // Replacements are written where the original blob was, so the output
    // keeps the program's order; the original follows only if something
    // still reads it (a skipped weight, or a blob shared with another op).
    for (Task* task : tasks->second) {
      if (task->same_as != nullptr) {
        RETURN_IF_ERROR(CopyOutcome(*task));
        continue;
      }
      RETURN_IF_ERROR(RunTask(*task, FlatView(meta.type, data, meta.element_count()), control));
      if (control && control->Cancelled()) return control->StopStatus();
    }
  }
  ++bytes_done_;
  if (remaining_refs_[key] > 0) {
    ASSIGN_OR_RETURN(uint64_t offset, WriteKeptBlob(key, meta, data));
    new_offsets_[key] = offset;
  }
  return absl::OkStatus();
}

absl::Status MlProgramCompressor::FinishWeightFile() {
  if (!writer_) return absl::FailedPreconditionError("no weight file is open");
  RETURN_IF_ERROR(Drain(0, drain_control_));
  if (current_file_ == kDefaultWeightFile) {
    for (auto& task : tasks_) {
      if (task->in_blob || task->done) continue;
      if (task->same_as != nullptr) {
        RETURN_IF_ERROR(CopyOutcome(*task));
        continue;
      }
      const format::Tensor& t = *task->immediate;
      RETURN_IF_ERROR(RunTask(*task, FlatView(t.type, t.bytes, t.element_count()), nullptr));
    }
  }
  RETURN_IF_ERROR(writer_->Finish());
  writer_.reset();
  sink_ = nullptr;
  return absl::OkStatus();
}

absl::StatusOr<std::string> MlProgramCompressor::FinishModel() {
  for (const auto& task : tasks_) {
    if (!task->done) {
      return absl::FailedPreconditionError(absl::StrCat("weight \"", task->weight.name,
                                                        "\" was never processed: its blob did not arrive"));
    }
  }
  // Consumers read the replacement ops' final outputs.
  std::map<std::string, std::map<std::string, std::string>> rename;  // function -> old -> new
  std::map<std::pair<std::string, std::string>, Task*> replaced;     // (function, const name) -> task
  for (const auto& task : tasks_) {
    if (!task->replaced) continue;
    rename[task->function][task->weight.name] = task->final_output;
    replaced[{task->function, task->weight.name}] = task.get();
  }
  mil::Program& program = *model_.mutable_mlprogram();
  RETURN_IF_ERROR(format::ForEachBlock(&program, [&](mil::Block* block, const format::BlockContext& ctx) -> absl::Status {
    const auto& names = rename[ctx.function];
    google::protobuf::RepeatedPtrField<mil::Operation> ops;
    for (mil::Operation& op : *block->mutable_operations()) {
      if (op.type() == "const" && op.outputs_size() == 1) {
        auto it = replaced.find({ctx.function, op.outputs(0).name()});
        if (it != replaced.end()) {
          for (const mil::Operation& new_op : it->second->ops) *ops.Add() = new_op;
          continue;
        }
      }
      ForEachValue(op, [&](const std::string&, mil::Value& v) {
        if (!v.has_blobfilevalue()) return;
        auto moved = new_offsets_.find({v.blobfilevalue().filename(), v.blobfilevalue().offset()});
        if (moved != new_offsets_.end()) v.mutable_blobfilevalue()->set_offset(moved->second);
      });
      for (auto& [input, arg] : *op.mutable_inputs()) {
        for (auto& b : *arg.mutable_arguments()) {
          if (b.binding_case() != mil::Argument::Binding::kName) continue;
          auto r = names.find(b.name());
          if (r != names.end()) b.set_name(r->second);
        }
      }
      *ops.Add() = std::move(op);
    }
    block->mutable_operations()->Swap(&ops);
    for (std::string& out : *block->mutable_outputs()) {
      auto r = names.find(out);
      if (r != names.end()) out = r->second;
    }
    return absl::OkStatus();
  }));
  // The version rises only as far as the ops written need: a model in which
  // nothing was compressed keeps its own.
  const bool emitted = std::any_of(tasks_.begin(), tasks_.end(), [](const auto& t) { return t->replaced; });
  const Target final_target = emitted || target_asked_ ? target_ : model_target_;
  report_.target = TargetName(final_target);
  report_.spec_version_after = final_target == model_target_ ? model_.specificationversion() : SpecVersion(final_target);
  if (bump_opset_ && final_target != model_target_) {
    model_.set_specificationversion(SpecVersion(Target::kIOS16));
    for (auto& [name, f] : *program.mutable_functions()) {
      if (f.opset() == "CoreML5") f.set_opset("CoreML6");
      auto& blocks = *f.mutable_block_specializations();
      auto it = blocks.find("CoreML5");
      if (it != blocks.end()) {
        mil::Block b = std::move(it->second);
        blocks.erase(it);
        blocks["CoreML6"] = std::move(b);
      }
    }
  }
  return format::SerializeModelSpec(model_);
}

}  // namespace coremlz::engine
