// Palettization of a weight: the plan (channel axis, grouping, what the
// target allows), the kernel, and the ops of each target generation.
#include <algorithm>
#include <cmath>
#include <optional>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "compress/palettize.h"
#include "engine/coded_values.h"
#include "engine/param_tensors.h"
#include "engine/weight_technique.h"
#include "format/fp16.h"
#include "format/sub_byte.h"

namespace coremlz::engine {
namespace {
using format::ElementType;
using format::Shape;
using format::Tensor;

int NormalizeAxis(int axis, size_t rank) { return axis < 0 ? axis + static_cast<int>(rank) : axis; }

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

// iOS18, after pruning: the kept indices go through constexpr_lut_to_sparse,
// whose mask and values constexpr_sparse_to_dense spreads out.
void EmitLutToSparse(const WeightTask& task, const compress::Palettized& p, const Tensor& lut, const Sparse& sparse,
                     WeightResult* r) {
  const ElementType index_type = UIntType(p.bits);
  const std::string base = task.name + "_sparsified_nonzero_data_0_palettized";
  const std::vector<uint8_t> nz = Gather(p.indices, sparse.mask);
  OpSpec op;
  op.type = "constexpr_lut_to_sparse";
  op.name = base;
  op.params.push_back({"indices_mask", CodesTensor(ElementType::kUInt1, task.shape, sparse.mask)});
  op.params.push_back({"indices_nonzero_data", CodesTensor(index_type, {static_cast<int64_t>(nz.size())}, nz)});
  op.params.push_back({"lut", lut});
  op.outputs.push_back({base + "_0", ElementType::kUInt1, task.shape});
  op.outputs.push_back({base + "_1", task.dtype, {static_cast<int64_t>(nz.size())}});
  ParamSpec mask;
  mask.bound_name = base + "_0";  // the lookup's own mask output
  OpSpec dense = JointSparseToDense(task, base, mask);
  r->final_output = dense.name;
  SetOps(r, std::move(op), std::move(dense));
}

// iOS16: packed index bytes, a flat palette and the shape.
void EmitIos16LutToDense(const WeightTask& task, const compress::Palettized& p, const Tensor& lut, WeightResult* r) {
  OpSpec op;
  op.type = "constexpr_lut_to_dense";
  op.name = task.name + "_palettized";
  op.params_as_attributes = true;
  Tensor packed;
  packed.type = ElementType::kUInt8;
  packed.bytes = format::PackBits(p.indices, p.bits);
  packed.shape = {static_cast<int64_t>(packed.bytes.size())};
  Tensor flat_lut = lut;
  flat_lut.shape = {int64_t{1} << p.bits};
  op.params.push_back({"indices", std::move(packed)});
  op.params.push_back({"lut", std::move(flat_lut)});
  op.params.push_back({"shape", ShapeTensor(task.shape)});
  op.outputs.push_back({op.name, task.dtype, task.shape});
  r->final_output = op.name;
  SetOps(r, std::move(op));
}

// iOS18: sub-byte indices and a palette per group (of vectors along
// vector_axis).
void EmitIos18LutToDense(const WeightTask& task, Tensor indices, const Tensor& lut,
                         const std::optional<Tensor>& vector_axis, WeightResult* r) {
  OpSpec op;
  op.type = "constexpr_lut_to_dense";
  op.name = task.name + "_palettized";
  op.params.push_back({"indices", std::move(indices)});
  op.params.push_back({"lut", lut});
  if (vector_axis) op.params.push_back({"vector_axis", *vector_axis});
  op.outputs.push_back({op.name, task.dtype, task.shape});
  r->final_output = op.name;
  SetOps(r, std::move(op));
}

// iOS18 with per-channel scale. Below iOS26 Core ML tools scale the palette
// first (the LUT repeated to the scale's extent), then look it up; from
// iOS26 they look up, then scale the dense tensor.
void EmitScaledLutToDense(const WeightTask& task, Target target, const compress::Palettized& p, Tensor indices,
                          const Tensor& lut, const std::optional<Tensor>& vector_axis, WeightResult* r) {
  const std::string first = task.name + "_palettized";
  const std::string second = task.name + "_palettized_pcs";
  Shape scale_shape = p.scale_shape;
  if (target < Target::kIOS26) {
    Shape lut_scale_shape = scale_shape;
    lut_scale_shape.push_back(1);
    lut_scale_shape.push_back(1);
    Shape repeated = p.lut_shape;
    for (size_t a = 0; a < scale_shape.size(); ++a) repeated[a] = std::max(repeated[a], lut_scale_shape[a]);
    OpSpec scale_op;
    scale_op.type = "constexpr_blockwise_shift_scale";
    scale_op.name = first;
    scale_op.params.push_back({"data", RepeatLut(p.lut, p.lut_shape, repeated, task.dtype)});
    scale_op.params.push_back({"scale", MakeFloatTensor(task.dtype, lut_scale_shape, p.scale)});
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
    SetOps(r, std::move(scale_op), std::move(lut_op));
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
    scale_op.params.push_back({"scale", MakeFloatTensor(task.dtype, scale_shape, p.scale)});
    scale_op.outputs.push_back({second, task.dtype, task.shape});
    SetOps(r, std::move(lut_op), std::move(scale_op));
  }
  r->final_output = second;
}

}  // namespace

absl::StatusOr<WeightResult> Palettize(const WeightTask& task, std::vector<float> values, const PalettizerConfig& c,
                                       Target target, const Sparse* sparse, compress::CancelCheck* cancel,
                                       const compress::ParallelFor* parallel) {
  std::string reason;
  ASSIGN_OR_RETURN(std::optional<compress::PalettizeOptions> plan, PlanPalettization(task, c, target, &reason));
  if (!plan) return Skip(reason);
  plan->cancel = cancel;
  plan->parallel = parallel;
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
  }
  if (task.dtype == ElementType::kFloat32 && p->lut_shape.back() == 1 && p->scale.empty()) {
    // Scalar palettes without scale: each value is its group's LUT entry
    // (fp32 only: the distinct count of fp16 values is a 65536-bit set
    // already). A group is gs channels of the channel axis, for every outer
    // index.
    const int axis = p->channel_axis;
    int64_t outer = 1, inner = 1;
    for (int a = 0; a < axis; ++a) outer *= task.shape[a];
    for (size_t a = axis + 1; a < task.shape.size(); ++a) inner *= task.shape[a];
    const int64_t dim = task.shape[axis], groups = p->lut_shape[axis], gs = dim / groups;
    r.value_set = CodedValues(r.reconstructed, p->indices, p->bits, sparse ? &sparse->mask : nullptr,
                              [&](auto&& run) {
                                for (int64_t o = 0; o < outer; ++o) {
                                  for (int64_t g = 0; g < groups; ++g) run(g, (o * dim + g * gs) * inner, gs * inner);
                                }
                              });
  }
  if (sparse) {
    EmitLutToSparse(task, *p, lut, *sparse, &r);
  } else if (!HasIos18Ops(target)) {
    EmitIos16LutToDense(task, *p, lut, &r);
  } else if (p->scale.empty()) {
    EmitIos18LutToDense(task, CodesTensor(index_type, p->indices_shape, p->indices), lut, vector_axis, &r);
  } else {
    EmitScaledLutToDense(task, target, *p, CodesTensor(index_type, p->indices_shape, p->indices), lut, vector_axis, &r);
  }
  return r;
}

}  // namespace coremlz::engine
