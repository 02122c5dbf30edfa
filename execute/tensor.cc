#include "execute/tensor.h"

#include <atomic>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"

namespace coremlz::execute {

namespace MIL = CoreML::Specification::MILSpec;

const char* DTypeName(DType t) {
  switch (t) {
    case DType::kFloat32: return "fp32";
    case DType::kInt32: return "int32";
    case DType::kBool: return "bool";
    case DType::kString: return "string";
    case DType::kList: return "list";
  }
  return "?";
}

int64_t NumElements(absl::Span<const int64_t> shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

namespace {
std::atomic<int64_t> max_tensor_elements{kDefaultMaxTensorElements};
}  // namespace

void SetMaxTensorElements(int64_t limit) { max_tensor_elements.store(limit); }
int64_t MaxTensorElements() { return max_tensor_elements.load(); }

absl::Status CheckShape(absl::Span<const int64_t> shape) {
  const int64_t limit = MaxTensorElements();
  int64_t n = 1;
  bool empty = false;
  for (int64_t d : shape) {
    if (d < 0) return absl::InvalidArgumentError(absl::StrCat("negative dimension ", d, " in a tensor shape"));
    empty = empty || d == 0;
  }
  if (empty) return absl::OkStatus();
  for (int64_t d : shape) {
    if (n > limit / d) {
      return absl::ResourceExhaustedError(absl::StrCat("a tensor of shape [", absl::StrJoin(shape, ", "),
                                                       "] is over the executor's limit of ", limit, " elements"));
    }
    n *= d;
  }
  return absl::OkStatus();
}

absl::Status CheckElementCount(double count, absl::string_view what) {
  const int64_t limit = MaxTensorElements();
  if (!(count > static_cast<double>(limit))) return absl::OkStatus();
  return absl::ResourceExhaustedError(
      absl::StrCat(what, " has ", absl::StrFormat("%.0f", count), " elements, over the executor's limit of ", limit));
}

absl::StatusOr<Tensor> Tensor::Allocate(DType dtype, Shape shape) {
  RETURN_IF_ERROR(CheckShape(shape));
  return Zeros(dtype, std::move(shape));
}

Tensor Tensor::Zeros(DType dtype, Shape shape) {
  Tensor t;
  t.dtype_ = dtype;
  t.size_ = NumElements(shape);
  t.shape_ = std::move(shape);
  if (dtype == DType::kFloat32) t.floats_.assign(t.size_, 0.0f);
  else if (dtype == DType::kString) t.strings_.assign(t.size_, "");
  else t.ints_.assign(t.size_, 0);
  return t;
}

Tensor Tensor::Float(Shape shape, std::vector<float> values) {
  Tensor t;
  t.dtype_ = DType::kFloat32;
  t.size_ = static_cast<int64_t>(values.size());
  t.shape_ = std::move(shape);
  t.floats_ = std::move(values);
  return t;
}

Tensor Tensor::Int(Shape shape, std::vector<int32_t> values) {
  Tensor t;
  t.dtype_ = DType::kInt32;
  t.size_ = static_cast<int64_t>(values.size());
  t.shape_ = std::move(shape);
  t.ints_ = std::move(values);
  return t;
}

Tensor Tensor::Bool(Shape shape, std::vector<int32_t> values) {
  Tensor t = Int(std::move(shape), std::move(values));
  t.dtype_ = DType::kBool;
  return t;
}

Tensor Tensor::List(DType element_dtype, int64_t length) {
  Tensor t;
  t.dtype_ = DType::kList;
  t.element_dtype_ = element_dtype;
  t.elements_.resize(static_cast<size_t>(length));
  return t;
}

Tensor Tensor::String(Shape shape, std::vector<std::string> values) {
  Tensor t;
  t.dtype_ = DType::kString;
  t.size_ = static_cast<int64_t>(values.size());
  t.shape_ = std::move(shape);
  t.strings_ = std::move(values);
  return t;
}

double Tensor::AsDouble(int64_t i) const {
  if (dtype_ == DType::kFloat32) return floats_[i];
  if (dtype_ == DType::kString || dtype_ == DType::kList) return 0;
  return ints_[i];
}

int64_t Tensor::AsInt(int64_t i) const {
  if (dtype_ == DType::kFloat32) return static_cast<int64_t>(floats_[i]);
  if (dtype_ == DType::kString || dtype_ == DType::kList) return 0;
  return ints_[i];
}

DType ComputeType(format::ElementType type) {
  if (type == format::ElementType::kBool) return DType::kBool;
  if (type == format::ElementType::kString) return DType::kString;
  if (format::IsFloat(type)) return DType::kFloat32;
  return DType::kInt32;
}

absl::StatusOr<Tensor> FromStored(const format::Tensor& stored) {
  const DType dtype = ComputeType(stored.type);
  if (dtype == DType::kString) return absl::InvalidArgumentError("string tensors are not stored in blobs");
  if (dtype == DType::kFloat32) {
    ASSIGN_OR_RETURN(std::vector<float> values, format::ToFloats(format::View(stored)));
    return Tensor::Float(stored.shape, std::move(values));
  }
  // 64-bit integers are narrowed: the programs use them for shapes and
  // indices, far below 2^31.
  ASSIGN_OR_RETURN(std::vector<int32_t> values, format::ToInts(format::View(stored)));
  if (dtype == DType::kBool) {
    for (int32_t& v : values) v = v != 0;
    return Tensor::Bool(stored.shape, std::move(values));
  }
  return Tensor::Int(stored.shape, std::move(values));
}

absl::StatusOr<Tensor> StringsFromImmediate(const MIL::Value& value) {
  if (!value.has_immediatevalue() || !value.immediatevalue().has_tensor() ||
      !value.immediatevalue().tensor().has_strings()) {
    return absl::InvalidArgumentError("not an immediate string tensor");
  }
  const auto& s = value.immediatevalue().tensor().strings().values();
  std::vector<std::string> values(s.begin(), s.end());
  Shape shape;
  if (value.type().has_tensortype() && value.type().tensortype().rank() > 0) {
    shape.push_back(static_cast<int64_t>(values.size()));
  } else if (values.size() != 1) {
    return absl::InvalidArgumentError(absl::StrCat("scalar string value holds ", values.size(), " strings"));
  }
  return Tensor::String(std::move(shape), std::move(values));
}

}  // namespace coremlz::execute
