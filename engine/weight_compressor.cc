#include "engine/weight_compressor.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/byte_order.h"
#include "common/status_macros.h"
#include "compress/block_grid.h"
#include "compress/linear_quantize.h"
#include "compress/palettize.h"
#include "compress/prune.h"
#include "compress/reduce.h"
#include "engine/config_names.h"
#include "format/fp16.h"
#include "format/sub_byte.h"

namespace coremlz::engine {
namespace {

using compress::Precision;
using format::ElementType;
using format::Shape;
using format::Tensor;

format::ElementType UIntType(int bits) {
  switch (bits) {
    case 1: return ElementType::kUInt1;
    case 2: return ElementType::kUInt2;
    case 3: return ElementType::kUInt3;
    case 4: return ElementType::kUInt4;
    case 6: return ElementType::kUInt6;
    default: return ElementType::kUInt8;
  }
}

Tensor CodesTensor(ElementType type, Shape shape, absl::Span<const uint8_t> codes) {
  Tensor t;
  t.type = type;
  t.shape = std::move(shape);
  const int bits = format::BitWidth(type);
  t.bytes = bits == 8 ? std::string(reinterpret_cast<const char*>(codes.data()), codes.size()) : format::PackBits(codes, bits);
  return t;
}

// Moves the ops into the result (tensors hold megabytes; never copy them).
template <typename... Ops>
void SetOps(WeightResult* r, Ops&&... ops) {
  r->ops.clear();
  (r->ops.push_back(std::forward<Ops>(ops)), ...);
}

Tensor Int32Scalar(int32_t v) {
  Tensor t;
  t.type = ElementType::kInt32;
  t.bytes.resize(4);
  std::memcpy(t.bytes.data(), &v, 4);
  return t;
}

Tensor ShapeTensor(const Shape& shape) {
  Tensor t;
  t.type = ElementType::kUInt32;
  t.shape = {static_cast<int64_t>(shape.size())};
  for (int64_t d : shape) {
    uint32_t u = static_cast<uint32_t>(d);
    t.bytes.append(reinterpret_cast<const char*>(&u), 4);
  }
  return t;
}

Precision PrecisionOf(ElementType t) { return t == ElementType::kFloat16 ? Precision::kFloat16 : Precision::kFloat32; }

absl::Status Unsupported(const WeightTask& task, Target target, absl::string_view what, absl::string_view needs = "iOS18") {
  return absl::FailedPreconditionError(absl::StrCat(
      "weight \"", task.name, "\": ", what, " needs ", needs, " (specification version 9) but the model targets ",
      TargetName(target), "; re-convert the model with minimum_deployment_target=", needs, " or choose another technique"));
}

// A result that leaves the weight as it is.
WeightResult Skip(std::string reason) {
  WeightResult r;
  r.technique = "none";
  r.skipped_reason = std::move(reason);
  return r;
}

int NormalizeAxis(int axis, size_t rank) { return axis < 0 ? axis + static_cast<int>(rank) : axis; }

// --- linear quantization ---------------------------------------------------

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

// --- palettization ---------------------------------------------------------

absl::StatusOr<std::optional<compress::PalettizeOptions>> PlanPalettization(const WeightTask& task, const PalettizerConfig& c,
                                                                             Target target, std::string* reason) {
  const size_t rank = task.shape.size();
  compress::PalettizeOptions o;
  o.mode = ToPaletteMode(c.mode);
  o.bits = c.nbits.value_or(0);
  o.cluster_dim = c.cluster_dim;
  o.per_channel_scale = c.enable_per_channel_scale;
  o.custom_palette = c.lut;
  o.precision = PrecisionOf(task.dtype);
  o.allow_3_bits = HasIos18Ops(target);
  const bool grouped = c.granularity == Granularity::kPerGroupedChannel;
  if (!HasIos18Ops(target)) {
    if (grouped) return Unsupported(task, target, "per_grouped_channel palettization");
    if (c.cluster_dim > 1) return Unsupported(task, target, "vector palettization (cluster_dim > 1)");
    if (c.enable_per_channel_scale) return Unsupported(task, target, "palettization with per-channel scale");
    if (c.nbits == 3) return Unsupported(task, target, "3-bit palettization");
    if (c.mode == PalettizerConfig::Mode::kCustom && c.lut.size() / c.cluster_dim == 8) return Unsupported(task, target, "an 8-entry (3-bit) palette");
  }
  int axis = task.out_axis;
  if (grouped && c.channel_axis) axis = NormalizeAxis(*c.channel_axis, rank);
  const bool needs_axis = grouped || c.cluster_dim > 1 || c.enable_per_channel_scale;
  if (axis < 0 || axis >= static_cast<int>(rank)) {
    if (needs_axis) {
      *reason = "cannot infer the channel axis from the consumers";
      return std::optional<compress::PalettizeOptions>();
    }
    axis = 0;
  }
  o.channel_axis = axis;
  o.group_size = grouped ? c.group_size : 0;
  if (c.cluster_dim > 1) {
    // Grouped convolutions split the output channels; vectors must not cross groups.
    for (const ConsumerInfo& ci : task.consumers) {
      if ((ci.op_type == "conv" || ci.op_type == "conv_transpose") && ci.conv_groups > 1) {
        const int64_t per_group = task.shape[0] / ci.conv_groups;
        const int64_t dim = axis == 0 ? per_group : task.shape[axis];
        if (dim % c.cluster_dim != 0) {
          *reason = absl::StrCat("cluster_dim ", c.cluster_dim, " does not divide ", dim, " channels per conv group");
          return std::optional<compress::PalettizeOptions>();
        }
      }
    }
  }
  return std::optional<compress::PalettizeOptions>(o);
}

// --- pruning ---------------------------------------------------------------

// Prunes `values` in place. Returns a skip reason, or "" when pruned.
absl::StatusOr<std::string> Prune(const WeightTask& task, const OpConfig& config, std::vector<float>* values,
                                  compress::CancelCheck* cancel) {
  absl::Status s;
  if (auto* t = std::get_if<ThresholdPrunerConfig>(&config)) {
    s = compress::ThresholdPrune(absl::MakeSpan(*values), t->threshold, t->minimum_sparsity_percentile, PrecisionOf(task.dtype));
  } else if (auto* m = std::get_if<MagnitudePrunerConfig>(&config)) {
    const Precision p = PrecisionOf(task.dtype);
    const bool structural = m->block_size || m->n_m_ratio;
    if (structural) {
      for (const ConsumerInfo& ci : task.consumers) {
        if (!((ci.op_type == "conv" || ci.op_type == "linear") && ci.input == "weight")) {
          return std::string(absl::StrCat("block and n:m sparsity apply only to conv and linear weights (feeds ",
                                          ci.op_type, ".", ci.input, ")"));
        }
      }
    }
    if (m->n_m_ratio) {
      s = compress::NMPrune(absl::MakeSpan(*values), task.shape, m->n_m_ratio->first, m->n_m_ratio->second,
                            m->dim.value_or(1), cancel);
    } else if (m->block_size) {
      s = compress::BlockMagnitudePrune(absl::MakeSpan(*values), task.shape, *m->block_size, m->dim.value_or(0),
                                        *m->target_sparsity, p, cancel);
    } else {
      s = compress::MagnitudePrune(absl::MakeSpan(*values), *m->target_sparsity, p, cancel);
    }
  } else {
    return absl::InternalError("not a pruning config");
  }
  if (s.code() == absl::StatusCode::kFailedPrecondition) return std::string(s.message());
  if (!s.ok()) return absl::Status(s.code(), absl::StrCat("weight \"", task.name, "\": ", s.message()));
  return std::string();
}

struct Sparse {
  std::vector<uint8_t> mask;  // 1 = kept (non-zero)
  std::vector<float> nonzero;
};

Sparse SparseOf(const std::vector<float>& values) {
  Sparse s;
  s.mask.resize(values.size());
  size_t kept = 0;
  for (size_t i = 0; i < values.size(); ++i) {
    s.mask[i] = values[i] != 0.0f;
    kept += s.mask[i];
  }
  // Branch-free compaction: pruned weights are zero at random positions,
  // which a branch predicts badly. Always store, advance only past kept ones.
  s.nonzero.resize(kept + 1);
  size_t k = 0;
  for (size_t i = 0; i < values.size(); ++i) {
    s.nonzero[k] = values[i];
    k += s.mask[i];
  }
  s.nonzero.resize(kept);
  return s;
}

Tensor MaskTensor(const Sparse& s, const Shape& shape, Target target) {
  if (HasIos18Ops(target)) return CodesTensor(ElementType::kUInt1, shape, s.mask);
  // iOS16: LSB-first packed bytes in a uint8 vector.
  Tensor t;
  t.type = ElementType::kUInt8;
  t.bytes = format::PackBits(s.mask, 1);
  t.shape = {static_cast<int64_t>(t.bytes.size())};
  return t;
}

OpSpec SparseToDense(const WeightTask& task, Target target, const Sparse& s) {
  OpSpec op;
  op.type = "constexpr_sparse_to_dense";
  op.name = task.name + "_sparsified";
  op.params_as_attributes = !HasIos18Ops(target);
  op.params.push_back({"nonzero_data", MakeFloatTensor(task.dtype, {static_cast<int64_t>(s.nonzero.size())}, s.nonzero)});
  op.params.push_back({"mask", MaskTensor(s, task.shape, target)});
  if (!HasIos18Ops(target)) op.params.push_back({"shape", ShapeTensor(task.shape)});
  op.outputs.push_back({op.name, task.dtype, task.shape});
  return op;
}

std::vector<uint8_t> Gather(const std::vector<uint8_t>& codes, const std::vector<uint8_t>& mask) {
  std::vector<uint8_t> out(codes.size() + 1);
  size_t k = 0;
  for (size_t i = 0; i < codes.size(); ++i) {  // branch-free, as in SparseOf
    out[k] = codes[i];
    k += mask[i] != 0;
  }
  out.resize(k);
  return out;
}

// --- emission of each technique -------------------------------------------

// `values` is taken by value: its buffer becomes the reconstruction.
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
    // Joint: the sparse op carries the surviving codes; the dense op keeps
    // reading the same mask blob, as Core ML tools wire it.
    for (size_t i = 0; i < r.reconstructed.size(); ++i) {
      r.reconstructed[i] = sparse->mask[i] ? r.reconstructed[i] : 0.0f;
    }
    const std::string base = task.name + "_sparsified_nonzero_data_0_quantized";
    OpSpec op;
    op.type = "constexpr_sparse_blockwise_shift_scale";
    op.name = base;
    const std::vector<uint8_t> nz = Gather(q.codes, sparse->mask);
    op.params.push_back({"data_mask", CodesTensor(ElementType::kUInt1, task.shape, sparse->mask)});
    op.params.push_back({"nonzero_data", CodesTensor(data_type, {static_cast<int64_t>(nz.size())}, nz)});
    op.params.push_back({"scale", scale});
    if (offset) op.params.push_back({"offset", *offset});
    op.outputs.push_back({base + "_0", ElementType::kUInt1, task.shape});
    op.outputs.push_back({base + "_1", task.dtype, {static_cast<int64_t>(nz.size())}});
    OpSpec dense;
    dense.type = "constexpr_sparse_to_dense";
    dense.name = task.name + "_sparsified";
    ParamSpec nz_param;
    nz_param.name = "nonzero_data";
    nz_param.bound_name = base + "_1";
    ParamSpec mask_param;
    mask_param.name = "mask";
    mask_param.share_op = 0;
    mask_param.share_param = "data_mask";
    dense.params = {nz_param, mask_param};
    dense.outputs.push_back({dense.name, task.dtype, task.shape});
    r.final_output = dense.name;
    SetOps(&r, std::move(op), std::move(dense));
    return r;
  }

