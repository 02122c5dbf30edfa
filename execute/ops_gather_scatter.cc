// Index-driven data movement (coremltools iOS15/iOS17 scatter_gather.py and
// iOS15 tensor_operation.py one_hot): gather_nd, gather_along_axis, scatter,
// scatter_nd, scatter_along_axis, one_hot. Every index comes from the
// program, so each one is checked before it addresses an element
// (ResolveIndex). Scatters apply updates in row-major order of `updates`, so
// with repeated indices "update" keeps the last one and the other modes
// accumulate, as coremltools' reference does.
#include <algorithm>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "execute/indexing.h"
#include "execute/op_registry.h"

namespace coremlz::execute {
namespace {

// Copies `count` elements from src[src_at] to dst[dst_at]; both tensors hold
// the same storage (float or integer).
void CopyElements(const Tensor& src, int64_t src_at, Tensor& dst, int64_t dst_at, int64_t count) {
  if (count <= 0) return;
  if (src.is_float()) {
    std::memcpy(dst.mutable_floats().data() + dst_at, src.floats().data() + src_at, count * sizeof(float));
  } else {
    std::memcpy(dst.mutable_ints().data() + dst_at, src.ints().data() + src_at, count * sizeof(int32_t));
  }
}

absl::Status CheckNumericIndices(const OpContext& ctx, const Tensor& data, const Tensor& indices) {
  if (!data.is_float() && !data.is_integer_storage()) return ctx.Invalid("data must be a numeric tensor");
  if (!indices.is_integer_storage()) return ctx.Invalid("indices must be integers");
  return absl::OkStatus();
}

int64_t Product(const Shape& shape, size_t begin, size_t end) {
  int64_t p = 1;
  for (size_t d = begin; d < end; ++d) p *= shape[d];
  return p;
}

// gather_nd(x, indices, batch_dims = 0): the last dim of `indices` holds
// coordinates into x's dims after the batch dims; output shape
// indices.shape[:-1] + x.shape[batch_dims + K:].
absl::StatusOr<std::vector<Tensor>> GatherNd(const OpContext& ctx) {
  ASSIGN_OR_RETURN(const Tensor* x, ctx.Input("x"));
  ASSIGN_OR_RETURN(const Tensor* indices, ctx.Input("indices"));
  ASSIGN_OR_RETURN(int64_t batch_dims, ctx.Int("batch_dims", 0));
  RETURN_IF_ERROR(CheckNumericIndices(ctx, *x, *indices));
  if (indices->rank() < 1) return ctx.Invalid("indices must have rank >= 1");
  const int64_t k = indices->dim(indices->rank() - 1);
  if (batch_dims < 0 || batch_dims >= indices->rank() || batch_dims + k > x->rank()) {
    return ctx.Invalid(absl::StrCat("batch_dims ", batch_dims, " and index depth ", k, " do not fit x of rank ", x->rank()));
  }
  for (int64_t d = 0; d < batch_dims; ++d) {
    if (x->dim(d) != indices->dim(d)) return ctx.Invalid("x and indices differ in a batch dim");
  }
  Shape out_shape(indices->shape().begin(), indices->shape().end() - 1);
  out_shape.insert(out_shape.end(), x->shape().begin() + batch_dims + k, x->shape().end());
  ASSIGN_OR_RETURN(Tensor out, Tensor::Allocate(x->dtype(), out_shape));
  const std::vector<int64_t> x_strides = RowMajorStrides(x->shape());
  const Shape lookups_shape(indices->shape().begin(), indices->shape().end() - 1);
  const int64_t lookups = NumElements(lookups_shape);
  const int64_t inner = Product(x->shape(), batch_dims + k, x->rank());
  // Lookups per batch element: batch coordinate = lookup / per_batch.
  const int64_t per_batch = Product(lookups_shape, batch_dims, lookups_shape.size());
  const std::vector<int64_t> batch_strides = RowMajorStrides(Shape(x->shape().begin(), x->shape().begin() + batch_dims));
  for (int64_t l = 0; l < lookups; ++l) {
    int64_t offset = 0, batch = per_batch == 0 ? 0 : l / per_batch;
    for (int64_t d = 0; d < batch_dims; ++d) {
      offset += (batch / batch_strides[d]) % x->dim(d) * x_strides[d];
    }
    for (int64_t j = 0; j < k; ++j) {
      ASSIGN_OR_RETURN(int64_t idx, ResolveIndex(ctx, indices->ints()[l * k + j], x->dim(batch_dims + j)));
      offset += idx * x_strides[batch_dims + j];
    }
    CopyElements(*x, offset, out, l * inner, inner);
  }
  return Outputs(std::move(out));
}

// The position in `data` that element `i` of `indices` (same rank as data,
// shape `indices_shape`) addresses along `axis`.
absl::StatusOr<int64_t> AlongAxisOffset(const OpContext& ctx, const Tensor& data, const Tensor& indices, int64_t axis,
                                        int64_t i, const std::vector<int64_t>& data_strides,
                                        const std::vector<int64_t>& index_strides) {
  int64_t offset = 0;
  for (int64_t d = 0; d < data.rank(); ++d) {
    const int64_t coord = (i / index_strides[d]) % indices.dim(d);
    if (d == axis) {
      ASSIGN_OR_RETURN(int64_t idx, ResolveIndex(ctx, indices.ints()[i], data.dim(d)));
      offset += idx * data_strides[d];
    } else {
      offset += coord * data_strides[d];
    }
  }
  return offset;
}

absl::Status CheckAlongAxisShapes(const OpContext& ctx, const Tensor& data, const Tensor& indices, int64_t axis) {
  if (indices.rank() != data.rank()) return ctx.Invalid("indices must have the rank of the data");
  for (int64_t d = 0; d < data.rank(); ++d) {
    if (d != axis && indices.dim(d) != data.dim(d)) {
      return ctx.Invalid(absl::StrCat("indices and data differ in dim ", d, ", which is not the axis"));
    }
  }
  return absl::OkStatus();
}

// gather_along_axis(x, indices, axis = 0): out[..., i, ...] =
// x[..., indices[..., i, ...], ...]; output shape = indices shape.
absl::StatusOr<std::vector<Tensor>> GatherAlongAxis(const OpContext& ctx) {
  ASSIGN_OR_RETURN(const Tensor* x, ctx.Input("x"));
  ASSIGN_OR_RETURN(const Tensor* indices, ctx.Input("indices"));
  ASSIGN_OR_RETURN(int64_t axis_in, ctx.Int("axis", 0));
  RETURN_IF_ERROR(CheckNumericIndices(ctx, *x, *indices));
  auto axis = NormalizeAxis(axis_in, x->rank());
  if (!axis.ok()) return ctx.Invalid(axis.status().message());
  RETURN_IF_ERROR(CheckAlongAxisShapes(ctx, *x, *indices, *axis));
  ASSIGN_OR_RETURN(Tensor out, Tensor::Allocate(x->dtype(), indices->shape()));
  const std::vector<int64_t> x_strides = RowMajorStrides(x->shape()), i_strides = RowMajorStrides(indices->shape());
  for (int64_t i = 0; i < indices->size(); ++i) {
    ASSIGN_OR_RETURN(int64_t offset, AlongAxisOffset(ctx, *x, *indices, *axis, i, x_strides, i_strides));
    CopyElements(*x, offset, out, i, 1);
  }
  return Outputs(std::move(out));
}

enum class ScatterMode { kUpdate, kAdd, kSub, kMul, kDiv, kMax, kMin };

absl::StatusOr<ScatterMode> ParseMode(const OpContext& ctx) {
  ASSIGN_OR_RETURN(std::string mode, ctx.String("mode", "add"));
  if (mode == "update") return ScatterMode::kUpdate;
  if (mode == "add") return ScatterMode::kAdd;
  if (mode == "sub") return ScatterMode::kSub;
  if (mode == "mul") return ScatterMode::kMul;
  if (mode == "div") return ScatterMode::kDiv;
  if (mode == "max") return ScatterMode::kMax;
  if (mode == "min") return ScatterMode::kMin;
  return ctx.Invalid(absl::StrCat("unknown mode '", mode, "'"));
}

template <typename T>
T Combine(ScatterMode mode, T current, T update) {
  switch (mode) {
    case ScatterMode::kUpdate: return update;
    case ScatterMode::kAdd: return current + update;
    case ScatterMode::kSub: return current - update;
    case ScatterMode::kMul: return current * update;
    case ScatterMode::kDiv: return current / update;
    case ScatterMode::kMax: return std::max(current, update);
    case ScatterMode::kMin: return std::min(current, update);
  }
  return update;
}

// Applies updates[src + j] to out[dst + j] for j < count.
absl::Status ScatterInto(const OpContext& ctx, ScatterMode mode, const Tensor& updates, int64_t src, Tensor& out,
                         int64_t dst, int64_t count) {
  if (out.is_float()) {
    float* o = out.mutable_floats().data() + dst;
    const float* u = updates.floats().data() + src;
    for (int64_t j = 0; j < count; ++j) o[j] = Combine(mode, o[j], u[j]);
    return absl::OkStatus();
  }
  int32_t* o = out.mutable_ints().data() + dst;
  const int32_t* u = updates.ints().data() + src;
  for (int64_t j = 0; j < count; ++j) {
    // Integer division by zero has no value (and would trap).
    if (mode == ScatterMode::kDiv && u[j] == 0) return ctx.Invalid("integer division by zero in mode 'div'");
    o[j] = Combine(mode, o[j], u[j]);
  }
  return absl::OkStatus();
}

absl::Status CheckUpdates(const OpContext& ctx, const Tensor& data, const Tensor& updates, const Shape& want) {
  if (updates.dtype() != data.dtype()) return ctx.Invalid("updates must have the dtype of data");
  if (updates.shape() != want) {
    return ctx.Invalid(absl::StrCat("updates must have shape ", format::ShapeString(want), ", not ",
                                    format::ShapeString(updates.shape())));
  }
  return absl::OkStatus();
}

// scatter(data, indices, updates, axis = 0, mode = "add"): updates has shape
// data.shape[:axis] + indices.shape + data.shape[axis + 1:].
absl::StatusOr<std::vector<Tensor>> Scatter(const OpContext& ctx) {
  ASSIGN_OR_RETURN(const Tensor* data, ctx.Input("data"));
  ASSIGN_OR_RETURN(const Tensor* indices, ctx.Input("indices"));
  ASSIGN_OR_RETURN(const Tensor* updates, ctx.Input("updates"));
  ASSIGN_OR_RETURN(int64_t axis_in, ctx.Int("axis", 0));
  ASSIGN_OR_RETURN(ScatterMode mode, ParseMode(ctx));
  RETURN_IF_ERROR(CheckNumericIndices(ctx, *data, *indices));
  auto axis = NormalizeAxis(axis_in, data->rank());
  if (!axis.ok()) return ctx.Invalid(axis.status().message());
  Shape want(data->shape().begin(), data->shape().begin() + *axis);
  want.insert(want.end(), indices->shape().begin(), indices->shape().end());
  want.insert(want.end(), data->shape().begin() + *axis + 1, data->shape().end());
  RETURN_IF_ERROR(CheckUpdates(ctx, *data, *updates, want));
  Tensor out = *data;
  const int64_t outer = Product(data->shape(), 0, *axis), n = data->dim(*axis);
  const int64_t inner = Product(data->shape(), *axis + 1, data->rank());
  for (int64_t o = 0; o < outer; ++o) {
    for (int64_t k = 0; k < indices->size(); ++k) {
      ASSIGN_OR_RETURN(int64_t idx, ResolveIndex(ctx, indices->ints()[k], n));
      RETURN_IF_ERROR(ScatterInto(ctx, mode, *updates, (o * indices->size() + k) * inner, out, (o * n + idx) * inner, inner));
    }
  }
  return Outputs(std::move(out));
}

// scatter_nd(data, indices, updates, mode = "add"): the last dim of
// `indices` holds coordinates into data's leading dims; updates has shape
// indices.shape[:-1] + data.shape[K:].
absl::StatusOr<std::vector<Tensor>> ScatterNd(const OpContext& ctx) {
  ASSIGN_OR_RETURN(const Tensor* data, ctx.Input("data"));
  ASSIGN_OR_RETURN(const Tensor* indices, ctx.Input("indices"));
  ASSIGN_OR_RETURN(const Tensor* updates, ctx.Input("updates"));
  ASSIGN_OR_RETURN(ScatterMode mode, ParseMode(ctx));
  RETURN_IF_ERROR(CheckNumericIndices(ctx, *data, *indices));
  if (indices->rank() < 1) return ctx.Invalid("indices must have rank >= 1");
  const int64_t k = indices->dim(indices->rank() - 1);
  if (k > data->rank()) return ctx.Invalid(absl::StrCat("index depth ", k, " exceeds the data rank ", data->rank()));
  Shape want(indices->shape().begin(), indices->shape().end() - 1);
  want.insert(want.end(), data->shape().begin() + k, data->shape().end());
  RETURN_IF_ERROR(CheckUpdates(ctx, *data, *updates, want));
  Tensor out = *data;
  const std::vector<int64_t> strides = RowMajorStrides(data->shape());
  const int64_t inner = Product(data->shape(), k, data->rank());
  const int64_t lookups = NumElements(Shape(indices->shape().begin(), indices->shape().end() - 1));
  for (int64_t l = 0; l < lookups; ++l) {
    int64_t offset = 0;
    for (int64_t j = 0; j < k; ++j) {
      ASSIGN_OR_RETURN(int64_t idx, ResolveIndex(ctx, indices->ints()[l * k + j], data->dim(j)));
      offset += idx * strides[j];
    }
    RETURN_IF_ERROR(ScatterInto(ctx, mode, *updates, l * inner, out, offset, inner));
  }
  return Outputs(std::move(out));
}

// scatter_along_axis(data, indices, updates, axis = 0, mode = "add"): the
// inverse of gather_along_axis; updates has the shape of indices.
absl::StatusOr<std::vector<Tensor>> ScatterAlongAxis(const OpContext& ctx) {
  ASSIGN_OR_RETURN(const Tensor* data, ctx.Input("data"));
  ASSIGN_OR_RETURN(const Tensor* indices, ctx.Input("indices"));
  ASSIGN_OR_RETURN(const Tensor* updates, ctx.Input("updates"));
  ASSIGN_OR_RETURN(int64_t axis_in, ctx.Int("axis", 0));
  ASSIGN_OR_RETURN(ScatterMode mode, ParseMode(ctx));
  RETURN_IF_ERROR(CheckNumericIndices(ctx, *data, *indices));
  auto axis = NormalizeAxis(axis_in, data->rank());
  if (!axis.ok()) return ctx.Invalid(axis.status().message());
  RETURN_IF_ERROR(CheckAlongAxisShapes(ctx, *data, *indices, *axis));
  RETURN_IF_ERROR(CheckUpdates(ctx, *data, *updates, indices->shape()));
  Tensor out = *data;
  const std::vector<int64_t> d_strides = RowMajorStrides(data->shape()), i_strides = RowMajorStrides(indices->shape());
  for (int64_t i = 0; i < indices->size(); ++i) {
    ASSIGN_OR_RETURN(int64_t offset, AlongAxisOffset(ctx, *data, *indices, *axis, i, d_strides, i_strides));
    RETURN_IF_ERROR(ScatterInto(ctx, mode, *updates, i, out, offset, 1));
  }
  return Outputs(std::move(out));
}

// one_hot(indices, one_hot_vector_size, axis = -1, on_value = 1,
// off_value = 0): a new dim of the given size at `axis`. The output takes
// on_value's dtype (int32 when absent, as the default is the integer 1).
absl::StatusOr<std::vector<Tensor>> OneHot(const OpContext& ctx) {
  ASSIGN_OR_RETURN(const Tensor* indices, ctx.Input("indices"));
  ASSIGN_OR_RETURN(int64_t depth, ctx.Int("one_hot_vector_size"));
  ASSIGN_OR_RETURN(int64_t axis_in, ctx.Int("axis", -1));
  ASSIGN_OR_RETURN(double on, ctx.Float("on_value", 1));
  ASSIGN_OR_RETURN(double off, ctx.Float("off_value", 0));
  if (!indices->is_integer_storage()) return ctx.Invalid("indices must be integers");
  if (depth < 0) return ctx.Invalid("one_hot_vector_size must not be negative");
  auto axis = NormalizeAxis(axis_in, indices->rank() + 1);
  if (!axis.ok()) return ctx.Invalid(axis.status().message());
  const Tensor* on_value = ctx.Optional("on_value");
  const DType dtype = on_value && on_value->is_float() ? DType::kFloat32 : DType::kInt32;
  Shape out_shape = indices->shape();
  out_shape.insert(out_shape.begin() + *axis, depth);
  ASSIGN_OR_RETURN(Tensor out, Tensor::Allocate(dtype, out_shape));
  const int64_t outer = Product(indices->shape(), 0, *axis);
  const int64_t inner = Product(indices->shape(), *axis, indices->rank());
  auto write = [&](int64_t at, double v) {
    if (dtype == DType::kFloat32) {
      out.mutable_floats()[at] = static_cast<float>(v);
    } else {
      out.mutable_ints()[at] = static_cast<int32_t>(v);
    }
  };
  for (int64_t at = 0; at < out.size(); ++at) write(at, off);
  for (int64_t o = 0; o < outer; ++o) {
    for (int64_t i = 0; i < inner; ++i) {
      const int64_t hot = indices->ints()[o * inner + i];
      if (hot < 0 || hot >= depth) {
        return ctx.Invalid(absl::StrCat("index ", hot, " is out of range for one_hot_vector_size ", depth));
      }
      write((o * depth + hot) * inner + i, on);
    }
  }
  return Outputs(std::move(out));
}

}  // namespace

void RegisterGatherScatterOps(OpRegistry* r) {
  r->Register("gather_nd", GatherNd);
  r->Register("gather_along_axis", GatherAlongAxis);
  r->Register("scatter", Scatter);
  r->Register("scatter_nd", ScatterNd);
  r->Register("scatter_along_axis", ScatterAlongAxis);
  r->Register("one_hot", OneHot);
}

}  // namespace coremlz::execute
