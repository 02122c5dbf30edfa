// einsum (coremltools iOS15 linear.py) for two operands. coremltools emits
// it only for "nchw,nwhu->nchu", "chw,whr->chr" and their relabellings; this
// kernel computes any two-operand equation whose letters each name one dim
// of an operand: batch letters (in both operands and the output; a size-1
// dim broadcasts), contracted letters (in both operands only) and free
// letters (in one operand and the output). It packs the operands as batched
// [M, K] x [K, N] matrices for Eigen and permutes the product into the
// output's letter order. Ellipses, repeated letters within an operand
// (diagonals) and letters summed within one operand are UNIMPLEMENTED.
#include <algorithm>
#include <cctype>
#include <map>
#include <string>

#include "Eigen/Core"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"
#include "execute/indexing.h"
#include "execute/op_registry.h"

namespace coremlz::execute {
namespace {

using RowMatrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

struct Equation {
  std::string a, b, out;
};

absl::Status Unsupported(absl::string_view equation, absl::string_view why) {
  return absl::UnimplementedError(
      absl::StrCat("einsum: equation '", equation, "' is not supported by the reference executor (", why, ")"));
}

absl::StatusOr<Equation> ParseEquation(const OpContext& ctx, const std::string& equation) {
  std::string compact;
  for (char c : equation) {
    if (c != ' ') compact += c;
  }
  if (compact.find("...") != std::string::npos) return Unsupported(equation, "ellipsis");
  std::vector<std::string> sides = absl::StrSplit(compact, "->");
  if (sides.size() > 2) return ctx.Invalid(absl::StrCat("malformed equation '", equation, "'"));
  std::vector<std::string> operands = absl::StrSplit(sides[0], ',');
  if (operands.size() != 2) return Unsupported(equation, "only two operands are");
  Equation eq{operands[0], operands[1], ""};
  for (const std::string* s : {&eq.a, &eq.b}) {
    for (char c : *s) {
      if (!std::isalpha(static_cast<unsigned char>(c))) {
        return ctx.Invalid(absl::StrCat("malformed equation '", equation, "'"));
      }
      if (std::count(s->begin(), s->end(), c) > 1) return Unsupported(equation, "a letter repeated within an operand");
    }
  }
  if (sides.size() == 2) {
    eq.out = sides[1];
  } else {
    // Implicit output: the letters that occur once, alphabetically.
    for (char c = 'A'; c <= 'z'; ++c) {
      if (std::isalpha(static_cast<unsigned char>(c)) && std::count(eq.a.begin(), eq.a.end(), c) +
                                                                 std::count(eq.b.begin(), eq.b.end(), c) == 1) {
        eq.out += c;
      }
    }
  }
  for (char c : eq.out) {
    const bool known = eq.a.find(c) != std::string::npos || eq.b.find(c) != std::string::npos;
    if (!std::isalpha(static_cast<unsigned char>(c)) || !known || std::count(eq.out.begin(), eq.out.end(), c) > 1) {
      return ctx.Invalid(absl::StrCat("output of equation '", equation, "' names letter '", std::string(1, c),
                                      "' wrongly"));
    }
  }
  for (char c : eq.a + eq.b) {
    const bool in_a = eq.a.find(c) != std::string::npos, in_b = eq.b.find(c) != std::string::npos;
    if (in_a != in_b && eq.out.find(c) == std::string::npos) {
      return Unsupported(equation, "a letter summed within one operand");
    }
  }
  return eq;
}

// The elements of `x` (dims named by `letters`) laid out in the order
// `order`, each letter of which has size sizes[letter]; a dim of size 1 in x
// repeats (broadcasts).
absl::StatusOr<std::vector<float>> Pack(const Tensor& x, const std::string& letters, const std::string& order,
                                        const std::map<char, int64_t>& sizes) {
  Shape shape;
  std::vector<int64_t> src_strides;
  const std::vector<int64_t> x_strides = RowMajorStrides(x.shape());
  for (char c : order) {
    const size_t d = letters.find(c);
    shape.push_back(sizes.at(c));
    src_strides.push_back(x.dim(d) == 1 ? 0 : x_strides[d]);
  }
  RETURN_IF_ERROR(CheckShape(shape));
  std::vector<float> packed(NumElements(shape));
  std::vector<int64_t> idx(shape.size(), 0);
  int64_t src = 0;
  for (float& v : packed) {
    v = x.floats()[src];
    for (size_t d = shape.size(); d-- > 0;) {
      src += src_strides[d];
      if (++idx[d] < shape[d]) break;
      src -= src_strides[d] * idx[d];
      idx[d] = 0;
    }
  }
  return packed;
}

absl::StatusOr<std::vector<Tensor>> Einsum(const OpContext& ctx) {
  std::vector<const Tensor*> values = ctx.Variadic("values");
  ASSIGN_OR_RETURN(std::string equation, ctx.String("equation", ""));
  ASSIGN_OR_RETURN(Equation eq, ParseEquation(ctx, equation));
  if (values.size() != 2) return ctx.Invalid(absl::StrCat("expected 2 values, got ", values.size()));
  const Tensor& a = *values[0];
  const Tensor& b = *values[1];
  if (!a.is_float() || !b.is_float()) return ctx.Invalid("values must be floating point");
  if (a.rank() != static_cast<int64_t>(eq.a.size()) || b.rank() != static_cast<int64_t>(eq.b.size())) {
    return ctx.Invalid(absl::StrCat("equation '", equation, "' does not match ranks ", a.rank(), " and ", b.rank()));
  }
  std::map<char, int64_t> sizes;
  for (size_t d = 0; d < eq.a.size(); ++d) sizes[eq.a[d]] = a.dim(d);
  for (size_t d = 0; d < eq.b.size(); ++d) {
    const char c = eq.b[d];
    auto it = sizes.find(c);
    if (it == sizes.end() || it->second == b.dim(d)) {
      sizes[c] = b.dim(d);
      continue;
    }
    const bool batch = eq.out.find(c) != std::string::npos;
    if (!batch || (it->second != 1 && b.dim(d) != 1)) {
      return ctx.Invalid(absl::StrCat("letter '", std::string(1, c), "' has sizes ", it->second, " and ", b.dim(d)));
    }
    if (it->second == 1) it->second = b.dim(d);
  }
  std::string batch, contract, free_a, free_b;
  for (char c : eq.a) {
    const bool in_b = eq.b.find(c) != std::string::npos, in_out = eq.out.find(c) != std::string::npos;
    (in_b ? (in_out ? batch : contract) : free_a) += c;
  }
  for (char c : eq.b) {
    if (eq.a.find(c) == std::string::npos) free_b += c;
  }
  auto product = [&](const std::string& letters) {
    int64_t p = 1;
    for (char c : letters) p *= sizes[c];
    return p;
  };
  Shape out_shape;
  for (char c : eq.out) out_shape.push_back(sizes[c]);
  ASSIGN_OR_RETURN(Tensor out, Tensor::Allocate(DType::kFloat32, out_shape));
  const int64_t nb = product(batch), m = product(free_a), k = product(contract), n = product(free_b);
  ASSIGN_OR_RETURN(std::vector<float> pa, Pack(a, eq.a, batch + free_a + contract, sizes));
  ASSIGN_OR_RETURN(std::vector<float> pb, Pack(b, eq.b, batch + contract + free_b, sizes));
  // The product in [batch, free_a, free_b] order has the output's elements.
  std::vector<float> product_buffer(out.size());
  for (int64_t i = 0; i < nb && m * n * k > 0; ++i) {
    Eigen::Map<const RowMatrix> am(pa.data() + i * m * k, m, k), bm(pb.data() + i * k * n, k, n);
    Eigen::Map<RowMatrix> cm(product_buffer.data() + i * m * n, m, n);
    cm.noalias() = am * bm;
  }
  const std::string product_letters = batch + free_a + free_b;
  Shape product_shape;
  for (char c : product_letters) product_shape.push_back(sizes[c]);
  const Tensor product_tensor = Tensor::Float(product_shape, std::move(product_buffer));
  ASSIGN_OR_RETURN(std::vector<float> permuted, Pack(product_tensor, product_letters, eq.out, sizes));
  std::copy(permuted.begin(), permuted.end(), out.mutable_floats().begin());
  return Outputs(std::move(out));
}

}  // namespace

void RegisterEinsumOps(OpRegistry* r) { r->Register("einsum", Einsum); }

}  // namespace coremlz::execute
