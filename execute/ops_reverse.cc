// Reversal along axes (coremltools iOS15 tensor_transformation.py): reverse
// (torch.flip) and reverse_sequence (per-batch prefixes reversed, as
// bidirectional sequence models use on padded batches).
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "execute/indexing.h"
#include "execute/op_registry.h"

namespace coremlz::execute {
namespace {

// out[i] = x[source(i)], for a source offset computed per output
// multi-index.
template <typename SourceFn>
absl::StatusOr<Tensor> Gathered(const Tensor& x, SourceFn source) {
  ASSIGN_OR_RETURN(Tensor out, Tensor::Allocate(x.dtype(), x.shape()));
  const std::vector<int64_t> strides = RowMajorStrides(x.shape());
  std::vector<int64_t> idx(x.rank(), 0);
  for (int64_t i = 0; i < x.size(); ++i) {
    for (int64_t d = 0; d < x.rank(); ++d) idx[d] = (i / strides[d]) % x.dim(d);
    const int64_t from = source(idx, strides);
    if (x.is_float()) {
      out.mutable_floats()[i] = x.floats()[from];
    } else {
      out.mutable_ints()[i] = x.ints()[from];
    }
  }
  return out;
}

// reverse(x, axes = all dims).
absl::StatusOr<std::vector<Tensor>> Reverse(const OpContext& ctx) {
  ASSIGN_OR_RETURN(const Tensor* x, ctx.Input("x"));
  if (!x->is_float() && !x->is_integer_storage()) return ctx.Invalid("x must be a numeric tensor");
  std::vector<bool> flip(x->rank(), !ctx.Has("axes"));
  ASSIGN_OR_RETURN(std::vector<int64_t> axes, ctx.Ints("axes", {}));
  for (int64_t a : axes) {
    auto axis = NormalizeAxis(a, x->rank());
    if (!axis.ok()) return ctx.Invalid(axis.status().message());
    flip[*axis] = true;
  }
  ASSIGN_OR_RETURN(Tensor out, Gathered(*x, [&](const std::vector<int64_t>& idx, const std::vector<int64_t>& strides) {
    int64_t from = 0;
    for (int64_t d = 0; d < x->rank(); ++d) from += (flip[d] ? x->dim(d) - 1 - idx[d] : idx[d]) * strides[d];
    return from;
  }));
  return Outputs(std::move(out));
}

// reverse_sequence(x, lengths, seq_axis = 0, batch_axis = 0): for batch b,
// the first lengths[b] elements along seq_axis are reversed, the rest kept.
absl::StatusOr<std::vector<Tensor>> ReverseSequence(const OpContext& ctx) {
  ASSIGN_OR_RETURN(const Tensor* x, ctx.Input("x"));
  ASSIGN_OR_RETURN(const Tensor* lengths, ctx.Input("lengths"));
  ASSIGN_OR_RETURN(int64_t seq_in, ctx.Int("seq_axis", 0));
  ASSIGN_OR_RETURN(int64_t batch_in, ctx.Int("batch_axis", 0));
  if (!x->is_float() && !x->is_integer_storage()) return ctx.Invalid("x must be a numeric tensor");
  auto seq_axis = NormalizeAxis(seq_in, x->rank());
  auto batch_axis = NormalizeAxis(batch_in, x->rank());
  if (!seq_axis.ok() || !batch_axis.ok()) return ctx.Invalid("seq_axis or batch_axis is out of range");
  if (*seq_axis == *batch_axis) return ctx.Invalid("seq_axis and batch_axis must differ");
  if (!lengths->is_integer_storage() || lengths->rank() != 1 || lengths->size() != x->dim(*batch_axis)) {
    return ctx.Invalid("lengths must be one integer per batch element");
  }
  const int64_t n = x->dim(*seq_axis);
  for (int32_t len : lengths->ints()) {
    if (len < 0 || len > n) return ctx.Invalid(absl::StrCat("length ", len, " is out of range [0, ", n, "]"));
  }
  ASSIGN_OR_RETURN(Tensor out, Gathered(*x, [&](const std::vector<int64_t>& idx, const std::vector<int64_t>& strides) {
    const int64_t len = lengths->ints()[idx[*batch_axis]], s = idx[*seq_axis];
    const int64_t from_s = s < len ? len - 1 - s : s;
    int64_t from = 0;
    for (int64_t d = 0; d < x->rank(); ++d) from += (d == *seq_axis ? from_s : idx[d]) * strides[d];
    return from;
  }));
  return Outputs(std::move(out));
}

}  // namespace

void RegisterReverseOps(OpRegistry* r) {
  r->Register("reverse", Reverse);
  r->Register("reverse_sequence", ReverseSequence);
}

}  // namespace coremlz::execute
