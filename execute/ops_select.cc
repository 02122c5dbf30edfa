// Ops that select elements by their values (tensor_operation.py):
// non_zero and non_maximum_suppression.
//
// non_zero: the [N, rank] int32 indices of the non-zero elements in
// row-major order (numpy.transpose(numpy.nonzero(x))).
//
// non_maximum_suppression follows the NeuralNetwork NMS layer the MIL op
// was defined from (NeuralNetwork.proto, NonMaximumSuppressionLayerParams),
// which says what the op definition leaves open: a box's score is the
// largest of its class scores (and with per_class_suppression its class the
// one of that score); boxes scoring below score_threshold are dropped; the
// rest are taken in descending score (equal scores by index), each dropped
// when its IoU with a box already taken (of its class) exceeds
// iou_threshold, up to max_boxes; the outputs are padded with 0 (indices
// with -1); when no box passes the threshold, the highest-scoring box is
// returned alone (count 1). Boxes are (x centre, y centre, width, height).
// iOS15: boxes [n, B, 4], scores [n, B, K], outputs boxes [n, max, 4],
// scores [n, max, K], indices [n, max], counts [n]. iOS17: boxes [n, 4, B],
// scores [n, K, B], no score_threshold, outputs [n, 4, max], [n, K, max],
// [n, max].
#include <algorithm>
#include <cmath>
#include <numeric>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "execute/op_registry.h"