  OpSpec op;
  op.name = task.name + "_quantized";
  op.outputs.push_back({op.name, task.dtype, task.shape});
  Tensor data = CodesTensor(data_type, task.shape, q.codes);
  if (HasIos18Ops(target)) {
    op.type = "constexpr_blockwise_shift_scale";
    op.params.push_back({"data", std::move(data)});
    op.params.push_back({"scale", scale});
    if (offset) op.params.push_back({"offset", *offset});
  } else {
    // iOS16 form: scale and zero point squeezed to a scalar or a vector along
    // the first axis with more than one block.
    op.type = "constexpr_affine_dequantize";
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
    op.params.push_back({"scale", scale});
    op.params.push_back({"axis", Int32Scalar(axis)});
  }
  r.final_output = op.name;
  SetOps(&r, std::move(op));
  return r;
}

// Repeats `lut` (rank R+2) along every leading axis where `shape` is larger.
Tensor RepeatLut(const std::vector<float>& lut, const Shape& lut_shape, const Shape& target_shape, ElementType dtype) {
  const size_t rank = lut_shape.size();
  std::vector<int64_t> src_stride(rank, 1), dst_stride(rank, 1);
  for (size_t a = rank - 1; a > 0; --a) {
    src_stride[a - 1] = src_stride[a] * lut_shape[a];
    dst_stride[a - 1] = dst_stride[a] * target_shape[a];
  }
  int64_t n = 1;
  for (int64_t d : target_shape) n *= d;
  std::vector<float> out(n);
  for (int64_t e = 0; e < n; ++e) {
    int64_t src = 0;
    for (size_t a = 0; a < rank; ++a) {
      const int64_t c = (e / dst_stride[a]) % target_shape[a];
      src += (lut_shape[a] == 1 ? 0 : c) * src_stride[a];
    }
    out[e] = lut[src];
  }
  return MakeFloatTensor(dtype, target_shape, out);
}

