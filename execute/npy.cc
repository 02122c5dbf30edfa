#include "execute/npy.h"

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/file_util.h"
#include "common/status_macros.h"
#include "format/fp16.h"

namespace coremlz::execute {
namespace {

constexpr char kMagic[] = "\x93NUMPY";
constexpr uint64_t kMaxNpyBytes = uint64_t{4} << 30;

// The value of `key` in the header's Python dict literal: the text up to the
// next top-level comma or closing brace.
absl::StatusOr<std::string> DictValue(absl::string_view header, absl::string_view key, const std::string& label) {
  for (const char quote : {'\'', '"'}) {
    const std::string needle = absl::StrCat(std::string(1, quote), key, std::string(1, quote));
    size_t p = header.find(needle);
    if (p == absl::string_view::npos) continue;
    p = header.find(':', p + needle.size());
    if (p == absl::string_view::npos) break;
    ++p;
    int depth = 0;
    size_t end = p;
    for (; end < header.size(); ++end) {
      const char c = header[end];
      if (c == '(' || c == '[') ++depth;
      if (c == ')' || c == ']') --depth;
      if (depth == 0 && (c == ',' || c == '}')) break;
      if (depth < 0) break;
    }
    return std::string(absl::StripAsciiWhitespace(header.substr(p, end - p)));
  }
  return absl::InvalidArgumentError(absl::StrCat(label, ": the .npy header has no '", key, "'"));
}

std::string Unquote(const std::string& s) {
  if (s.size() >= 2 && (s.front() == '\'' || s.front() == '"') && s.back() == s.front()) return s.substr(1, s.size() - 2);
  return s;
}

template <typename T>
T Load(const char* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

}  // namespace

absl::StatusOr<Tensor> ParseNpy(absl::string_view bytes, const std::string& label) {
  if (bytes.size() < 10 || bytes.substr(0, 6) != absl::string_view(kMagic, 6)) {
    return absl::InvalidArgumentError(absl::StrCat(label, ": not a .npy file (no \\x93NUMPY magic)"));
  }
  const int major = static_cast<uint8_t>(bytes[6]);
  uint64_t header_len = 0, start = 0;
  if (major == 1) {
    header_len = Load<uint16_t>(bytes.data() + 8);
    start = 10;
  } else if (major == 2 || major == 3) {
    if (bytes.size() < 12) return absl::InvalidArgumentError(absl::StrCat(label, ": truncated .npy header"));
    header_len = Load<uint32_t>(bytes.data() + 8);
    start = 12;
  } else {
    return absl::InvalidArgumentError(absl::StrCat(label, ": unsupported .npy version ", major));
  }
  if (start + header_len > bytes.size()) return absl::InvalidArgumentError(absl::StrCat(label, ": truncated .npy header"));
  const absl::string_view header = bytes.substr(start, header_len);
  ASSIGN_OR_RETURN(std::string descr, DictValue(header, "descr", label));
  ASSIGN_OR_RETURN(std::string fortran, DictValue(header, "fortran_order", label));
  ASSIGN_OR_RETURN(std::string shape_text, DictValue(header, "shape", label));
  descr = Unquote(descr);
  if (fortran != "False") {
    return absl::InvalidArgumentError(absl::StrCat(label, ": Fortran-order arrays are not supported (save with np.ascontiguousarray)"));
  }
  Shape shape;
  if (shape_text.size() < 2 || shape_text.front() != '(' || shape_text.back() != ')') {
    return absl::InvalidArgumentError(absl::StrCat(label, ": bad .npy shape ", shape_text));
  }
  for (absl::string_view part : absl::StrSplit(shape_text.substr(1, shape_text.size() - 2), ',')) {
    part = absl::StripAsciiWhitespace(part);
    if (part.empty()) continue;
    int64_t d = 0;
    if (!absl::SimpleAtoi(part, &d) || d < 0 || d > (int64_t{1} << 40)) {
      return absl::InvalidArgumentError(absl::StrCat(label, ": bad .npy dimension \"", part, "\""));
    }
    shape.push_back(d);
  }
  // Element type: byte order, kind, width ("<f4", "|b1", "<i8", ...).
  if (descr.size() < 3) return absl::InvalidArgumentError(absl::StrCat(label, ": bad .npy dtype '", descr, "'"));
  const char order = descr[0], kind = descr[1];
  int width = 0;
  if (!absl::SimpleAtoi(descr.substr(2), &width)) return absl::InvalidArgumentError(absl::StrCat(label, ": bad .npy dtype '", descr, "'"));
  if (order == '>' && width > 1) {
    return absl::InvalidArgumentError(absl::StrCat(label, ": big-endian .npy data ('", descr, "') is not supported"));
  }
  uint64_t count = 1;
  for (int64_t d : shape) {
    if (d != 0 && count > (uint64_t{1} << 40) / static_cast<uint64_t>(d)) {
      return absl::InvalidArgumentError(absl::StrCat(label, ": .npy shape too large"));
    }
    count *= static_cast<uint64_t>(d);
  }
  const uint64_t data_bytes = count * static_cast<uint64_t>(width);
  const absl::string_view data = bytes.substr(start + header_len);
  if (data.size() != data_bytes) {
    return absl::InvalidArgumentError(absl::StrCat(label, ": .npy data holds ", data.size(), " bytes, the header says ",
                                                   data_bytes, " (", count, " x ", descr, ")"));
  }
  const char* p = data.data();
  if (kind == 'f') {
    std::vector<float> v(count);
    for (uint64_t i = 0; i < count; ++i) {
      if (width == 2) v[i] = format::HalfToFloat(Load<uint16_t>(p + 2 * i));
      else if (width == 4) v[i] = Load<float>(p + 4 * i);
      else if (width == 8) v[i] = static_cast<float>(Load<double>(p + 8 * i));
      else return absl::InvalidArgumentError(absl::StrCat(label, ": unsupported float width in '", descr, "'"));
    }
    return Tensor::Float(std::move(shape), std::move(v));
  }
  if (kind == 'i' || kind == 'u' || kind == 'b') {
    std::vector<int32_t> v(count);
    for (uint64_t i = 0; i < count; ++i) {
      int64_t x = 0;
      if (kind == 'b' || (kind == 'u' && width == 1)) x = static_cast<uint8_t>(p[i]);
      else if (kind == 'i' && width == 1) x = static_cast<int8_t>(p[i]);
      else if (kind == 'i' && width == 2) x = Load<int16_t>(p + 2 * i);
      else if (kind == 'u' && width == 2) x = Load<uint16_t>(p + 2 * i);
      else if (kind == 'i' && width == 4) x = Load<int32_t>(p + 4 * i);
      else if (kind == 'u' && width == 4) x = Load<uint32_t>(p + 4 * i);
      else if (kind == 'i' && width == 8) x = Load<int64_t>(p + 8 * i);
      else return absl::InvalidArgumentError(absl::StrCat(label, ": unsupported integer type '", descr, "'"));
      if (x < INT32_MIN || x > INT32_MAX) {
        return absl::InvalidArgumentError(absl::StrCat(label, ": element ", i, " (", x, ") does not fit int32"));
      }
      v[i] = static_cast<int32_t>(x);
    }
    return kind == 'b' ? Tensor::Bool(std::move(shape), std::move(v)) : Tensor::Int(std::move(shape), std::move(v));
  }
  return absl::InvalidArgumentError(absl::StrCat(label, ": unsupported .npy dtype '", descr, "'"));
}

// UTF-8 to code points; a byte that starts no valid sequence stands for
// itself (as Latin-1), so any label can be written.
std::u32string CodePoints(const std::string& s) {
  std::u32string out;
  size_t i = 0;
  while (i < s.size()) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    const int extra = c >= 0xf0 && c < 0xf8 ? 3 : c >= 0xe0 && c < 0xf0 ? 2 : c >= 0xc0 && c < 0xe0 ? 1 : 0;
    char32_t cp = extra == 3 ? c & 0x07 : extra == 2 ? c & 0x0f : c & 0x1f;
    bool ok = extra > 0 && i + extra < s.size();
    for (int k = 1; ok && k <= extra; ++k) {
      const unsigned char next = static_cast<unsigned char>(s[i + k]);
      ok = (next & 0xc0) == 0x80;
      cp = (cp << 6) | (next & 0x3f);
    }
    if (ok) {
      out += cp;
      i += 1 + extra;
    } else {
      out += static_cast<char32_t>(c);
      ++i;
    }
  }
  return out;
}

absl::StatusOr<std::string> SerializeNpy(const Tensor& t) {
  const char* descr = nullptr;
  std::vector<std::u32string> strings;
  size_t width = 1;
  std::string unicode;
  switch (t.dtype()) {
    case DType::kFloat32: descr = "<f4"; break;
    case DType::kInt32: descr = "<i4"; break;
    case DType::kBool: descr = "|b1"; break;
    case DType::kString: {
      // NumPy's fixed-width unicode: UTF-32LE, the longest string's width.
      for (const std::string& v : t.strings()) {
        strings.push_back(CodePoints(v));
        width = std::max(width, strings.back().size());
      }
      unicode = absl::StrCat("<U", width);
      descr = unicode.c_str();
      break;
    }
    default: return absl::InvalidArgumentError(absl::StrCat("cannot write a ", DTypeName(t.dtype()), " tensor as .npy"));
  }
  // Python tuple syntax: "()", "(3,)", "(1, 3, 224)".
  std::string shape = "(";
  for (size_t i = 0; i < t.shape().size(); ++i) absl::StrAppend(&shape, i ? ", " : "", t.shape()[i]);
  shape += t.shape().size() == 1 ? ",)" : ")";
  std::string header = absl::StrCat("{'descr': '", descr, "', 'fortran_order': False, 'shape': ", shape, ", }");
  // Pad with spaces so the data starts on a 64-byte boundary; end with '\n'.
  const size_t unpadded = 10 + header.size() + 1;
  header.append((64 - unpadded % 64) % 64, ' ');
  header += '\n';
  std::string out(kMagic, 6);
  out += '\x01';
  out += '\x00';
  const uint16_t len = static_cast<uint16_t>(header.size());
  out.append(reinterpret_cast<const char*>(&len), 2);
  out += header;
  if (t.dtype() == DType::kFloat32) {
    out.append(reinterpret_cast<const char*>(t.floats().data()), t.floats().size() * sizeof(float));
  } else if (t.dtype() == DType::kInt32) {
    out.append(reinterpret_cast<const char*>(t.ints().data()), t.ints().size() * sizeof(int32_t));
  } else if (t.dtype() == DType::kString) {
    for (const std::u32string& v : strings) {
      for (size_t k = 0; k < width; ++k) {
        const uint32_t cp = k < v.size() ? static_cast<uint32_t>(v[k]) : 0;
        for (int b = 0; b < 4; ++b) out += static_cast<char>((cp >> (8 * b)) & 0xff);
      }
    }
  } else {
    for (int32_t v : t.ints()) out += static_cast<char>(v != 0);
  }
  return out;
}

absl::StatusOr<Tensor> ReadNpyFile(const std::string& path) {
  ASSIGN_OR_RETURN(std::string bytes, ReadFile(path, kMaxNpyBytes));
  return ParseNpy(bytes, path);
}

absl::Status WriteNpyFile(const std::string& path, const Tensor& tensor) {
  ASSIGN_OR_RETURN(std::string bytes, SerializeNpy(tensor));
  return WriteFileAtomically(path, bytes);
}

}  // namespace coremlz::execute
