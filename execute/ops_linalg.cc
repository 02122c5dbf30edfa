// linear and matmul (iOS15 linear.py): Eigen GEMM over row-major maps.
// matmul follows numpy: rank-1 operands gain and then lose a unit dim,
// leading (batch) dims broadcast, transpose_x/transpose_y swap the last two.
#include <utility>

#include "Eigen/Core"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "execute/broadcast.h"
#include "execute/op_registry.h"

namespace coremlz::execute {
namespace {

using RowMatrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using ConstMap = Eigen::Map<const RowMatrix>;
using Map = Eigen::Map<RowMatrix>;

absl::StatusOr<std::vector<Tensor>> Linear(const OpContext& ctx) {
  ASSIGN_OR_RETURN(const Tensor* x, ctx.Input("x"));
  ASSIGN_OR_RETURN(const Tensor* w, ctx.Input("weight"));
  const Tensor* bias = ctx.Optional("bias");
  if (!x->is_float() || !w->is_float() || (bias && !bias->is_float())) return ctx.Invalid("operands must be floating point");
  if (x->rank() < 1 || w->rank() != 2) return ctx.Invalid("x must have rank >= 1 and weight rank 2");
  const int64_t din = x->dim(x->rank() - 1), dout = w->dim(0);
  if (w->dim(1) != din) {
    return ctx.Invalid(absl::StrCat("weight ", format::ShapeString(w->shape()), " does not take x ",
                                    format::ShapeString(x->shape())));
  }
  if (bias && bias->size() != dout) return ctx.Invalid("bias must have one value per output");
  Shape out_shape = x->shape();
  out_shape.back() = dout;
  ASSIGN_OR_RETURN(Tensor out, Tensor::Allocate(DType::kFloat32, out_shape));
  const int64_t rows = NumElements(absl::MakeConstSpan(x->shape()).subspan(0, x->rank() - 1));
  if (out.size() == 0) return Outputs(std::move(out));
  Map y(out.mutable_floats().data(), rows, dout);
  if (din > 0) y.noalias() = ConstMap(x->floats().data(), rows, din) * ConstMap(w->floats().data(), dout, din).transpose();
  if (bias) y.rowwise() += Eigen::Map<const Eigen::RowVectorXf>(bias->floats().data(), dout);
  return Outputs(std::move(out));
}

absl::StatusOr<std::vector<Tensor>> MatMul(const OpContext& ctx) {
  ASSIGN_OR_RETURN(const Tensor* x, ctx.Input("x"));
  ASSIGN_OR_RETURN(const Tensor* y, ctx.Input("y"));
  ASSIGN_OR_RETURN(bool tx, ctx.Bool("transpose_x", false));
  ASSIGN_OR_RETURN(bool ty, ctx.Bool("transpose_y", false));
  if (!x->is_float() || !y->is_float()) return ctx.Invalid("operands must be floating point");
  if (x->rank() < 1 || y->rank() < 1) return ctx.Invalid("operands must have rank >= 1");
  // Rank-1 operands: x is a row [1, K], y a column [K, 1]; transposes do not
  // apply to them.
  Shape xs = x->shape(), ys = y->shape();
  const bool x_vec = xs.size() == 1, y_vec = ys.size() == 1;
  if (x_vec) xs.insert(xs.begin(), 1), tx = false;
  if (y_vec) ys.push_back(1), ty = false;
  const int64_t xr = xs[xs.size() - 2], xc = xs.back(), yr = ys[ys.size() - 2], yc = ys.back();
  const int64_t m = tx ? xc : xr, k = tx ? xr : xc, k2 = ty ? yc : yr, n = ty ? yr : yc;
  if (k != k2) {
    return ctx.Invalid(absl::StrCat("inner dims differ: x ", format::ShapeString(x->shape()), ", y ",
                                    format::ShapeString(y->shape())));
  }
  const Shape xb(xs.begin(), xs.end() - 2), yb(ys.begin(), ys.end() - 2);
  auto batch = BroadcastShapes(xb, yb);
  if (!batch.ok()) return ctx.Invalid(batch.status().message());
  Shape out_shape = *batch;
  if (!x_vec) out_shape.push_back(m);
  if (!y_vec) out_shape.push_back(n);
  ASSIGN_OR_RETURN(Tensor out, Tensor::Allocate(DType::kFloat32, out_shape));
  const int64_t batches = NumElements(*batch);
  if (batches == 0 || m == 0 || n == 0) return Outputs(std::move(out));
  const std::vector<int64_t> bx = BroadcastOffsets(xb, *batch), by = BroadcastOffsets(yb, *batch);
  for (int64_t b = 0; b < batches; ++b) {
    ConstMap a(x->floats().data() + bx[b] * xr * xc, xr, xc);
    ConstMap c(y->floats().data() + by[b] * yr * yc, yr, yc);
    Map r(out.mutable_floats().data() + b * m * n, m, n);
    if (k == 0) continue;
    if (!tx && !ty) r.noalias() = a * c;
    else if (tx && !ty) r.noalias() = a.transpose() * c;
    else if (!tx && ty) r.noalias() = a * c.transpose();
    else r.noalias() = a.transpose() * c.transpose();
  }
  return Outputs(std::move(out));
}

}  // namespace

void RegisterLinalgOps(OpRegistry* r) {
  r->Register("linear", Linear);
  r->Register("matmul", MatMul);
}

}  // namespace coremlz::execute