// `values` is taken by value: its buffer becomes the reconstruction.
absl::StatusOr<WeightResult> Palettize(const WeightTask& task, std::vector<float> values, const PalettizerConfig& c,
                                       Target target, const Sparse* sparse, compress::CancelCheck* cancel) {
  std::string reason;
  ASSIGN_OR_RETURN(std::optional<compress::PalettizeOptions> plan, PlanPalettization(task, c, target, &reason));
  if (!plan) return Skip(reason);
  plan->cancel = cancel;
  if (c.mode == PalettizerConfig::Mode::kCustom && task.dtype == ElementType::kFloat16) {
    // The palette is stored in the weight's dtype: an entry beyond fp16's
    // range would be an infinity in the model.
    for (size_t i = 0; i < c.lut.size(); ++i) {
      if (!std::isfinite(format::HalfToFloat(format::FloatToHalf(c.lut[i])))) {
        return absl::InvalidArgumentError(absl::StrCat(
            "weight \"", task.name, "\": \"lut\"[", i, "] = ", c.lut[i], " of OpPalettizerConfig from ",
            sparse ? task.joint_source : task.primary_source,
            " is beyond the range of the weight's fp16 palette (+-65504); it would be stored as infinity"));
      }
    }
  }
  if (sparse && (c.cluster_dim > 1 || c.enable_per_channel_scale)) {
    return absl::FailedPreconditionError(absl::StrCat("weight \"", task.name,
                                                      "\": pruning can be combined only with scalar palettization "
                                                      "without per-channel scale"));
  }
  auto p = compress::Palettize(values, task.shape, *plan);
  if (p.status().code() == absl::StatusCode::kFailedPrecondition) return Skip(std::string(p.status().message()));
  if (!p.ok()) return absl::Status(p.status().code(), absl::StrCat("weight \"", task.name, "\": ", p.status().message()));

  WeightResult r;
  r.technique = sparse ? "prune+palettize" : "palettize";
  r.reconstructed = std::move(values);
  RETURN_IF_ERROR(compress::Depalettize(*p, task.shape, PrecisionOf(task.dtype), absl::MakeSpan(r.reconstructed)));
  if (c.mode == PalettizerConfig::Mode::kUnique) absl::StrAppend(&r.params, "nbits=", p->bits, " (inferred)");
  const ElementType index_type = UIntType(p->bits);
  const Tensor lut = MakeFloatTensor(task.dtype, p->lut_shape, p->lut);
  std::optional<Tensor> vector_axis;
  if (p->vector_axis) vector_axis = Int32Scalar(*p->vector_axis);

  if (sparse) {
    for (size_t i = 0; i < r.reconstructed.size(); ++i) {
      r.reconstructed[i] = sparse->mask[i] ? r.reconstructed[i] : 0.0f;
    }
    const std::string base = task.name + "_sparsified_nonzero_data_0_palettized";
    const std::vector<uint8_t> nz = Gather(p->indices, sparse->mask);
    OpSpec op;
    op.type = "constexpr_lut_to_sparse";
    op.name = base;
    op.params.push_back({"indices_mask", CodesTensor(ElementType::kUInt1, task.shape, sparse->mask)});
    op.params.push_back({"indices_nonzero_data", CodesTensor(index_type, {static_cast<int64_t>(nz.size())}, nz)});
    op.params.push_back({"lut", lut});
    op.outputs.push_back({base + "_0", ElementType::kUInt1, task.shape});
    op.outputs.push_back({base + "_1", task.dtype, {static_cast<int64_t>(nz.size())}});
    OpSpec dense;
    dense.type = "constexpr_sparse_to_dense";
    dense.name = task.name + "_sparsified";
    ParamSpec nz_param;
    nz_param.name = "nonzero_data";
    nz_param.bound_name = base + "_1";
    ParamSpec mask_param;
    mask_param.name = "mask";
    mask_param.bound_name = base + "_0";
    dense.params = {nz_param, mask_param};
    dense.outputs.push_back({dense.name, task.dtype, task.shape});
    r.final_output = dense.name;
    SetOps(&r, std::move(op), std::move(dense));
    return r;
  }

  if (!HasIos18Ops(target)) {
    OpSpec op;
    op.type = "constexpr_lut_to_dense";
    op.name = task.name + "_palettized";
    op.params_as_attributes = true;
    Tensor packed;
    packed.type = ElementType::kUInt8;
    packed.bytes = format::PackBits(p->indices, p->bits);
    packed.shape = {static_cast<int64_t>(packed.bytes.size())};
    Tensor flat_lut = lut;
    flat_lut.shape = {int64_t{1} << p->bits};
    op.params.push_back({"indices", std::move(packed)});
    op.params.push_back({"lut", std::move(flat_lut)});
    op.params.push_back({"shape", ShapeTensor(task.shape)});
    op.outputs.push_back({op.name, task.dtype, task.shape});
    r.final_output = op.name;
    SetOps(&r, std::move(op));
    return r;
  }

  Tensor indices = CodesTensor(index_type, p->indices_shape, p->indices);
  if (p->scale.empty()) {
    OpSpec op;
    op.type = "constexpr_lut_to_dense";
    op.name = task.name + "_palettized";
    op.params.push_back({"indices", std::move(indices)});
    op.params.push_back({"lut", lut});
    if (vector_axis) op.params.push_back({"vector_axis", *vector_axis});
    op.outputs.push_back({op.name, task.dtype, task.shape});
    r.final_output = op.name;
    SetOps(&r, std::move(op));
    return r;
  }

  // Per-channel scale. Below iOS26 Core ML tools scale the palette first
  // (the LUT repeated to the scale's extent), then look it up; from iOS26
  // they look up, then scale the dense tensor.
  const std::string first = task.name + "_palettized";
  const std::string second = task.name + "_palettized_pcs";
  Shape scale_shape = p->scale_shape;
  if (target < Target::kIOS26) {
    Shape lut_scale_shape = scale_shape;
    lut_scale_shape.push_back(1);
    lut_scale_shape.push_back(1);
    Shape repeated = p->lut_shape;
    for (size_t a = 0; a < scale_shape.size(); ++a) repeated[a] = std::max(repeated[a], lut_scale_shape[a]);
    OpSpec scale_op;
    scale_op.type = "constexpr_blockwise_shift_scale";
    scale_op.name = first;
    scale_op.params.push_back({"data", RepeatLut(p->lut, p->lut_shape, repeated, task.dtype)});
    scale_op.params.push_back({"scale", MakeFloatTensor(task.dtype, lut_scale_shape, p->scale)});
    scale_op.outputs.push_back({first, task.dtype, repeated});
    OpSpec lut_op;
    lut_op.type = "constexpr_lut_to_dense";
    lut_op.name = second;
    lut_op.params.push_back({"indices", std::move(indices)});
    ParamSpec lut_param;
    lut_param.name = "lut";
    lut_param.bound_name = first;
    lut_op.params.push_back(lut_param);
    if (vector_axis) lut_op.params.push_back({"vector_axis", *vector_axis});
    lut_op.outputs.push_back({second, task.dtype, task.shape});
    SetOps(&r, std::move(scale_op), std::move(lut_op));
  } else {
    OpSpec lut_op;
    lut_op.type = "constexpr_lut_to_dense";
    lut_op.name = first;
    lut_op.params.push_back({"indices", std::move(indices)});
    lut_op.params.push_back({"lut", lut});
    if (vector_axis) lut_op.params.push_back({"vector_axis", *vector_axis});
    lut_op.outputs.push_back({first, task.dtype, task.shape});
    OpSpec scale_op;
    scale_op.type = "constexpr_blockwise_shift_scale";
    scale_op.name = second;
    ParamSpec data;
    data.name = "data";
    data.bound_name = first;
    scale_op.params.push_back(data);
    scale_op.params.push_back({"scale", MakeFloatTensor(task.dtype, scale_shape, p->scale)});
    scale_op.outputs.push_back({second, task.dtype, task.shape});
    SetOps(&r, std::move(lut_op), std::move(scale_op));
  }
  r.final_output = second;
  return r;
}

}  // namespace

