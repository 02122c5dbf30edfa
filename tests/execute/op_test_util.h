// Running one op kernel from the registry on given tensors, and random data,
// for the per-op tests.
#ifndef COREMLZ_TESTS_EXECUTE_OP_TEST_UTIL_H_
#define COREMLZ_TESTS_EXECUTE_OP_TEST_UTIL_H_

#include <map>
#include <random>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "execute/op_registry.h"
#include "execute/tensor.h"

namespace coremlz::execute::testing {

using Args = std::map<std::string, std::vector<Tensor>>;

inline absl::StatusOr<std::vector<Tensor>> RunOp(const std::string& type, const Args& args, int opset = 18,
                                                  int outputs = 1) {
  OpKernel kernel = OpRegistry::Default().Find(type);
  if (!kernel) return absl::UnimplementedError(type);
  std::vector<OutputDecl> decls(outputs);
  OpContext ctx(type, opset, &decls);
  for (const auto& [name, values] : args) {
    std::vector<const Tensor*> ptrs;
    for (const Tensor& t : values) ptrs.push_back(&t);
    ctx.Bind(name, ptrs);
  }
  return kernel(ctx);
}

inline Tensor Random(std::mt19937& rng, Shape shape, float lo = -1, float hi = 1) {
  std::uniform_real_distribution<float> u(lo, hi);
  std::vector<float> v(NumElements(shape));
  for (float& x : v) x = u(rng);
  return Tensor::Float(std::move(shape), std::move(v));
}

inline Tensor Ints(std::vector<int32_t> v) {
  const int64_t n = static_cast<int64_t>(v.size());
  return Tensor::Int({n}, std::move(v));
}
inline Tensor Str(const std::string& s) { return Tensor::String({}, {s}); }
inline Tensor BoolScalar(bool b) { return Tensor::Bool({}, {b ? 1 : 0}); }

// Row-major flat index of `idx` in `shape`.
inline int64_t Flat(const Shape& shape, const std::vector<int64_t>& idx) {
  int64_t f = 0;
  for (size_t d = 0; d < shape.size(); ++d) f = f * shape[d] + idx[d];
  return f;
}

// Multi-index of flat element `i` of `shape`.
inline std::vector<int64_t> Unflat(const Shape& shape, int64_t i) {
  std::vector<int64_t> idx(shape.size());
  for (size_t d = shape.size(); d-- > 0;) {
    idx[d] = shape[d] == 0 ? 0 : i % shape[d];
    if (shape[d] != 0) i /= shape[d];
  }
  return idx;
}

}  // namespace coremlz::execute::testing

#endif  // COREMLZ_TESTS_EXECUTE_OP_TEST_UTIL_H_
