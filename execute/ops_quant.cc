// The iOS17 run-time quantization ops (coremltools iOS17
// quantization_ops.py): quantize and dequantize, affine with a per-tensor
// (scalar) or per-axis (vector) scale and optional zero point. The
// constexpr_* forms are decoded with the weights (engine/decompress.h); these
// act on activations. Quantized values are held as int32 like every integer.
#include <algorithm>
#include <cmath>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "execute/op_registry.h"

namespace coremlz::execute {
namespace {

// scale and zero_point resolved to one value per element of the input:
// element i uses entry (i / inner) % size.
struct AffineParams {
  const Tensor* scale;
  const Tensor* zero_point;  // may be null (0)
  int64_t inner = 1;

  int64_t Entry(int64_t i) const { return scale->size() == 1 ? 0 : (i / inner) % scale->size(); }
  double Scale(int64_t i) const { return scale->AsDouble(Entry(i)); }
  double ZeroPoint(int64_t i) const { return zero_point ? zero_point->AsDouble(Entry(i)) : 0.0; }
};

absl::StatusOr<AffineParams> ReadParams(const OpContext& ctx, const Tensor& input) {
  AffineParams p;
  ASSIGN_OR_RETURN(p.scale, ctx.Input("scale"));
  p.zero_point = ctx.Optional("zero_point");
  if (p.scale->rank() == 0) {
    if (ctx.Has("axis")) return ctx.Invalid("axis must be absent when scale is a scalar");
    if (p.zero_point && p.zero_point->rank() != 0) return ctx.Invalid("zero_point must be a scalar like scale");
    return p;
  }
  if (p.scale->rank() != 1) return ctx.Invalid("scale must be a scalar or a vector");
  if (!ctx.Has("axis")) return ctx.Invalid("axis is required when scale is a vector");
  ASSIGN_OR_RETURN(int64_t axis_in, ctx.Int("axis"));
  auto axis = NormalizeAxis(axis_in, input.rank());
  if (!axis.ok()) return ctx.Invalid(axis.status().message());
  if (p.scale->size() != input.dim(*axis)) {
    return ctx.Invalid(absl::StrCat("scale has ", p.scale->size(), " entries for a dim of ", input.dim(*axis)));
  }
  if (p.zero_point && p.zero_point->shape() != p.scale->shape()) {
    return ctx.Invalid("zero_point must have the shape of scale");
  }
  for (int64_t d = *axis + 1; d < input.rank(); ++d) p.inner *= input.dim(d);
  return p;
}

// quantize(input, scale, zero_point?, axis?, output_dtype):
// clip(round_half_even(input / scale) + zero_point) into int8 or uint8.
absl::StatusOr<std::vector<Tensor>> Quantize(const OpContext& ctx) {
  ASSIGN_OR_RETURN(const Tensor* input, ctx.Input("input"));
  ASSIGN_OR_RETURN(std::string output_dtype, ctx.String("output_dtype", ""));
  if (!input->is_float()) return ctx.Invalid("input must be floating point");
  double lo = 0, hi = 0;
  if (output_dtype == "int8") {
    lo = -128, hi = 127;
  } else if (output_dtype == "uint8") {
    lo = 0, hi = 255;
  } else {
    return ctx.Invalid(absl::StrCat("output_dtype must be int8 or uint8, not '", output_dtype, "'"));
  }
  ASSIGN_OR_RETURN(AffineParams p, ReadParams(ctx, *input));
  for (int64_t i = 0; i < p.scale->size(); ++i) {
    if (p.scale->AsDouble(i) == 0) return ctx.Invalid("scale must not be 0");
  }
  ASSIGN_OR_RETURN(Tensor out, Tensor::Allocate(DType::kInt32, input->shape()));
  for (int64_t i = 0; i < input->size(); ++i) {
    // nearbyint rounds half to even, as numpy's around does.
    const double q = std::nearbyint(input->floats()[i] / p.Scale(i)) + p.ZeroPoint(i);
    out.mutable_ints()[i] = std::isnan(q) ? 0 : static_cast<int32_t>(std::clamp(q, lo, hi));
  }
  return Outputs(std::move(out));
}

// dequantize(input, scale, zero_point?, axis?): scale * (input - zero_point).
absl::StatusOr<std::vector<Tensor>> Dequantize(const OpContext& ctx) {
  ASSIGN_OR_RETURN(const Tensor* input, ctx.Input("input"));
  if (!input->is_integer_storage()) return ctx.Invalid("input must be integers");
  ASSIGN_OR_RETURN(AffineParams p, ReadParams(ctx, *input));
  ASSIGN_OR_RETURN(Tensor out, Tensor::Allocate(DType::kFloat32, input->shape()));
  for (int64_t i = 0; i < input->size(); ++i) {
    out.mutable_floats()[i] = static_cast<float>(p.Scale(i) * (input->ints()[i] - p.ZeroPoint(i)));
  }
  return Outputs(std::move(out));
}

}  // namespace

void RegisterQuantOps(OpRegistry* r) {
  r->Register("quantize", Quantize);
  r->Register("dequantize", Dequantize);
}

}  // namespace coremlz::execute