Tensor MakeFloatTensor(ElementType type, Shape shape, const std::vector<float>& values) {
  Tensor t;
  t.type = type;
  t.shape = std::move(shape);
  if (type == ElementType::kFloat16) {
    t.bytes.resize(values.size() * 2);
    uint16_t halves[4096];  // narrowed in bulk, stored little-endian
    for (size_t i = 0; i < values.size(); i += 4096) {
      const size_t n = std::min<size_t>(4096, values.size() - i);
      format::FloatToHalf(absl::MakeConstSpan(values.data() + i, n), absl::MakeSpan(halves, n));
      std::memcpy(&t.bytes[2 * i], halves, 2 * n);
    }
  } else {
    t.bytes.resize(values.size() * 4);
    std::memcpy(t.bytes.data(), values.data(), t.bytes.size());
  }
  return t;
}

compress::PaletteMode ToPaletteMode(PalettizerConfig::Mode mode) {
  using M = PalettizerConfig::Mode;
  switch (mode) {
    case M::kKMeans: return compress::PaletteMode::kKMeans;
    case M::kUniform: return compress::PaletteMode::kUniform;
    case M::kUnique: return compress::PaletteMode::kUnique;
    case M::kCustom: return compress::PaletteMode::kCustom;
  }
  return compress::PaletteMode::kCustom;
}

