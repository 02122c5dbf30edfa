// Linear quantization of a weight: the block plan, the kernel, and the ops
// of each target generation.
#include <optional>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "compress/block_grid.h"
#include "compress/linear_quantize.h"
#include "engine/coded_values.h"
#include "engine/param_tensors.h"
#include "engine/weight_technique.h"

namespace coremlz::engine {
namespace {
using format::ElementType;
using format::Shape;
using format::Tensor;

struct QuantPlan {
  std::vector<int64_t> block_sizes;
  bool per_block = false;
};

// Block sizes per axis, as Core ML tools derive them from the granularity
// and the consumers' channel axes. nullopt + reason: skip.
absl::StatusOr<std::optional<QuantPlan>> PlanQuantization(const WeightTask& task, const LinearQuantizerConfig& c,
                                                          std::string* reason) {
  const size_t rank = task.shape.size();
  QuantPlan plan;
  plan.block_sizes.assign(rank, 0);
  if (c.granularity == Granularity::kPerBlock && c.block_size_per_axis) {
    if (c.block_size.size() != rank) {
      return absl::InvalidArgumentError(absl::StrCat("weight \"", task.name, "\": block_size has ", c.block_size.size(),
                                                     " entries; the ", rank, "-D weight needs one per axis"));
    }
    plan.block_sizes = c.block_size;
    plan.per_block = true;
    for (size_t a = 0; a < rank; ++a) {
      const int64_t b = plan.block_sizes[a];
      if (b > 0 && task.shape[a] % b != 0) {
        *reason = absl::StrCat("axis ", a, " (size ", task.shape[a], ") is not divisible by block size ", b);
        return std::optional<QuantPlan>();
      }
    }
    return std::optional<QuantPlan>(plan);
  }
  if (task.out_axis < 0 || task.in_axis < 0) {
    *reason = "the consumers disagree on the channel axes";
    return std::optional<QuantPlan>();
  }
  if (c.granularity == Granularity::kPerChannel) {
    plan.block_sizes[task.out_axis] = 1;
  } else if (c.granularity == Granularity::kPerBlock) {
    plan.block_sizes[task.out_axis] = 1;
    if (static_cast<size_t>(task.in_axis) < rank) plan.block_sizes[task.in_axis] = c.block_size[0];
    plan.per_block = true;
  }
  for (size_t a = 0; a < rank; ++a) {
    const int64_t b = plan.block_sizes[a];
    if (b > 0 && task.shape[a] % b != 0) {
      *reason = absl::StrCat("axis ", a, " (size ", task.shape[a], ") is not divisible by block size ", b);
      return std::optional<QuantPlan>();
    }
  }
  return std::optional<QuantPlan>(plan);
}

ElementType QuantDataType(const LinearQuantizerConfig& c) {
  if (c.bits == 4) return c.is_signed ? ElementType::kInt4 : ElementType::kUInt4;
  return c.is_signed ? ElementType::kInt8 : ElementType::kUInt8;
}

// iOS18, after pruning: the sparse op carries the surviving codes; the dense
// op keeps reading the same mask blob, as Core ML tools wire it.
void EmitSparseShiftScale(const WeightTask& task, ElementType data_type, const std::vector<uint8_t>& codes,
                          const Tensor& scale, const std::optional<Tensor>& offset, const Sparse& sparse,
                          WeightResult* r) {
  const std::string base = task.name + "_sparsified_nonzero_data_0_quantized";
  OpSpec op;
  op.type = "constexpr_sparse_blockwise_shift_scale";
  op.name = base;
  const std::vector<uint8_t> nz = Gather(codes, sparse.mask);
  op.params.push_back({"data_mask", CodesTensor(ElementType::kUInt1, task.shape, sparse.mask)});
  op.params.push_back({"nonzero_data", CodesTensor(data_type, {static_cast<int64_t>(nz.size())}, nz)});
  op.params.push_back({"scale", scale});
  if (offset) op.params.push_back({"offset", *offset});
  op.outputs.push_back({base + "_0", ElementType::kUInt1, task.shape});
  op.outputs.push_back({base + "_1", task.dtype, {static_cast<int64_t>(nz.size())}});
  ParamSpec mask;
  mask.share_op = 0;  // the same blob as the first op's data_mask
  mask.share_param = "data_mask";
  OpSpec dense = JointSparseToDense(task, base, mask);
  r->final_output = dense.name;
  SetOps(r, std::move(op), std::move(dense));
}

// iOS18: codes with a scale (and offset) per block.
void EmitBlockwiseShiftScale(const WeightTask& task, Tensor data, const Tensor& scale,
                             const std::optional<Tensor>& offset, WeightResult* r) {
  OpSpec op;
  op.type = "constexpr_blockwise_shift_scale";
  op.name = task.name + "_quantized";
  op.outputs.push_back({op.name, task.dtype, task.shape});
  op.params.push_back({"data", std::move(data)});
  op.params.push_back({"scale", scale});
  if (offset) op.params.push_back({"offset", *offset});
  r->final_output = op.name;
  SetOps(r, std::move(op));
}

// iOS16: scale and zero point squeezed to a scalar or a vector along the
// first axis with more than one block.
absl::Status EmitAffineDequantize(const WeightTask& task, Target target, Tensor data, Tensor scale,
                                  const Shape& grid_shape, const compress::LinearQuantized& q, ElementType data_type,
                                  WeightResult* r) {
  OpSpec op;
  op.type = "constexpr_affine_dequantize";
  op.name = task.name + "_quantized";
  op.outputs.push_back({op.name, task.dtype, task.shape});
  op.params_as_attributes = true;
  int axis = 0;
  int non_single = 0;
  for (size_t a = 0; a < grid_shape.size(); ++a) {
    if (grid_shape[a] > 1) {
      if (non_single++ == 0) axis = static_cast<int>(a);
    }
  }
  if (non_single > 1) return Unsupported(task, target, "quantization with blocks on several axes");
  const Shape squeezed = non_single == 0 ? Shape{} : Shape{grid_shape[axis]};
  scale.shape = squeezed;
  std::vector<uint8_t> zp(q.scale.size(), 0);
  if (!q.zero_point.empty()) {
    for (size_t i = 0; i < zp.size(); ++i) zp[i] = static_cast<uint8_t>(q.zero_point[i]);
  }
  op.params.push_back({"quantized_data", std::move(data)});
  op.params.push_back({"zero_point", CodesTensor(data_type, squeezed, zp)});
  op.params.push_back({"scale", std::move(scale)});
  op.params.push_back({"axis", Int32Scalar(axis)});
  r->final_output = op.name;
  SetOps(r, std::move(op));
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<WeightResult> Quantize(const WeightTask& task, std::vector<float> values, const LinearQuantizerConfig& c,
                                      Target target, const Sparse* sparse, compress::CancelCheck* cancel) {
  std::string reason;
  ASSIGN_OR_RETURN(std::optional<QuantPlan> plan, PlanQuantization(task, c, &reason));
  if (!plan) return Skip(reason);
  if (!HasIos18Ops(target)) {
    if (c.bits == 4) return Unsupported(task, target, "4-bit quantization");
    if (plan->per_block) return Unsupported(task, target, "per_block quantization");
  }
  ASSIGN_OR_RETURN(compress::BlockGrid grid, compress::BlockGrid::Make(task.shape, plan->block_sizes));
  compress::LinearQuantizeOptions qo;
  qo.bits = c.bits;
  qo.is_signed = c.is_signed;
  qo.symmetric = c.symmetric;
  qo.precision = PrecisionOf(task.dtype);
  qo.cancel = cancel;
  ASSIGN_OR_RETURN(compress::LinearQuantized q, compress::LinearQuantize(values, grid, qo));

  WeightResult r;
  r.technique = sparse ? "prune+linear_quantize" : "linear_quantize";
  r.reconstructed = std::move(values);
  compress::LinearDequantize(q, grid, qo.precision, absl::MakeSpan(r.reconstructed));
  const ElementType data_type = QuantDataType(c);
  const Shape& grid_shape = grid.grid_shape();
  Tensor scale = MakeFloatTensor(task.dtype, grid_shape, q.scale);
  std::optional<Tensor> offset;
  if (!q.zero_point.empty()) {
    std::vector<uint8_t> zp(q.zero_point.size());
    for (size_t i = 0; i < zp.size(); ++i) zp[i] = static_cast<uint8_t>(q.zero_point[i]) & ((1u << c.bits) - 1u);
    offset = CodesTensor(data_type, grid_shape, zp);
  }

  if (sparse) {
    for (size_t i = 0; i < r.reconstructed.size(); ++i) {
      r.reconstructed[i] = sparse->mask[i] ? r.reconstructed[i] : 0.0f;
    }
  }
  // Each value is its block's scale and offset applied to its code. fp32
  // only: the distinct count of fp16 values is a 65536-bit set already.
  if (task.dtype == ElementType::kFloat32) {
    r.value_set = CodedValues(r.reconstructed, q.codes, c.bits, sparse ? &sparse->mask : nullptr,
                              [&](auto&& run) { grid.ForEachRun(run); });
  }
  if (sparse) {
    EmitSparseShiftScale(task, data_type, q.codes, scale, offset, *sparse, &r);
    return r;
  }
  Tensor data = CodesTensor(data_type, task.shape, q.codes);
  if (HasIos18Ops(target)) {
    EmitBlockwiseShiftScale(task, std::move(data), scale, offset, &r);
  } else {
    RETURN_IF_ERROR(EmitAffineDequantize(task, target, std::move(data), std::move(scale), grid_shape, q, data_type, &r));
  }
  return r;
}

}  // namespace coremlz::engine
