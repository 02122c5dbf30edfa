// conv and conv_transpose (iOS15 conv.py; iOS17 only widens dtypes): 1-D and
// 2-D, with pad_type valid/same/same_lower/custom, strides, dilations, groups
// and optional bias.
#include <algorithm>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "execute/conv2d.h"
#include "execute/op_registry.h"
#include "execute/padding.h"

namespace coremlz::execute {
namespace {

absl::StatusOr<std::vector<Tensor>> Conv(const OpContext& ctx) {
  ASSIGN_OR_RETURN(const Tensor* x, ctx.Input("x"));
  ASSIGN_OR_RETURN(const Tensor* w, ctx.Input("weight"));
  const Tensor* bias = ctx.Optional("bias");
  if (!x->is_float() || !w->is_float() || (bias && !bias->is_float())) return ctx.Invalid("operands must be floating point");
  const int64_t spatial = x->rank() - 2;
  if (spatial == 3) return absl::UnimplementedError("conv: 3-D convolution is not implemented by the reference executor");
  if (spatial < 1 || spatial > 2) return ctx.Invalid(absl::StrCat("x must have rank 3 or 4, not ", x->rank()));
  if (w->rank() != x->rank()) return ctx.Invalid("weight rank differs from x rank");
  ASSIGN_OR_RETURN(int64_t groups, ctx.Int("groups", 1));
  ASSIGN_OR_RETURN(std::vector<int64_t> strides, ctx.Ints("strides", std::vector<int64_t>(spatial, 1)));
  ASSIGN_OR_RETURN(std::vector<int64_t> dilations, ctx.Ints("dilations", std::vector<int64_t>(spatial, 1)));
  ASSIGN_OR_RETURN(std::string pad_type, ctx.String("pad_type", "valid"));
  ASSIGN_OR_RETURN(std::vector<int64_t> custom, ctx.Ints("pad", std::vector<int64_t>(2 * spatial, 0)));
  if (static_cast<int64_t>(strides.size()) != spatial || static_cast<int64_t>(dilations.size()) != spatial) {
    return ctx.Invalid("strides and dilations need one value per spatial dim");
  }
  for (int64_t i = 0; i < spatial; ++i) {
    if (strides[i] < 1 || dilations[i] < 1) return ctx.Invalid("strides and dilations must be positive");
  }
  const int64_t cin = x->dim(1), cout = w->dim(0);
  if (groups < 1 || cin % groups != 0 || cout % groups != 0 || w->dim(1) * groups != cin) {
    return ctx.Invalid(absl::StrCat("weight ", format::ShapeString(w->shape()), " does not fit ", cin,
                                    " input channels in ", groups, " groups"));
  }
  if (bias && bias->size() != cout) return ctx.Invalid("bias must have one value per output channel");

  Conv2dShape s;
  s.batch = x->dim(0);
  s.in_channels = cin;
  s.out_channels = cout;
  s.groups = groups;
  std::vector<int64_t> in, kernel;
  for (int64_t i = 0; i < spatial; ++i) {
    in.push_back(x->dim(2 + i));
    kernel.push_back((w->dim(2 + i) - 1) * dilations[i] + 1);
  }
  auto pad = ResolvePadding(pad_type, custom, in, kernel, strides);
  if (!pad.ok()) return ctx.Invalid(pad.status().message());
  if (spatial == 2) {
    s.in_h = in[0], s.in_w = in[1];
    s.kernel_h = w->dim(2), s.kernel_w = w->dim(3);
    s.stride_h = strides[0], s.stride_w = strides[1];
    s.dilation_h = dilations[0], s.dilation_w = dilations[1];
    s.pad_top = (*pad)[0], s.pad_bottom = (*pad)[1], s.pad_left = (*pad)[2], s.pad_right = (*pad)[3];
  } else {
    s.in_w = in[0];
    s.kernel_w = w->dim(2);
    s.stride_w = strides[0];
    s.dilation_w = dilations[0];
    s.pad_left = (*pad)[0], s.pad_right = (*pad)[1];
  }
  if (s.out_h() < 1 || s.out_w() < 1) return ctx.Invalid("the kernel is larger than the padded input");
  Shape out_shape = {s.batch, cout};
  if (spatial == 2) out_shape.push_back(s.out_h());
  out_shape.push_back(s.out_w());
  ASSIGN_OR_RETURN(Tensor out, Tensor::Allocate(DType::kFloat32, out_shape));
  // Conv2d's im2col buffer: one patch per output position.
  RETURN_IF_ERROR(CheckShape({cin / std::max<int64_t>(1, s.groups) * s.kernel_h * s.kernel_w, s.out_h() * s.out_w()}));
  if (out.size() > 0 && x->size() > 0) {
    Conv2d(s, x->floats(), w->floats(), bias ? bias->floats() : absl::Span<const float>(), out.mutable_floats());
  }
  return Outputs(std::move(out));
}

// The uncropped transposed convolution is (in - 1) * stride + dilated kernel
// wide; custom pads crop it at each end, "same" crops it to in * stride with
// the odd element taken from the end (the inverse of conv's "same").
absl::StatusOr<std::vector<Tensor>> ConvTranspose(const OpContext& ctx) {
  ASSIGN_OR_RETURN(const Tensor* x, ctx.Input("x"));
  ASSIGN_OR_RETURN(const Tensor* w, ctx.Input("weight"));
  const Tensor* bias = ctx.Optional("bias");
  if (!x->is_float() || !w->is_float() || (bias && !bias->is_float())) return ctx.Invalid("operands must be floating point");
  const int64_t spatial = x->rank() - 2;
  if (spatial == 3) return absl::UnimplementedError("conv_transpose: 3-D is not implemented by the reference executor");
  if (spatial < 1 || spatial > 2 || w->rank() != x->rank()) return ctx.Invalid("x and weight must have rank 3 or 4");
  ASSIGN_OR_RETURN(int64_t groups, ctx.Int("groups", 1));
  ASSIGN_OR_RETURN(std::vector<int64_t> strides, ctx.Ints("strides", std::vector<int64_t>(spatial, 1)));
  ASSIGN_OR_RETURN(std::vector<int64_t> dilations, ctx.Ints("dilations", std::vector<int64_t>(spatial, 1)));
  ASSIGN_OR_RETURN(std::string pad_type, ctx.String("pad_type", "valid"));
  ASSIGN_OR_RETURN(std::vector<int64_t> custom, ctx.Ints("pad", std::vector<int64_t>(2 * spatial, 0)));
  if (static_cast<int64_t>(strides.size()) != spatial || static_cast<int64_t>(dilations.size()) != spatial ||
      static_cast<int64_t>(custom.size()) != 2 * spatial) {
    return ctx.Invalid("strides, dilations and pad need one value (pad: two) per spatial dim");
  }
  const int64_t cin = x->dim(1);
  if (groups < 1 || w->dim(0) != cin || cin % groups != 0) return ctx.Invalid("weight must be [C_in, C_out / groups, ...]");
  const int64_t cout = w->dim(1) * groups;
  if (bias && bias->size() != cout) return ctx.Invalid("bias must have one value per output channel");
  // Work in 2-D; a 1-D op has a unit height.
  std::vector<int64_t> in(x->shape().begin() + 2, x->shape().end()), k(w->shape().begin() + 2, w->shape().end());
  if (spatial == 1) {
    in.insert(in.begin(), 1), k.insert(k.begin(), 1), strides.insert(strides.begin(), 1);
    dilations.insert(dilations.begin(), 1), custom.insert(custom.begin(), {0, 0});
  }
  ConvTransposeShape s;
  s.batch = x->dim(0), s.in_channels = cin, s.out_channels = cout, s.groups = groups;
  s.in_h = in[0], s.in_w = in[1], s.kernel_h = k[0], s.kernel_w = k[1];
  s.stride_h = strides[0], s.stride_w = strides[1], s.dilation_h = dilations[0], s.dilation_w = dilations[1];
  for (int64_t v : {s.stride_h, s.stride_w, s.dilation_h, s.dilation_w}) {
    if (v < 1) return ctx.Invalid("strides and dilations must be positive");
  }
  const int64_t full[2] = {s.full_h(), s.full_w()};
  int64_t crop_begin[2], out[2];
  for (int i = 0; i < 2; ++i) {
    if (pad_type == "valid") {
      crop_begin[i] = 0, out[i] = full[i];
    } else if (pad_type == "custom") {
      crop_begin[i] = custom[2 * i], out[i] = full[i] - custom[2 * i] - custom[2 * i + 1];
      if (custom[2 * i] < 0 || custom[2 * i + 1] < 0) return ctx.Invalid("negative padding");
    } else if (pad_type == "same") {
      out[i] = in[i] * strides[i];
      crop_begin[i] = std::max<int64_t>(0, full[i] - out[i]) / 2;
      if (out[i] > full[i]) return absl::UnimplementedError("conv_transpose: 'same' output larger than the full result");
    } else {
      return ctx.Invalid(absl::StrCat("unknown pad_type '", pad_type, "'"));
    }
    if (out[i] < 1) return ctx.Invalid("padding crops the whole output");
  }
  if (ctx.Has("output_shape")) {
    ASSIGN_OR_RETURN(std::vector<int64_t> want, ctx.Ints("output_shape"));
    std::vector<int64_t> got = {s.batch, cout};
    if (spatial == 2) got.push_back(out[0]);
    got.push_back(out[1]);
    if (want != got) {
      return absl::UnimplementedError(absl::StrCat("conv_transpose: an output_shape other than the computed ",
                                                   format::ShapeString(got), " is not implemented by the reference executor"));
    }
  }
  ASSIGN_OR_RETURN(Tensor whole, Tensor::Allocate(DType::kFloat32, {s.batch, cout, full[0], full[1]}));
  // ConvTranspose2d's column buffer: one patch per input position.
  RETURN_IF_ERROR(CheckShape({cout / std::max<int64_t>(1, s.groups) * s.kernel_h * s.kernel_w, s.in_h * s.in_w}));
  if (whole.size() > 0) {
    ConvTranspose2d(s, x->floats(), w->floats(), bias ? bias->floats() : absl::Span<const float>(), whole.mutable_floats());
  }
  Shape out_shape = {s.batch, cout};
  if (spatial == 2) out_shape.push_back(out[0]);
  out_shape.push_back(out[1]);
  ASSIGN_OR_RETURN(Tensor result, Tensor::Allocate(DType::kFloat32, out_shape));
  float* o = result.mutable_floats().data();
  for (int64_t p = 0; p < s.batch * cout; ++p)
    for (int64_t y = 0; y < out[0]; ++y)
      for (int64_t xx = 0; xx < out[1]; ++xx)
        o[(p * out[0] + y) * out[1] + xx] = whole.floats()[(p * full[0] + y + crop_begin[0]) * full[1] + xx + crop_begin[1]];
  return Outputs(std::move(result));
}

}  // namespace

void RegisterConvOps(OpRegistry* r) {
  r->Register("conv", Conv);
  r->Register("conv_transpose", ConvTranspose);
}

}  // namespace coremlz::execute