absl::StatusOr<WeightResult> CompressWeight(const WeightTask& task, std::vector<float> values, Target target,
                                            compress::CancelCheck* cancel) {
  if (!compress::AllFinite(values)) {
    // Core ML tools skip such weights with a warning; a silent skip would
    // hide a broken model, so say so in the report.
    return Skip("weight contains NaN or infinity");
  }
  const OpConfig& primary = task.primary;
  std::string params = DescribeParams(primary);
  WeightResult r;

  if (std::holds_alternative<ThresholdPrunerConfig>(primary) || std::holds_alternative<MagnitudePrunerConfig>(primary)) {
    std::vector<float> pruned = values;
    ASSIGN_OR_RETURN(std::string reason, Prune(task, primary, &pruned, cancel));
    if (!reason.empty()) return Skip(reason);
    const Sparse sparse = SparseOf(pruned);
    if (task.joint) {
      if (!HasIos18Ops(target)) return Unsupported(task, target, "joint compression");
      const std::string joint_params = DescribeParams(*task.joint);
      // Nothing left to compress further (Core ML tools leave such weights pruned only).
      const bool quantize = std::holds_alternative<LinearQuantizerConfig>(*task.joint);
      if (!(quantize && sparse.nonzero.size() < 10) && !sparse.nonzero.empty()) {
        if (quantize) {
          ASSIGN_OR_RETURN(r, Quantize(task, pruned, std::get<LinearQuantizerConfig>(*task.joint), target, &sparse, cancel));
        } else if (auto* pc = std::get_if<PalettizerConfig>(&*task.joint)) {
          ASSIGN_OR_RETURN(r, Palettize(task, pruned, *pc, target, &sparse, cancel));
        } else {
          return absl::InvalidArgumentError("joint compression after pruning must palettize or linear_quantize");
        }
        if (r.skipped_reason.empty()) {
          r.params = absl::StrCat(params, "; ", joint_params, r.params.empty() ? "" : " ", r.params);
          return r;
        }
        // The follower does not apply: keep the pruning alone.
      }
    }
    r = WeightResult();
    r.technique = "prune";
    r.params = params;
    SetOps(&r, SparseToDense(task, target, sparse));
    r.final_output = r.ops[0].name;
    r.reconstructed = std::move(pruned);
    for (float& v : r.reconstructed) v = v == 0.0f ? 0.0f : v;  // the dense op fills +0.0
    return r;
  }
  if (task.joint) {
    return absl::InvalidArgumentError(absl::StrCat("weight \"", task.name,
                                                   "\": joint compression is supported as pruning followed by "
                                                   "palettization or linear quantization"));
  }
  if (auto* q = std::get_if<LinearQuantizerConfig>(&primary)) {
    ASSIGN_OR_RETURN(r, Quantize(task, std::move(values), *q, target, nullptr, cancel));
  } else if (auto* p = std::get_if<PalettizerConfig>(&primary)) {
    ASSIGN_OR_RETURN(r, Palettize(task, std::move(values), *p, target, nullptr, cancel));
  } else {  // fp16
    if (task.dtype == ElementType::kFloat16) return Skip("already fp16");
    r.technique = "fp16";
    OpSpec op;
    op.type = "constexpr_cast";
    op.name = task.name + "_fp16";
    op.params_as_attributes = true;
    std::vector<float> rounded = std::move(values);
    format::RoundToHalf(absl::MakeSpan(rounded));
    op.params.push_back({"source_val", MakeFloatTensor(ElementType::kFloat16, task.shape, rounded)});
    ParamSpec dtype;
    dtype.name = "output_dtype";
    dtype.string_value = "fp32";
    op.params.push_back(dtype);
    op.outputs.push_back({op.name, ElementType::kFloat32, task.shape});
    r.final_output = op.name;
    SetOps(&r, std::move(op));
    r.reconstructed = std::move(rounded);
  }
  if (r.skipped_reason.empty()) r.params = r.params.empty() ? params : absl::StrCat(params, " ", r.params);
  return r;
}

