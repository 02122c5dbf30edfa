// Indexing ops: slice_by_index, slice_by_size, slice_update (iOS18), gather
// (iOS15/iOS17), tile, pad, space_to_batch, batch_to_space. Like the shape
// ops they compute the input element each output element takes; every shape
// they derive from parameters is checked before anything is allocated.
#include <algorithm>
#include <cmath>
#include <numeric>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "execute/element_index.h"
#include "execute/op_registry.h"

namespace coremlz::execute {
namespace {

struct SliceSelection {
  Shape shape;       // of the result, squeezed dims removed
  Shape full_shape;  // of the result, squeezed dims kept as 1
  std::vector<int64_t> start, step, in_stride;

  // Input offset of the result element at `idx` (an index of full_shape).
  int64_t Offset(const std::vector<int64_t>& idx) const {
    int64_t off = 0;
    for (size_t d = 0; d < idx.size(); ++d) off += (start[d] + idx[d] * step[d]) * in_stride[d];
    return off;
  }
};

absl::StatusOr<SliceSelection> SelectSlice(const OpContext& ctx, const Tensor& x) {
  const int64_t rank = x.rank();
  ASSIGN_OR_RETURN(std::vector<int64_t> begin, ctx.Ints("begin"));
  ASSIGN_OR_RETURN(std::vector<int64_t> end, ctx.Ints("end"));
  ASSIGN_OR_RETURN(std::vector<int64_t> stride, ctx.Ints("stride", std::vector<int64_t>(rank, 1)));
  ASSIGN_OR_RETURN(std::vector<int64_t> begin_mask, ctx.Ints("begin_mask", std::vector<int64_t>(rank, 0)));
  ASSIGN_OR_RETURN(std::vector<int64_t> end_mask, ctx.Ints("end_mask", std::vector<int64_t>(rank, 0)));
  ASSIGN_OR_RETURN(std::vector<int64_t> squeeze_mask, ctx.Ints("squeeze_mask", std::vector<int64_t>(rank, 0)));
  for (const auto* v : {&begin, &end, &stride, &begin_mask, &end_mask, &squeeze_mask}) {
    if (static_cast<int64_t>(v->size()) != rank) return ctx.Invalid("begin/end/stride/masks need one entry per dim");
  }
  std::vector<int64_t> start(rank), step(rank);
  Shape full_shape;
  SliceSelection sel;
  for (int64_t d = 0; d < rank; ++d) {
    const int64_t n = x.dim(d);
    const int64_t s = stride[d];
    if (s == 0) return ctx.Invalid("stride 0");
    if (squeeze_mask[d]) {
      int64_t b = begin[d] < 0 ? begin[d] + n : begin[d];
      if (b < 0 || b >= n) return ctx.Invalid("squeezed index out of range");
      start[d] = b, step[d] = 1;
      full_shape.push_back(1);
      continue;
    }
    int64_t b, e, count;
    if (s > 0) {
      b = begin_mask[d] ? 0 : begin[d];
      e = end_mask[d] ? n : end[d];
      if (!begin_mask[d] && b < 0) b += n;
      if (!end_mask[d] && e < 0) e += n;
      b = std::clamp<int64_t>(b, 0, n);
      e = std::clamp<int64_t>(e, 0, n);
      count = e > b ? (e - b + s - 1) / s : 0;
    } else {
      b = begin_mask[d] ? n - 1 : begin[d];
      e = end_mask[d] ? -1 : end[d];
      if (!begin_mask[d] && b < 0) b += n;
      if (!end_mask[d] && e < 0) e += n;
      b = std::clamp<int64_t>(b, -1, n - 1);
      e = std::clamp<int64_t>(e, -1, n - 1);
      count = b > e ? (b - e - s - 1) / (-s) : 0;
    }
    start[d] = b, step[d] = s;
    full_shape.push_back(count);
    sel.shape.push_back(count);
  }
  RETURN_IF_ERROR(CheckShape(full_shape));
  sel.full_shape = std::move(full_shape);
  sel.start = std::move(start);
  sel.step = std::move(step);
  sel.in_stride = RowMajorStrides(x.shape());
  return sel;
}

absl::StatusOr<std::vector<Tensor>> SliceByIndex(const OpContext& ctx) {
  ASSIGN_OR_RETURN(const Tensor* x, ctx.Input("x"));
  ASSIGN_OR_RETURN(SliceSelection sel, SelectSlice(ctx, *x));
  Tensor out = TakeEach(*x, sel.full_shape, [&](const std::vector<int64_t>& idx, int64_t) { return sel.Offset(idx); });
  out.Reshape(sel.shape);
  return Outputs(std::move(out));
}

// slice_update (iOS18): x with the slice_by_index selection replaced by
// `update`, whose shape is the selection's.
absl::StatusOr<std::vector<Tensor>> SliceUpdate(const OpContext& ctx) {
  ASSIGN_OR_RETURN(const Tensor* x, ctx.Input("x"));
  ASSIGN_OR_RETURN(const Tensor* update, ctx.Input("update"));
  if (update->dtype() != x->dtype() || x->dtype() == DType::kString) return ctx.Invalid("update and x differ in type");
  ASSIGN_OR_RETURN(SliceSelection sel, SelectSlice(ctx, *x));
  if (update->shape() != sel.shape) {
    return ctx.Invalid(absl::StrCat("update has shape ", format::ShapeString(update->shape()), ", the slice is ",
                                    format::ShapeString(sel.shape)));
  }
  Tensor out = *x;
  ForEachIndex(sel.full_shape, [&](const std::vector<int64_t>& idx, int64_t i) {
    if (x->is_float()) out.mutable_floats()[sel.Offset(idx)] = update->floats()[i];
    else out.mutable_ints()[sel.Offset(idx)] = update->ints()[i];
  });
  return Outputs(std::move(out));
}

absl::StatusOr<std::vector<Tensor>> SliceBySize(const OpContext& ctx) {
  ASSIGN_OR_RETURN(const Tensor* x, ctx.Input("x"));
  ASSIGN_OR_RETURN(std::vector<int64_t> begin, ctx.Ints("begin"));
  ASSIGN_OR_RETURN(std::vector<int64_t> size, ctx.Ints("size"));
  const int64_t rank = x->rank();
  if (static_cast<int64_t>(begin.size()) != rank || static_cast<int64_t>(size.size()) != rank) {
    return ctx.Invalid("begin and size need one entry per dim");
  }
  Shape out_shape(rank);
  for (int64_t d = 0; d < rank; ++d) {
    const int64_t n = x->dim(d);
    if (begin[d] < 0) begin[d] += n;
    if (size[d] == -1) size[d] = n - begin[d];
    if (begin[d] < 0 || size[d] < 0 || begin[d] + size[d] > n) return ctx.Invalid("slice out of range");
    out_shape[d] = size[d];
  }
  const std::vector<int64_t> in_stride = RowMajorStrides(x->shape());
  RETURN_IF_ERROR(CheckShape(out_shape));
  return Outputs(TakeEach(*x, out_shape, [&](const std::vector<int64_t>& idx, int64_t) {
    int64_t off = 0;
    for (int64_t d = 0; d < rank; ++d) off += (begin[d] + idx[d]) * in_stride[d];
    return off;
  }));
}

// gather(x, indices, axis): out = x[..., indices, ...] at `axis`; negative
// indices count from the end (iOS17 allows them; earlier opsets never emit
// them).
absl::StatusOr<std::vector<Tensor>> Gather(const OpContext& ctx) {
  ASSIGN_OR_RETURN(const Tensor* x, ctx.Input("x"));
  ASSIGN_OR_RETURN(const Tensor* indices, ctx.Input("indices"));
  ASSIGN_OR_RETURN(int64_t axis_in, ctx.Int("axis", 0));
  ASSIGN_OR_RETURN(int64_t batch_dims, ctx.Int("batch_dims", 0));
  if (batch_dims != 0) return absl::UnimplementedError("gather: batch_dims > 0 is not implemented by the reference executor");
  if (!indices->is_integer_storage()) return ctx.Invalid("indices must be integers");
  auto axis = NormalizeAxis(axis_in, x->rank());
  if (!axis.ok()) return ctx.Invalid(axis.status().message());
  const int64_t n = x->dim(*axis);
  int64_t inner = 1;
  for (int64_t d = *axis + 1; d < x->rank(); ++d) inner *= x->dim(d);
  Shape out_shape(x->shape().begin(), x->shape().begin() + *axis);
  out_shape.insert(out_shape.end(), indices->shape().begin(), indices->shape().end());
  out_shape.insert(out_shape.end(), x->shape().begin() + *axis + 1, x->shape().end());
  const int64_t count = indices->size();
  std::vector<int64_t> row(count);
  for (int64_t k = 0; k < count; ++k) {
    int64_t idx = indices->ints()[k];
    if (idx < 0) idx += n;
    if (idx < 0 || idx >= n) return ctx.Invalid(absl::StrCat("index ", indices->ints()[k], " out of range [0, ", n, ")"));
    row[k] = idx;
  }
  RETURN_IF_ERROR(CheckShape(out_shape));
  if (inner == 0 || count == 0) return Outputs(Tensor::Zeros(x->dtype(), out_shape));
  // Output element i is inner element i % inner of row indices[(i / inner)
  // % count] of outer block i / (inner * count).
  return Outputs(TakeEach(*x, out_shape, [&](const std::vector<int64_t>&, int64_t i) {
    const int64_t o = i / (inner * count), k = (i / inner) % count;
    return (o * n + row[k]) * inner + i % inner;
  }));
}

absl::StatusOr<std::vector<Tensor>> Tile(const OpContext& ctx) {
  ASSIGN_OR_RETURN(const Tensor* x, ctx.Input("x"));
  ASSIGN_OR_RETURN(std::vector<int64_t> reps, ctx.Ints("reps"));
  if (static_cast<int64_t>(reps.size()) != x->rank()) return ctx.Invalid("reps needs one entry per dim");
  Shape out_shape(x->rank());
  for (int64_t d = 0; d < x->rank(); ++d) {
    if (reps[d] < 0) return ctx.Invalid("negative reps");
    out_shape[d] = x->dim(d) * reps[d];
  }
  const std::vector<int64_t> in_stride = RowMajorStrides(x->shape());
  RETURN_IF_ERROR(CheckShape(out_shape));
  return Outputs(TakeEach(*x, out_shape, [&](const std::vector<int64_t>& idx, int64_t) {
    int64_t off = 0;
    for (int64_t d = 0; d < x->rank(); ++d) off += (idx[d] % x->dim(d)) * in_stride[d];
    return off;
  }));
}

absl::StatusOr<std::vector<Tensor>> Pad(const OpContext& ctx) {
  ASSIGN_OR_RETURN(const Tensor* x, ctx.Input("x"));
  ASSIGN_OR_RETURN(std::vector<int64_t> pad, ctx.Ints("pad"));
  ASSIGN_OR_RETURN(std::string mode, ctx.String("mode", "constant"));
  ASSIGN_OR_RETURN(double value, ctx.Float("constant_val", 0));
  const int64_t rank = x->rank();
  if (pad.size() % 2 != 0 || static_cast<int64_t>(pad.size()) > 2 * rank) return ctx.Invalid("pad must have 2*N <= 2*rank entries");
  // The pads apply to the last N dims.
  std::vector<int64_t> before(rank, 0), after(rank, 0);
  const int64_t first = rank - static_cast<int64_t>(pad.size()) / 2;
  for (int64_t d = first; d < rank; ++d) {
    before[d] = pad[2 * (d - first)];
    after[d] = pad[2 * (d - first) + 1];
    if (before[d] < 0 || after[d] < 0) return ctx.Invalid("negative padding");
    const int64_t n = x->dim(d);
    if (mode == "reflect" && (before[d] > n - 1 || after[d] > n - 1)) return ctx.Invalid("reflect padding exceeds dim - 1");
    if (mode == "replicate" && (before[d] > n || after[d] > n || (n == 0 && before[d] + after[d] > 0))) {
      return ctx.Invalid("replicate padding exceeds dim");
    }
  }
  if (mode != "constant" && mode != "reflect" && mode != "replicate") return ctx.Invalid(absl::StrCat("unknown mode '", mode, "'"));
  Shape out_shape(rank);
  for (int64_t d = 0; d < rank; ++d) out_shape[d] = x->dim(d) + before[d] + after[d];
  const std::vector<int64_t> in_stride = RowMajorStrides(x->shape());
  RETURN_IF_ERROR(CheckShape(out_shape));
  return Outputs(TakeEach(*x, out_shape, [&](const std::vector<int64_t>& idx, int64_t) {
    int64_t off = 0;
    for (int64_t d = 0; d < rank; ++d) {
      const int64_t n = x->dim(d);
      int64_t j = idx[d] - before[d];
      if (j < 0 || j >= n) {
        if (mode == "constant") {
          off = -1;
          break;
        }
        if (mode == "reflect") j = j < 0 ? -j : 2 * (n - 1) - j;
        else j = j < 0 ? 0 : n - 1;
      }
      off += j * in_stride[d];
    }
    return off;
  }, value));
}

// space_to_batch / batch_to_space (iOS15, TensorFlow's SpaceToBatchND in
// NCHW): block offset (by, bx) of the padded image goes to batch
// (by * block_w + bx) * n + b.
absl::StatusOr<std::vector<Tensor>> SpaceBatch(const OpContext& ctx, bool to_batch) {
  ASSIGN_OR_RETURN(const Tensor* x, ctx.Input("x"));
  ASSIGN_OR_RETURN(std::vector<int64_t> block, ctx.Ints("block_shape"));
  ASSIGN_OR_RETURN(const Tensor* pads_t, ctx.Input(to_batch ? "paddings" : "crops"));
  if (x->rank() != 4 || block.size() != 2 || pads_t->size() != 4 || !pads_t->is_integer_storage()) {
    return ctx.Invalid("x must be rank 4, block_shape [2] and paddings/crops [2, 2]");
  }
  const int64_t bh = block[0], bw = block[1];
  const int64_t top = pads_t->ints()[0], bottom = pads_t->ints()[1], left = pads_t->ints()[2], right = pads_t->ints()[3];
  if (bh < 1 || bw < 1 || top < 0 || bottom < 0 || left < 0 || right < 0) return ctx.Invalid("bad block or padding");
  const int64_t c = x->dim(1);
  // The space-side shape [n, c, H, W] (H, W padded) and the batch side.
  int64_t n, ph, pw;
  if (to_batch) {
    n = x->dim(0), ph = x->dim(2) + top + bottom, pw = x->dim(3) + left + right;
    if (ph % bh != 0 || pw % bw != 0) return ctx.Invalid("padded spatial dims are not multiples of the block");
  } else {
    if (x->dim(0) % (bh * bw) != 0) return ctx.Invalid("batch is not a multiple of the block size");
    n = x->dim(0) / (bh * bw), ph = x->dim(2) * bh, pw = x->dim(3) * bw;
    if (ph < top + bottom || pw < left + right) return ctx.Invalid("crops exceed the output");
  }
  const int64_t sh = ph / bh, sw = pw / bw;  // batch-side spatial dims
  const Shape batch_shape = {n * bh * bw, c, sh, sw};
  const Shape space_shape = {n, c, ph - top - bottom, pw - left - right};
  if (to_batch) {
    // Batch-side element -> space-side element (or -1 in the padding).
    RETURN_IF_ERROR(CheckShape(batch_shape));
    return Outputs(TakeEach(*x, batch_shape, [&](const std::vector<int64_t>& bi, int64_t) -> int64_t {
      const int64_t b = bi[0] % n, off = bi[0] / n, by = off / bw, bx = off % bw;
      const int64_t y = bi[2] * bh + by - top, xx = bi[3] * bw + bx - left;
      if (y < 0 || y >= space_shape[2] || xx < 0 || xx >= space_shape[3]) return -1;
      return ((b * c + bi[1]) * space_shape[2] + y) * space_shape[3] + xx;
    }));
  }
  // Space-side element (after the crop) -> the batch-side element it came from.
  RETURN_IF_ERROR(CheckShape(space_shape));
  return Outputs(TakeEach(*x, space_shape, [&](const std::vector<int64_t>& si, int64_t) -> int64_t {
    const int64_t py = si[2] + top, px = si[3] + left;
    const int64_t batch = ((py % bh) * bw + px % bw) * n + si[0];
    return ((batch * c + si[1]) * sh + py / bh) * sw + px / bw;
  }));
}

absl::StatusOr<std::vector<Tensor>> SpaceToBatch(const OpContext& ctx) { return SpaceBatch(ctx, true); }
absl::StatusOr<std::vector<Tensor>> BatchToSpace(const OpContext& ctx) { return SpaceBatch(ctx, false); }

// range_1d(end, start, step): start, start + step, ... while short of end.

}  // namespace

void RegisterIndexingOps(OpRegistry* r) {
  r->Register("slice_by_index", SliceByIndex);
  r->Register("slice_by_size", SliceBySize);
  r->Register("slice_update", SliceUpdate);
  r->Register("gather", Gather);
  r->Register("tile", Tile);
  r->Register("pad", Pad);
  r->Register("space_to_batch", SpaceToBatch);
  r->Register("batch_to_space", BatchToSpace);
}

}  // namespace coremlz::execute
