// band_part (coremltools iOS15 tensor_operation.py): keeps a band around the
// diagonal of the innermost matrices and zeroes the rest; transformers use it
// for causal attention masks (band_part(x, -1, 0) is the lower triangle).
#include "absl/status/status.h"
#include "common/status_macros.h"
#include "execute/op_registry.h"

namespace coremlz::execute {
namespace {

// band_part(x, lower = -1, upper = -1): element (m, n) is kept when
// (lower < 0 || m - n <= lower) && (upper < 0 || n - m <= upper).
absl::StatusOr<std::vector<Tensor>> BandPart(const OpContext& ctx) {
  ASSIGN_OR_RETURN(const Tensor* x, ctx.Input("x"));
  ASSIGN_OR_RETURN(int64_t lower, ctx.Int("lower", -1));
  ASSIGN_OR_RETURN(int64_t upper, ctx.Int("upper", -1));
  if (x->rank() < 2) return ctx.Invalid("x must have rank >= 2");
  if (!x->is_float() && !x->is_integer_storage()) return ctx.Invalid("x must be a numeric tensor");
  const int64_t rows = x->dim(x->rank() - 2), cols = x->dim(x->rank() - 1);
  Tensor out = *x;
  for (int64_t i = 0; i < out.size(); ++i) {
    const int64_t m = (i / cols) % rows, n = i % cols;
    const bool keep = (lower < 0 || m - n <= lower) && (upper < 0 || n - m <= upper);
    if (keep) continue;
    if (out.is_float()) {
      out.mutable_floats()[i] = 0;
    } else {
      out.mutable_ints()[i] = 0;
    }
  }
  return Outputs(std::move(out));
}

}  // namespace

void RegisterBandPartOps(OpRegistry* r) { r->Register("band_part", BandPart); }

}  // namespace coremlz::execute
