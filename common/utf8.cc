#include "common/utf8.h"

#include <cstdint>

namespace coremlz {
namespace {

// Decodes one code point at s[*i], advancing *i; -1 if ill-formed.
int32_t Next(absl::string_view s, size_t* i) {
  const auto byte = [&](size_t k) { return static_cast<uint8_t>(s[k]); };
  const uint8_t b0 = byte(*i);
  if (b0 < 0x80) return s[(*i)++];
  int len;
  int32_t cp;
  int32_t min;
  if ((b0 & 0xe0) == 0xc0) { len = 2; cp = b0 & 0x1f; min = 0x80; }
  else if ((b0 & 0xf0) == 0xe0) { len = 3; cp = b0 & 0x0f; min = 0x800; }
  else if ((b0 & 0xf8) == 0xf0) { len = 4; cp = b0 & 0x07; min = 0x10000; }
  else return -1;
  if (s.size() - *i < static_cast<size_t>(len)) return -1;
  for (int k = 1; k < len; ++k) {
    const uint8_t b = byte(*i + k);
    if ((b & 0xc0) != 0x80) return -1;
    cp = (cp << 6) | (b & 0x3f);
  }
  if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return -1;
  *i += len;
  return cp;
}

}  // namespace

bool IsValidUtf8(absl::string_view s) {
  for (size_t i = 0; i < s.size();) {
    if (Next(s, &i) < 0) return false;
  }
  return true;
}

bool IsPrintableUtf8(absl::string_view s) {
  for (size_t i = 0; i < s.size();) {
    const int32_t cp = Next(s, &i);
    if (cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp < 0xa0)) return false;
  }
  return true;
}

}  // namespace coremlz