absl::Status CheckDecodedFinite(const std::string& weight, absl::string_view technique, const OpConfig& config,
                                absl::string_view source, const OpConfig* joint, absl::string_view joint_source,
                                bool fp16_weight, absl::Span<const float> decoded) {
  if (compress::AllFinite(decoded)) return absl::OkStatus();
  size_t bad = 0, first = 0;
  for (size_t i = decoded.size(); i-- > 0;) {
    if (!std::isfinite(decoded[i])) {
      ++bad;
      first = i;
    }
  }
  auto describe = [](const OpConfig& c, absl::string_view where) {
    return absl::StrCat(ConfigTypeName(c), " (", DescribeParams(c), ") from ", where.empty() ? "the config" : where);
  };
  std::string configs = describe(config, source);
  if (joint != nullptr) absl::StrAppend(&configs, " followed by ", describe(*joint, joint_source));
  auto is_custom = [](const OpConfig* c) {
    const auto* p = c == nullptr ? nullptr : std::get_if<PalettizerConfig>(c);
    return p != nullptr && p->mode == PalettizerConfig::Mode::kCustom;
  };
  const bool custom = is_custom(&config) || is_custom(joint);
  std::string why;
  if (custom) {
    why = fp16_weight ? " (a \"lut\" entry beyond the fp16 range, +-65504, becomes infinity in an fp16 palette)" : "";
  } else if (std::holds_alternative<Fp16Config>(config)) {
    why = " (values beyond the fp16 range, +-65504, become infinity)";
  } else if (fp16_weight) {
    why = " (a scale or palette entry of this fp16 weight overflows the fp16 range, +-65504)";
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "weight \"", weight, "\": ", technique, " with ", configs, " would decode to ", bad, " of ", decoded.size(),
      " values that are NaN or infinite (the first at element ", first, " is ", decoded[first],
      ") although the weight is finite", why, "; the model was not written. Leave this weight uncompressed (a null entry for it in op_name_configs) "
      "or choose another config"));
}

}  // namespace coremlz::engine
