// scaled_dot_product_attention (iOS18 transformers.py): softmax(Q K^T /
// sqrt(E) + mask) V over the last two dims, batch dims equal in Q, K, V. A
// bool mask keeps the positions that are true; a float mask is added.
#include <cmath>
#include <limits>

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

absl::StatusOr<std::vector<Tensor>> Sdpa(const OpContext& ctx) {
  ASSIGN_OR_RETURN(const Tensor* q, ctx.Input("query"));
  ASSIGN_OR_RETURN(const Tensor* k, ctx.Input("key"));
  ASSIGN_OR_RETURN(const Tensor* v, ctx.Input("value"));
  const Tensor* mask = ctx.Optional("attn_mask");
  if (!q->is_float() || !k->is_float() || !v->is_float()) return ctx.Invalid("query, key and value must be floating point");
  const int64_t rank = q->rank();
  if (rank < 3 || k->rank() != rank || v->rank() != rank) return ctx.Invalid("query, key and value need one rank >= 3");
  const Shape batch(q->shape().begin(), q->shape().end() - 2);
  if (Shape(k->shape().begin(), k->shape().end() - 2) != batch || Shape(v->shape().begin(), v->shape().end() - 2) != batch) {
    return absl::UnimplementedError("scaled_dot_product_attention: broadcasting batch dims is not implemented by the reference executor");
  }
  const int64_t l = q->dim(rank - 2), e = q->dim(rank - 1), s = k->dim(rank - 2), ev = v->dim(rank - 1);
  if (k->dim(rank - 1) != e || v->dim(rank - 2) != s) return ctx.Invalid("key must be [.., S, E] and value [.., S, EV]");
  Shape score_shape = batch;
  score_shape.push_back(l);
  score_shape.push_back(s);
  std::vector<int64_t> mask_offset;
  if (mask) {
    if (mask->dtype() != DType::kBool && !mask->is_float()) return ctx.Invalid("attn_mask must be bool or floating point");
    auto b = BroadcastShapes(mask->shape(), score_shape);
    if (!b.ok() || *b != score_shape) return ctx.Invalid("attn_mask does not broadcast to [B.., L, S]");
    mask_offset = BroadcastOffsets(mask->shape(), score_shape);
  }
  Shape out_shape = batch;
  out_shape.push_back(l);
  out_shape.push_back(ev);
  ASSIGN_OR_RETURN(Tensor out, Tensor::Allocate(DType::kFloat32, out_shape));
  const int64_t batches = NumElements(batch);
  const float scale = e > 0 ? 1.0f / std::sqrt(static_cast<float>(e)) : 1.0f;
  RowMatrix scores(l, s);
  for (int64_t b = 0; b < batches; ++b) {
    ConstMap qb(q->floats().data() + b * l * e, l, e), kb(k->floats().data() + b * s * e, s, e);
    ConstMap vb(v->floats().data() + b * s * ev, s, ev);
    scores.noalias() = (qb * kb.transpose()) * scale;
    for (int64_t i = 0; i < l; ++i) {
      float m = -std::numeric_limits<float>::infinity();
      for (int64_t j = 0; j < s; ++j) {
        if (mask) {
          const int64_t mo = mask_offset[(b * l + i) * s + j];
          if (mask->dtype() == DType::kBool) {
            if (!mask->ints()[mo]) scores(i, j) = -std::numeric_limits<float>::infinity();
          } else {
            scores(i, j) += mask->floats()[mo];
          }
        }
        m = std::max(m, scores(i, j));
      }
      // A fully masked row gives NaN, as softmax of all -inf does in PyTorch.
      double sum = 0;
      for (int64_t j = 0; j < s; ++j) sum += scores(i, j) = std::exp(scores(i, j) - m);
      for (int64_t j = 0; j < s; ++j) scores(i, j) = static_cast<float>(scores(i, j) / sum);
    }
    Map(out.mutable_floats().data() + b * l * ev, l, ev).noalias() = scores * vb;
  }
  return Outputs(std::move(out));
}

}  // namespace

void RegisterAttentionOps(OpRegistry* r) { r->Register("scaled_dot_product_attention", Sdpa); }

}  // namespace coremlz::execute
