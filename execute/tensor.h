// The executor's run-time value: a dense row-major tensor in one of the three
// compute types. Every floating-point type of a program (fp16, bf16, fp32,
// ...) is held as float32 so that a model and its compressed form are computed
// the same way, at full precision; every integer type as int32; bool as
// int32 0/1. Strings exist only as op parameters (pad_type, mode, dtype).
#ifndef COREMLZ_EXECUTE_TENSOR_H_
#define COREMLZ_EXECUTE_TENSOR_H_

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "format/tensor.h"

namespace coremlz::execute {

using Shape = std::vector<int64_t>;

// kList: a MIL list (make_list, list_write, ... and while_loop carrying
// them), a sequence of tensors of one element type; only the list ops and
// control flow take one.
enum class DType { kFloat32, kInt32, kBool, kString, kList };
const char* DTypeName(DType t);

// Product of the dims (1 for a scalar, 0 when a dim is 0).
int64_t NumElements(absl::Span<const int64_t> shape);

// The most elements one tensor may have. A program is untrusted input: a
// `fill`, `tile`, `pad` or broadcast can ask for any shape from a few bytes of
// parameters, so every shape computed from values is checked against this
// before anything is allocated (the service runs models it was sent). The
// default, 2^30 elements (4 GiB of float32), is beyond any real activation.
inline constexpr int64_t kDefaultMaxTensorElements = int64_t{1} << 30;
void SetMaxTensorElements(int64_t limit);  // process-wide (tests, fuzzing)
int64_t MaxTensorElements();

// INVALID_ARGUMENT for a negative dim, RESOURCE_EXHAUSTED for more elements
// than MaxTensorElements() (overflow-safe).
absl::Status CheckShape(absl::Span<const int64_t> shape);
// RESOURCE_EXHAUSTED, as CheckShape, when `count` elements (a double: a
// computed count may exceed any integer) are over the limit; `what` names
// them in the message.
absl::Status CheckElementCount(double count, absl::string_view what);

class Tensor {
 public:
  Tensor() = default;
  // Zero-filled tensors. Kernels use Allocate, which checks the shape
  // first; Zeros is for shapes already known to be sane.
  static Tensor Zeros(DType dtype, Shape shape);
  static absl::StatusOr<Tensor> Allocate(DType dtype, Shape shape);
  static Tensor Float(Shape shape, std::vector<float> values);
  static Tensor Int(Shape shape, std::vector<int32_t> values);
  static Tensor Bool(Shape shape, std::vector<int32_t> values);  // values 0/1
  static Tensor String(Shape shape, std::vector<std::string> values);
  // A list of `length` elements, each unset until written (elements that are
  // set share storage with the lists they were copied from).
  static Tensor List(DType element_dtype, int64_t length);
  static Tensor FloatScalar(float v) { return Float({}, {v}); }
  static Tensor IntScalar(int32_t v) { return Int({}, {v}); }

  DType dtype() const { return dtype_; }
  const Shape& shape() const { return shape_; }
  int64_t rank() const { return static_cast<int64_t>(shape_.size()); }
  int64_t dim(int64_t axis) const { return shape_[axis]; }
  int64_t size() const { return size_; }
  bool is_float() const { return dtype_ == DType::kFloat32; }
  // Int32 and bool share the integer storage.
  bool is_integer_storage() const { return dtype_ == DType::kInt32 || dtype_ == DType::kBool; }

  absl::Span<const float> floats() const { return floats_; }
  absl::Span<float> mutable_floats() { return absl::MakeSpan(floats_); }
  absl::Span<const int32_t> ints() const { return ints_; }
  absl::Span<int32_t> mutable_ints() { return absl::MakeSpan(ints_); }
  const std::vector<std::string>& strings() const { return strings_; }

  // Lists (dtype() == kList): the element type and the elements, an unset
  // element null. Writing copies the element vector, never the tensors.
  bool is_list() const { return dtype_ == DType::kList; }
  DType element_dtype() const { return element_dtype_; }
  const std::vector<std::shared_ptr<const Tensor>>& elements() const { return elements_; }
  std::vector<std::shared_ptr<const Tensor>>& mutable_elements() { return elements_; }

  // Same elements, new shape (element counts must agree; checked by callers).
  void Reshape(Shape shape) { shape_ = std::move(shape); }
  // Element i as a float / an integer, whatever the storage (slow; for
  // parameters and tests).
  double AsDouble(int64_t i) const;
  int64_t AsInt(int64_t i) const;

 private:
  DType dtype_ = DType::kFloat32;
  Shape shape_;
  int64_t size_ = 0;
  std::vector<float> floats_;
  std::vector<int32_t> ints_;
  std::vector<std::string> strings_;
  DType element_dtype_ = DType::kFloat32;
  std::vector<std::shared_ptr<const Tensor>> elements_;
};

// A kernel's list of outputs, built by moving each tensor in. Never write
// `std::vector<Tensor>{t}`: a braced list's elements are const, so the
// vector copies each one, and every op's output existed twice for a moment
// (a third of Mosaic's and EDSR's peak memory went to such copies).
template <typename... T>
std::vector<Tensor> Outputs(T&&... tensors) {
  std::vector<Tensor> v;
  v.reserve(sizeof...(tensors));
  (v.push_back(std::forward<T>(tensors)), ...);
  return v;
}

// The compute type a stored element type is held in.
DType ComputeType(format::ElementType type);

// Widens a stored tensor (fp16 -> float32, int8 -> int32, ...) for execution.
absl::StatusOr<Tensor> FromStored(const format::Tensor& stored);
// A MIL value that is an immediate tensor (strings included) or a blob is
// read by the caller; this handles the immediate strings, which the storage
// layer does not represent.
absl::StatusOr<Tensor> StringsFromImmediate(const CoreML::Specification::MILSpec::Value& value);

}  // namespace coremlz::execute

#endif  // COREMLZ_EXECUTE_TENSOR_H_
