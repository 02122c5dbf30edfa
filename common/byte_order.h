// Little-endian fixed-width integer encoding, as used by Core ML's binary
// formats. Byte-by-byte so it is correct on any host and never reads unaligned.
#ifndef COREMLZ_COMMON_BYTE_ORDER_H_
#define COREMLZ_COMMON_BYTE_ORDER_H_

#include <cstdint>
#include <string>

namespace coremlz {

// Bulk paths (tensor bytes <-> floats) copy values in host order and rely on
// this; a big-endian port would swap there.
inline constexpr bool kHostIsLittleEndian = __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__;
static_assert(kHostIsLittleEndian, "coremlz's bulk tensor conversions assume a little-endian host");

inline uint32_t DecodeFixed32(const unsigned char* p) {
  return uint32_t{p[0]} | (uint32_t{p[1]} << 8) | (uint32_t{p[2]} << 16) | (uint32_t{p[3]} << 24);
}
inline uint64_t DecodeFixed64(const unsigned char* p) {
  return uint64_t{DecodeFixed32(p)} | (uint64_t{DecodeFixed32(p + 4)} << 32);
}
inline uint32_t DecodeFixed32(const char* p) {
  return DecodeFixed32(reinterpret_cast<const unsigned char*>(p));
}
inline uint64_t DecodeFixed64(const char* p) {
  return DecodeFixed64(reinterpret_cast<const unsigned char*>(p));
}

inline void EncodeFixed32(char* dst, uint32_t v) {
  for (int i = 0; i < 4; ++i) dst[i] = static_cast<char>((v >> (8 * i)) & 0xff);
}
inline void EncodeFixed64(char* dst, uint64_t v) {
  for (int i = 0; i < 8; ++i) dst[i] = static_cast<char>((v >> (8 * i)) & 0xff);
}
inline void PutFixed32(std::string* dst, uint32_t v) {
  char buf[4];
  EncodeFixed32(buf, v);
  dst->append(buf, 4);
}
inline void PutFixed64(std::string* dst, uint64_t v) {
  char buf[8];
  EncodeFixed64(buf, v);
  dst->append(buf, 8);
}

}  // namespace coremlz

#endif  // COREMLZ_COMMON_BYTE_ORDER_H_
