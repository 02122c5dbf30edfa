#include "engine/constexpr_ops.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "format/fp16.h"
#include "format/mil_program.h"
#include "format/sub_byte.h"

namespace coremlz::engine {
namespace mil = CoreML::Specification::MILSpec;
using format::ElementType;
using format::Shape;
using format::Tensor;

ConstexprOpContext::ConstexprOpContext(const mil::Operation& op, ValueReader* reader, const ConstexprEvaluator& earlier)
    : op_(op), reader_(reader), earlier_(earlier) {}

bool ConstexprOpContext::Has(const std::string& name) const {
  return op_.inputs().count(name) > 0 || (op_.attributes().count(name) > 0 && name != "name");
}

// iOS18 ops bind parameters as inputs (a value, or the name of an earlier
// constexpr output); iOS16 ops keep them as attributes.
absl::StatusOr<Tensor> ConstexprOpContext::Get(const std::string& name) const {
  auto in = op_.inputs().find(name);
  if (in != op_.inputs().end()) {
    if (in->second.arguments_size() != 1) {
      return Fail(absl::StrCat("input \"", name, "\" has ", in->second.arguments_size(), " bindings"));
    }
    const mil::Argument::Binding& b = in->second.arguments(0);
    if (b.binding_case() == mil::Argument::Binding::kValue) return Wrap(reader_->Read(b.value()), name);
    const Tensor* t = earlier_.Output(b.name());
    if (t == nullptr) {
      return Fail(absl::StrCat("input \"", name, "\" refers to \"", b.name(), "\", which is not an earlier constexpr output"));
    }
    return *t;
  }
  auto attr = op_.attributes().find(name);
  if (attr != op_.attributes().end()) return Wrap(reader_->Read(attr->second), name);
  return Fail(absl::StrCat("missing parameter \"", name, "\""));
}

absl::StatusOr<format::TensorTypeInfo> ConstexprOpContext::OutputType(int i) const {
  if (i >= op_.outputs_size()) return Fail(absl::StrCat("expected at least ", i + 1, " outputs"));
  return format::ReadTensorType(op_.outputs(i).type());
}

absl::Status ConstexprOpContext::Fail(absl::string_view what) const {
  return absl::InvalidArgumentError(absl::StrCat(op_.type(), " \"", format::OpName(op_), "\": ", what));
}

absl::StatusOr<Tensor> ConstexprOpContext::Wrap(absl::StatusOr<Tensor> t, const std::string& name) const {
  if (t.ok()) return t;
  return Fail(absl::StrCat("parameter \"", name, "\": ", t.status().message()));
}

namespace {

// Rounds to the output precision: fp16 outputs round once from fp32.
float RoundTo(ElementType t, float v) { return t == ElementType::kFloat16 ? format::RoundToHalf(v) : v; }

absl::StatusOr<Tensor> FloatsToTensor(ElementType type, Shape shape, const std::vector<float>& v) {
  std::string bytes;
  if (type == ElementType::kFloat16) {
    bytes.resize(v.size() * 2);
    for (size_t i = 0; i < v.size(); ++i) {
      const uint16_t h = format::FloatToHalf(v[i]);
      bytes[2 * i] = static_cast<char>(h & 0xff);
      bytes[2 * i + 1] = static_cast<char>(h >> 8);
    }
  } else if (type == ElementType::kFloat32) {
    bytes.resize(v.size() * 4);
    std::memcpy(bytes.data(), v.data(), bytes.size());
  } else {
    return absl::InvalidArgumentError(absl::StrCat("cannot produce ", format::ElementTypeName(type), " output"));
  }
  return format::MakeTensor(type, std::move(shape), std::move(bytes));
}

// Row-major strides.
std::vector<int64_t> Strides(const Shape& s) {
  std::vector<int64_t> st(s.size(), 1);
  for (size_t a = s.size(); a > 1; --a) st[a - 2] = st[a - 1] * s[a - 1];
  return st;
}

// Element count (validated shapes only).
int64_t Count(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

// Maps each element of a tensor of shape `full` to the flat index of its
// block in a grid of shape `grid` (full[i] % grid[i] == 0).
std::vector<int64_t> BlockIndex(const Shape& full, const Shape& grid) {
  const int64_t n = Count(full);
  std::vector<int64_t> out(n);
  const auto fs = Strides(full), gs = Strides(grid);
  for (int64_t e = 0; e < n; ++e) {
    int64_t b = 0;
    for (size_t a = 0; a < full.size(); ++a) {
      const int64_t c = (e / fs[a]) % full[a];
      b += (c / (full[a] / grid[a])) * gs[a];
    }
    out[e] = b;
  }
  return out;
}

absl::StatusOr<int64_t> ScalarInt(const Tensor& t) {
  ASSIGN_OR_RETURN(std::vector<int32_t> v, format::ToInts(format::View(t)));
  if (v.size() != 1) return absl::InvalidArgumentError("expected a scalar");
  return v[0];
}

absl::StatusOr<Shape> ShapeFromTensor(const Tensor& t) {
  if (t.type != ElementType::kUInt32 && t.type != ElementType::kInt32) {
    return absl::InvalidArgumentError(absl::StrCat("shape must be uint32, got ", format::ElementTypeName(t.type)));
  }
  ASSIGN_OR_RETURN(std::vector<int32_t> v, format::ToInts(format::View(t)));
  Shape s(v.begin(), v.end());
  RETURN_IF_ERROR(format::ElementCount(s).status());
  return s;
}

// Dense values of blockwise shift-scale: scale[block] * (data - offset[block]).
absl::StatusOr<std::vector<float>> ShiftScale(const Tensor& data, const Tensor& scale, const Tensor* offset,
                                              const ConstexprOpContext& ctx) {
  if (data.shape.size() != scale.shape.size() || data.shape.empty()) {
    return ctx.Fail(absl::StrCat("data rank ", data.shape.size(), " and scale rank ", scale.shape.size(),
                                 " must be equal and at least 1"));
  }
  for (size_t a = 0; a < data.shape.size(); ++a) {
    if (scale.shape[a] <= 0 || data.shape[a] % scale.shape[a] != 0) {
      return ctx.Fail(absl::StrCat("data dim ", data.shape[a], " on axis ", a, " is not a multiple of scale dim ", scale.shape[a]));
    }
  }
  if (offset && offset->shape != scale.shape) return ctx.Fail("offset shape differs from scale shape");
  if (offset && !format::IsFloat(offset->type) && offset->type != data.type) {
    return ctx.Fail("an integer offset must have the data's dtype");
  }
  if (scale.type != ElementType::kFloat16 && scale.type != ElementType::kFloat32) {
    return ctx.Fail(absl::StrCat("scale must be fp16 or fp32, got ", format::ElementTypeName(scale.type)));
  }
  ASSIGN_OR_RETURN(std::vector<float> d, format::ToFloats(format::View(data)));
  ASSIGN_OR_RETURN(std::vector<float> s, format::ToFloats(format::View(scale)));
  std::vector<float> off;
  if (offset) { ASSIGN_OR_RETURN(off, format::ToFloats(format::View(*offset))); }
  const std::vector<int64_t> block = BlockIndex(data.shape, scale.shape);
  std::vector<float> out(d.size());
  // Core ML casts data to the scale dtype, subtracts the offset and
  // multiplies, each step in the scale dtype.
  for (size_t i = 0; i < d.size(); ++i) {
    const int64_t b = block[i];
    const float shifted = RoundTo(scale.type, RoundTo(scale.type, d[i]) - (off.empty() ? 0.f : off[b]));
    out[i] = RoundTo(scale.type, shifted * s[b]);
  }
  return out;
}

// Dense LUT lookup of iOS18 constexpr_lut_to_dense. `indices` codes have the
// indices shape; returns values of shape out_shape.
absl::StatusOr<std::vector<float>> LutToDense(const std::vector<int32_t>& idx, const Shape& ishape, const Tensor& lut,
                                              std::optional<int64_t> vector_axis, Shape* out_shape,
                                              const ConstexprOpContext& ctx) {
  const size_t k = ishape.size();
  if (lut.shape.size() != k + 2) {
    return ctx.Fail(absl::StrCat("lut rank ", lut.shape.size(), " must be indices rank + 2 = ", k + 2));
  }
  const int64_t entries = lut.shape[k], vs = lut.shape[k + 1];
  for (size_t a = 0; a < k; ++a) {
    if (lut.shape[a] <= 0 || ishape[a] % lut.shape[a] != 0) {
      return ctx.Fail(absl::StrCat("indices dim ", ishape[a], " on axis ", a, " is not a multiple of lut dim ", lut.shape[a]));
    }
  }
  int64_t axis = 0;
  if (vs > 1) {
    if (!vector_axis) return ctx.Fail("vector_axis is required when the lut holds vectors");
    axis = *vector_axis < 0 ? *vector_axis + static_cast<int64_t>(k) : *vector_axis;
    if (axis < 0 || axis >= static_cast<int64_t>(k)) return ctx.Fail("vector_axis out of range");
  }
  ASSIGN_OR_RETURN(std::vector<float> table, format::ToFloats(format::View(lut)));
  *out_shape = ishape;
  if (vs > 1) {
    if (vs > (int64_t{1} << 31) || (*out_shape)[axis] > (int64_t{1} << 31)) return ctx.Fail("vector length out of range");
    (*out_shape)[axis] *= vs;
  }
  if (!format::ElementCount(*out_shape).ok()) return ctx.Fail("the dense output would have more than 2^62 elements");
  const Shape grid(lut.shape.begin(), lut.shape.begin() + k);
  const std::vector<int64_t> block = BlockIndex(ishape, grid);
  const auto is = Strides(ishape), os = Strides(*out_shape);
  std::vector<float> out(Count(*out_shape));
  for (size_t i = 0; i < idx.size(); ++i) {
    const int32_t code = idx[i];
    if (code < 0 || code >= entries) return ctx.Fail(absl::StrCat("index ", code, " outside the ", entries, "-entry lut"));
    const float* row = &table[(block[i] * entries + code) * vs];
    if (vs == 1) {
      out[i] = row[0];
      continue;
    }
    // Output position: the vector-axis coordinate q becomes q * vs + j.
    int64_t base = 0;
    for (size_t a = 0; a < k; ++a) {
      int64_t c = (static_cast<int64_t>(i) / is[a]) % ishape[a];
      if (static_cast<int64_t>(a) == axis) c *= vs;
      base += c * os[a];
    }
    for (int64_t j = 0; j < vs; ++j) out[base + j * os[axis]] = row[j];
  }
  return out;
}

absl::StatusOr<std::vector<uint8_t>> MaskBits(const Tensor& mask, const ConstexprOpContext& ctx) {
  if (mask.type != ElementType::kUInt1 && mask.type != ElementType::kBool) {
    return ctx.Fail(absl::StrCat("mask must be uint1, got ", format::ElementTypeName(mask.type)));
  }
  ASSIGN_OR_RETURN(std::vector<int32_t> v, format::ToInts(format::View(mask)));
  return std::vector<uint8_t>(v.begin(), v.end());
}

absl::StatusOr<std::vector<float>> Scatter(const std::vector<uint8_t>& mask, const std::vector<float>& nonzero,
                                           const ConstexprOpContext& ctx) {
  size_t ones = 0;
  for (uint8_t m : mask) ones += m;
  if (ones != nonzero.size()) {
    return ctx.Fail(absl::StrCat("mask has ", ones, " ones but nonzero_data holds ", nonzero.size(), " values"));
  }
  std::vector<float> out(mask.size(), 0.0f);
  size_t k = 0;
  for (size_t i = 0; i < mask.size(); ++i) {
    if (mask[i]) out[i] = nonzero[k++];
  }
  return out;
}

// --- one function per op ----------------------------------------------------

// iOS16: scale * (quantized_data - zero_point), per tensor or along one axis.
absl::StatusOr<std::vector<Tensor>> AffineDequantize(const ConstexprOpContext& ctx,
                                                     const format::TensorTypeInfo& first_output) {
  std::vector<Tensor> results;
  ASSIGN_OR_RETURN(Tensor q, ctx.Get("quantized_data"));
  ASSIGN_OR_RETURN(Tensor zp, ctx.Get("zero_point"));
  ASSIGN_OR_RETURN(Tensor scale, ctx.Get("scale"));
  ASSIGN_OR_RETURN(Tensor axis_t, ctx.Get("axis"));
  ASSIGN_OR_RETURN(int64_t axis, ScalarInt(axis_t));
  const int64_t rank = static_cast<int64_t>(q.shape.size());
  if (axis < -rank || axis >= rank) return ctx.Fail(absl::StrCat("axis ", axis, " out of range for rank ", rank));
  if (axis < 0) axis += rank;
  const int64_t channels = q.shape[axis];
  for (const Tensor* t : {&zp, &scale}) {
    if (t->shape.size() > 1) return ctx.Fail("scale and zero_point must be scalars or vectors");
    const int64_t n = Count(t->shape);
    if (t->shape.size() == 1 && n != channels) {
      return ctx.Fail(absl::StrCat("vector of ", n, " entries does not match ", channels, " channels on axis ", axis));
    }
  }
  ASSIGN_OR_RETURN(std::vector<int32_t> codes, format::ToInts(format::View(q)));
  ASSIGN_OR_RETURN(std::vector<float> zps, format::ToFloats(format::View(zp)));
  ASSIGN_OR_RETURN(std::vector<float> scales, format::ToFloats(format::View(scale)));
  const auto st = Strides(q.shape);
  std::vector<float> out(codes.size());
  for (size_t i = 0; i < codes.size(); ++i) {
    const int64_t c = (static_cast<int64_t>(i) / st[axis]) % channels;
    const float s = scales.size() == 1 ? scales[0] : scales[c];
    const float z = zps.size() == 1 ? zps[0] : zps[c];
    out[i] = RoundTo(scale.type, s * (static_cast<float>(codes[i]) - z));
  }
  ASSIGN_OR_RETURN(Tensor t, FloatsToTensor(scale.type, q.shape, out));
  results.push_back(std::move(t));
  return results;
}

// iOS18: scale[block] * (data - offset[block]).
absl::StatusOr<std::vector<Tensor>> BlockwiseShiftScale(const ConstexprOpContext& ctx,
                                                        const format::TensorTypeInfo& first_output) {
  std::vector<Tensor> results;
  ASSIGN_OR_RETURN(Tensor data, ctx.Get("data"));
  ASSIGN_OR_RETURN(Tensor scale, ctx.Get("scale"));
  std::optional<Tensor> offset;
  if (ctx.Has("offset")) { ASSIGN_OR_RETURN(offset, ctx.Get("offset")); }
  ASSIGN_OR_RETURN(std::vector<float> out, ShiftScale(data, scale, offset ? &*offset : nullptr, ctx));
  ASSIGN_OR_RETURN(Tensor t, FloatsToTensor(scale.type, data.shape, out));
  results.push_back(std::move(t));
  return results;
}

// iOS16: packed uint8 index bytes, a 1-D palette, an explicit shape.
absl::StatusOr<std::vector<Tensor>> Ios16LutToDense(const ConstexprOpContext& ctx, const Tensor& lut,
                                                    const Tensor& indices) {
  std::vector<Tensor> results;
  ASSIGN_OR_RETURN(Tensor shape_t, ctx.Get("shape"));
  ASSIGN_OR_RETURN(Shape shape, ShapeFromTensor(shape_t));
  if (lut.shape.size() != 1) return ctx.Fail("iOS16 lut must be a vector");
  int bits = 0;
  for (int b : {1, 2, 4, 6, 8}) {
    if (lut.shape[0] == (int64_t{1} << b)) bits = b;
  }
  if (bits == 0) return ctx.Fail(absl::StrCat("lut of ", lut.shape[0], " entries; iOS16 allows 2, 4, 16, 64 or 256"));
  if (indices.type != ElementType::kUInt8) return ctx.Fail("iOS16 indices must be uint8 bytes");
  // The declared shape must fit the packed bytes before anything is
  // allocated for it (ShapeFromTensor already ruled out overflow).
  const uint64_t count = static_cast<uint64_t>(Count(shape));
  if (count > indices.bytes.size() * 8 / bits) {
    return ctx.Fail(absl::StrCat("shape ", format::ShapeString(shape), " needs ", count, " ", bits,
                                 "-bit indices but only ", indices.bytes.size(), " bytes are given"));
  }
  std::vector<uint8_t> codes(count);
  absl::Status unpacked = format::UnpackBits(indices.bytes, bits, absl::MakeSpan(codes));
  if (!unpacked.ok()) return ctx.Fail(unpacked.message());
  ASSIGN_OR_RETURN(std::vector<float> table, format::ToFloats(format::View(lut)));
  std::vector<float> out(codes.size());
  for (size_t i = 0; i < codes.size(); ++i) out[i] = table[codes[i]];
  ASSIGN_OR_RETURN(Tensor t, FloatsToTensor(lut.type, shape, out));
  results.push_back(std::move(t));
  return results;
}

// iOS18: sub-byte indices, a palette per block (of vectors along vector_axis).
absl::StatusOr<std::vector<Tensor>> Ios18LutToDense(const ConstexprOpContext& ctx, const Tensor& lut,
                                                    const Tensor& indices) {
  std::vector<Tensor> results;
  if (!format::IsSubByte(indices.type) && indices.type != ElementType::kUInt8) {
    return ctx.Fail(absl::StrCat("indices must be uint1..uint8, got ", format::ElementTypeName(indices.type)));
  }
  std::optional<int64_t> vector_axis;
  if (ctx.Has("vector_axis")) {
    ASSIGN_OR_RETURN(Tensor va, ctx.Get("vector_axis"));
    ASSIGN_OR_RETURN(vector_axis, ScalarInt(va));
  }
  if (lut.shape.size() >= 2 && lut.shape[lut.shape.size() - 2] != (int64_t{1} << format::BitWidth(indices.type))) {
    return ctx.Fail(absl::StrCat("lut has ", lut.shape[lut.shape.size() - 2], " entries but indices are ",
                                 format::ElementTypeName(indices.type)));
  }
  ASSIGN_OR_RETURN(std::vector<int32_t> idx, format::ToInts(format::View(indices)));
  Shape out_shape;
  ASSIGN_OR_RETURN(std::vector<float> out, LutToDense(idx, indices.shape, lut, vector_axis, &out_shape, ctx));
  ASSIGN_OR_RETURN(Tensor t, FloatsToTensor(lut.type, out_shape, out));
  results.push_back(std::move(t));
  return results;
}

absl::StatusOr<std::vector<Tensor>> LutToDenseOp(const ConstexprOpContext& ctx,
                                                 const format::TensorTypeInfo& first_output) {
  ASSIGN_OR_RETURN(Tensor lut, ctx.Get("lut"));
  ASSIGN_OR_RETURN(Tensor indices, ctx.Get("indices"));
  if (ctx.Has("shape")) return Ios16LutToDense(ctx, lut, indices);
  return Ios18LutToDense(ctx, lut, indices);
}

// Scatters nonzero_data where the mask is set (iOS16: packed mask bytes and a shape).
absl::StatusOr<std::vector<Tensor>> SparseToDense(const ConstexprOpContext& ctx,
                                                  const format::TensorTypeInfo& first_output) {
  std::vector<Tensor> results;
  ASSIGN_OR_RETURN(Tensor nonzero, ctx.Get("nonzero_data"));
  ASSIGN_OR_RETURN(Tensor mask, ctx.Get("mask"));
  Shape shape;
  std::vector<uint8_t> bits;
  if (ctx.Has("shape")) {
    ASSIGN_OR_RETURN(Tensor shape_t, ctx.Get("shape"));
    ASSIGN_OR_RETURN(shape, ShapeFromTensor(shape_t));
    if (mask.type != ElementType::kUInt8) return ctx.Fail("iOS16 mask must be packed uint8 bytes");
    const uint64_t count = static_cast<uint64_t>(Count(shape));
    if (count > mask.bytes.size() * 8) {
      return ctx.Fail(absl::StrCat("shape ", format::ShapeString(shape), " needs a mask of ", count, " bits but only ",
                                   mask.bytes.size(), " bytes are given"));
    }
    bits.resize(count);
    absl::Status unpacked = format::UnpackBits(mask.bytes, 1, absl::MakeSpan(bits));
    if (!unpacked.ok()) return ctx.Fail(absl::StrCat("mask: ", unpacked.message()));
  } else {
    shape = mask.shape;
    ASSIGN_OR_RETURN(bits, MaskBits(mask, ctx));
  }
  if (nonzero.shape.size() != 1) return ctx.Fail("nonzero_data must be a vector");
  ASSIGN_OR_RETURN(std::vector<float> values, format::ToFloats(format::View(nonzero)));
  ASSIGN_OR_RETURN(std::vector<float> out, Scatter(bits, values, ctx));
  ElementType out_type = format::IsFloat(nonzero.type) ? nonzero.type : first_output.type;
  ASSIGN_OR_RETURN(Tensor t, FloatsToTensor(out_type, shape, out));
  results.push_back(std::move(t));
  return results;
}

// iOS18 joint form: looks up the kept indices; outputs the (vector-expanded) mask and the values.
absl::StatusOr<std::vector<Tensor>> LutToSparse(const ConstexprOpContext& ctx,
                                                const format::TensorTypeInfo& first_output) {
  std::vector<Tensor> results;
  ASSIGN_OR_RETURN(Tensor mask, ctx.Get("indices_mask"));
  ASSIGN_OR_RETURN(Tensor nz, ctx.Get("indices_nonzero_data"));
  ASSIGN_OR_RETURN(Tensor lut, ctx.Get("lut"));
  std::optional<int64_t> vector_axis;
  if (ctx.Has("vector_axis")) {
    ASSIGN_OR_RETURN(Tensor va, ctx.Get("vector_axis"));
    ASSIGN_OR_RETURN(vector_axis, ScalarInt(va));
  }
  ASSIGN_OR_RETURN(std::vector<uint8_t> bits, MaskBits(mask, ctx));
  ASSIGN_OR_RETURN(std::vector<int32_t> nz_idx, format::ToInts(format::View(nz)));
  size_t ones = 0;
  for (uint8_t b : bits) ones += b;
  if (ones != nz_idx.size()) return ctx.Fail(absl::StrCat("indices_mask has ", ones, " ones but ", nz_idx.size(), " indices"));
  std::vector<int32_t> dense_idx(bits.size(), 0);
  size_t k = 0;
  for (size_t i = 0; i < bits.size(); ++i) {
    if (bits[i]) dense_idx[i] = nz_idx[k++];
  }
  Shape out_shape;
  ASSIGN_OR_RETURN(std::vector<float> dense, LutToDense(dense_idx, mask.shape, lut, vector_axis, &out_shape, ctx));
  // Expand the mask along the vector axis, then gather the kept values.
  const int64_t vs = lut.shape.back();
  std::vector<uint8_t> out_mask(Count(out_shape));
  const auto ms = Strides(mask.shape), os = Strides(out_shape);
  int64_t axis = vector_axis.value_or(0);
  if (axis < 0) axis += static_cast<int64_t>(mask.shape.size());
  for (size_t i = 0; i < bits.size(); ++i) {
    int64_t base = 0;
    for (size_t a = 0; a < mask.shape.size(); ++a) {
      int64_t c = (static_cast<int64_t>(i) / ms[a]) % mask.shape[a];
      if (vs > 1 && static_cast<int64_t>(a) == axis) c *= vs;
      base += c * os[a];
    }
    for (int64_t j = 0; j < vs; ++j) out_mask[base + (vs > 1 ? j * os[axis] : 0)] = bits[i];
  }
  std::vector<float> values;
  for (size_t i = 0; i < out_mask.size(); ++i) {
    if (out_mask[i]) values.push_back(dense[i]);
  }
  std::string mask_bytes = format::PackBits(out_mask, 1);
  ASSIGN_OR_RETURN(Tensor mask_out, format::MakeTensor(ElementType::kUInt1, out_shape, mask_bytes));
  ASSIGN_OR_RETURN(Tensor values_out, FloatsToTensor(lut.type, {static_cast<int64_t>(values.size())}, values));
  results.push_back(std::move(mask_out));
  results.push_back(std::move(values_out));
  return results;
}

// iOS18 joint form: dequantizes the kept codes; outputs the mask and the values.
absl::StatusOr<std::vector<Tensor>> SparseBlockwiseShiftScale(const ConstexprOpContext& ctx,
                                                              const format::TensorTypeInfo& first_output) {
  std::vector<Tensor> results;
  ASSIGN_OR_RETURN(Tensor mask, ctx.Get("data_mask"));
  ASSIGN_OR_RETURN(Tensor nz, ctx.Get("nonzero_data"));
  ASSIGN_OR_RETURN(Tensor scale, ctx.Get("scale"));
  std::optional<Tensor> offset;
  if (ctx.Has("offset")) { ASSIGN_OR_RETURN(offset, ctx.Get("offset")); }
  ASSIGN_OR_RETURN(std::vector<uint8_t> bits, MaskBits(mask, ctx));
  ASSIGN_OR_RETURN(std::vector<float> nz_vals, format::ToFloats(format::View(nz)));
  ASSIGN_OR_RETURN(std::vector<float> dense_codes, Scatter(bits, nz_vals, ctx));
  // Shift-scale needs the codes as a tensor of the data dtype.
  Tensor dense;
  dense.type = ElementType::kFloat32;
  dense.shape = mask.shape;
  dense.bytes.resize(dense_codes.size() * 4);
  std::memcpy(dense.bytes.data(), dense_codes.data(), dense.bytes.size());
  std::optional<Tensor> offset_f;
  if (offset) {
    ASSIGN_OR_RETURN(std::vector<float> ov, format::ToFloats(format::View(*offset)));
    ASSIGN_OR_RETURN(offset_f, FloatsToTensor(ElementType::kFloat32, offset->shape, ov));
  }
  ASSIGN_OR_RETURN(std::vector<float> deq, ShiftScale(dense, scale, offset_f ? &*offset_f : nullptr, ctx));
  std::vector<float> values;
  for (size_t i = 0; i < bits.size(); ++i) {
    if (bits[i]) values.push_back(deq[i]);
  }
  results.push_back(mask);
  ASSIGN_OR_RETURN(Tensor values_out, FloatsToTensor(scale.type, {static_cast<int64_t>(values.size())}, values));
  results.push_back(std::move(values_out));
  return results;
}

// Widens fp16 values to the declared output dtype.
absl::StatusOr<std::vector<Tensor>> Cast(const ConstexprOpContext& ctx,
                                         const format::TensorTypeInfo& first_output) {
  std::vector<Tensor> results;
  ASSIGN_OR_RETURN(Tensor src, ctx.Get("source_val"));
  ASSIGN_OR_RETURN(std::vector<float> v, format::ToFloats(format::View(src)));
  ASSIGN_OR_RETURN(Tensor t, FloatsToTensor(first_output.type, src.shape, v));
  results.push_back(std::move(t));
  return results;
}

}  // namespace

ConstexprOpFn FindConstexprOp(absl::string_view op_type) {
  static constexpr struct {
    absl::string_view type;
    ConstexprOpFn evaluate;
  } kOps[] = {
      {"constexpr_affine_dequantize", AffineDequantize},
      {"constexpr_blockwise_shift_scale", BlockwiseShiftScale},
      {"constexpr_lut_to_dense", LutToDenseOp},
      {"constexpr_sparse_to_dense", SparseToDense},
      {"constexpr_lut_to_sparse", LutToSparse},
      {"constexpr_sparse_blockwise_shift_scale", SparseBlockwiseShiftScale},
      {"constexpr_cast", Cast},
  };
  for (const auto& op : kOps) {
    if (op.type == op_type) return op.evaluate;
  }
  return nullptr;
}

}  // namespace coremlz::engine