namespace coremlz::execute {
namespace {

absl::StatusOr<std::vector<Tensor>> NonZero(const OpContext& ctx) {
  ASSIGN_OR_RETURN(const Tensor* x, ctx.Input("x"));
  if (!x->is_float() && !x->is_integer_storage()) return ctx.Invalid("x must be numeric or bool");
  const int64_t rank = x->rank();
  std::vector<int64_t> hits;
  for (int64_t i = 0; i < x->size(); ++i) {
    if (x->is_float() ? x->floats()[i] != 0 : x->ints()[i] != 0) hits.push_back(i);
  }
  const int64_t n = static_cast<int64_t>(hits.size());
  ASSIGN_OR_RETURN(Tensor out, Tensor::Allocate(DType::kInt32, {n, rank}));
  for (int64_t k = 0; k < n; ++k) {
    int64_t i = hits[k];
    for (int64_t d = rank; d-- > 0;) {
      out.mutable_ints()[k * rank + d] = static_cast<int32_t>(i % x->dim(d));
      i /= x->dim(d);
    }
  }
  return Outputs(std::move(out));
}

double Iou(const double* a, const double* b) {
  const double ax0 = a[0] - a[2] / 2, ax1 = a[0] + a[2] / 2, ay0 = a[1] - a[3] / 2, ay1 = a[1] + a[3] / 2;
  const double bx0 = b[0] - b[2] / 2, bx1 = b[0] + b[2] / 2, by0 = b[1] - b[3] / 2, by1 = b[1] + b[3] / 2;
  const double iw = std::max(0.0, std::min(ax1, bx1) - std::max(ax0, bx0));
  const double ih = std::max(0.0, std::min(ay1, by1) - std::max(ay0, by0));
  const double inter = iw * ih;
  const double uni = std::max(0.0, a[2]) * std::max(0.0, a[3]) + std::max(0.0, b[2]) * std::max(0.0, b[3]) - inter;
  return uni > 0 ? inter / uni : 0;
}

absl::StatusOr<std::vector<Tensor>> Nms(const OpContext& ctx) {
  const bool ios17 = ctx.opset() >= 17;
  ASSIGN_OR_RETURN(const Tensor* boxes, ctx.Input("boxes"));
  ASSIGN_OR_RETURN(const Tensor* scores, ctx.Input("scores"));
  ASSIGN_OR_RETURN(double iou_threshold, ctx.Float("iou_threshold", 0));
  if (!ctx.Has("iou_threshold") || !ctx.Has("max_boxes")) return ctx.Invalid("needs iou_threshold and max_boxes");
  double score_threshold = -INFINITY;
  if (!ios17) {
    if (!ctx.Has("score_threshold")) return ctx.Invalid("needs score_threshold");
    ASSIGN_OR_RETURN(score_threshold, ctx.Float("score_threshold", 0));
  }
  ASSIGN_OR_RETURN(int64_t max_boxes, ctx.Int("max_boxes"));
  ASSIGN_OR_RETURN(bool per_class, ctx.Bool("per_class_suppression", false));
  if (!boxes->is_float() || !scores->is_float() || boxes->rank() != 3 || scores->rank() != 3) {
    return ctx.Invalid("boxes and scores must be rank-3 float tensors");
  }
  const int64_t n = boxes->dim(0);
  const int64_t count = ios17 ? boxes->dim(2) : boxes->dim(1);
  const int64_t classes = ios17 ? scores->dim(1) : scores->dim(2);
  if ((ios17 ? boxes->dim(1) : boxes->dim(2)) != 4 || scores->dim(0) != n ||
      (ios17 ? scores->dim(2) : scores->dim(1)) != count || classes < 1) {
    return ctx.Invalid(ios17 ? "boxes must be [n, 4, B] and scores [n, K, B]" : "boxes must be [n, B, 4] and scores [n, B, K]");
  }
  if (max_boxes < 0) return ctx.Invalid("max_boxes must not be negative");
  // Element (box b, coordinate or class k) of a batch item's boxes or scores.
  auto box_at = [&](int64_t item, int64_t b, int64_t k) {
    return boxes->floats()[ios17 ? (item * 4 + k) * count + b : (item * count + b) * 4 + k];
  };
  auto score_at = [&](int64_t item, int64_t b, int64_t k) {
    return scores->floats()[ios17 ? (item * classes + k) * count + b : (item * count + b) * classes + k];
  };
  Shape box_shape = ios17 ? Shape{n, 4, max_boxes} : Shape{n, max_boxes, 4};
  Shape score_shape = ios17 ? Shape{n, classes, max_boxes} : Shape{n, max_boxes, classes};
  ASSIGN_OR_RETURN(Tensor out_boxes, Tensor::Allocate(DType::kFloat32, box_shape));
  ASSIGN_OR_RETURN(Tensor out_scores, Tensor::Allocate(DType::kFloat32, score_shape));
  ASSIGN_OR_RETURN(Tensor out_indices, Tensor::Allocate(DType::kInt32, {n, max_boxes}));
  ASSIGN_OR_RETURN(Tensor out_counts, Tensor::Allocate(DType::kInt32, {n}));
  std::fill(out_indices.mutable_ints().begin(), out_indices.mutable_ints().end(), -1);
  std::vector<double> best(count);
  std::vector<int64_t> cls(count), order(count);
  std::vector<double> coords(count * 4);
  for (int64_t item = 0; item < n; ++item) {
    for (int64_t b = 0; b < count; ++b) {
      best[b] = score_at(item, b, 0), cls[b] = 0;
      for (int64_t k = 1; k < classes; ++k) {
        if (score_at(item, b, k) > best[b]) best[b] = score_at(item, b, k), cls[b] = k;
      }
      for (int k = 0; k < 4; ++k) coords[b * 4 + k] = box_at(item, b, k);
    }
    std::iota(order.begin(), order.end(), 0);
    // NaN scores sort last (a comparison with NaN is no ordering).
    auto key = [&](int64_t b) { return std::isnan(best[b]) ? -INFINITY : best[b]; };
    std::stable_sort(order.begin(), order.end(), [&](int64_t l, int64_t r) { return key(l) > key(r); });
    std::vector<int64_t> kept;
    for (int64_t b : order) {
      if (static_cast<int64_t>(kept.size()) >= max_boxes) break;
      if (!(best[b] >= score_threshold)) continue;
      bool suppressed = false;
      for (int64_t s : kept) {
        if ((!per_class || cls[s] == cls[b]) && Iou(&coords[s * 4], &coords[b * 4]) > iou_threshold) {
          suppressed = true;
          break;
        }
      }
      if (!suppressed) kept.push_back(b);
    }
    if (kept.empty() && count > 0 && max_boxes > 0) kept.push_back(order[0]);  // never an empty result
    out_counts.mutable_ints()[item] = static_cast<int32_t>(kept.size());
    for (int64_t j = 0; j < static_cast<int64_t>(kept.size()); ++j) {
      const int64_t b = kept[j];
      out_indices.mutable_ints()[item * max_boxes + j] = static_cast<int32_t>(b);
      for (int k = 0; k < 4; ++k) {
        out_boxes.mutable_floats()[ios17 ? (item * 4 + k) * max_boxes + j : (item * max_boxes + j) * 4 + k] =
            box_at(item, b, k);
      }
      for (int64_t k = 0; k < classes; ++k) {
        out_scores.mutable_floats()[ios17 ? (item * classes + k) * max_boxes + j : (item * max_boxes + j) * classes + k] =
            score_at(item, b, k);
      }
    }
  }
  if (ios17) return Outputs(std::move(out_boxes), std::move(out_scores), std::move(out_indices));
  return Outputs(std::move(out_boxes), std::move(out_scores), std::move(out_indices), std::move(out_counts));
}

}  // namespace

void RegisterSelectOps(OpRegistry* r) {
  r->Register("non_zero", NonZero);
  r->Register("non_maximum_suppression", Nms);
}

}  // namespace coremlz::execute
