// Bit packing of sub-byte codes (1, 2, 3, 4, 6 bits), as Core ML stores them
// both in blob storage (uint1..uint6, int4) and in iOS16 constexpr_lut_to_dense
// index bytes: a little-endian bit stream. Element i occupies bits
// [i*n, (i+1)*n) of the stream, where bit k is bit (k % 8) of byte k / 8
// (least significant bit first); the last byte is zero-padded.
#ifndef COREMLZ_FORMAT_SUB_BYTE_H_
#define COREMLZ_FORMAT_SUB_BYTE_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace coremlz::format {

inline uint64_t PackedBytes(uint64_t count, int nbits) {
  return (count * static_cast<uint64_t>(nbits) + 7) / 8;
}

// Packs `codes` (each < 2^nbits; higher bits are masked off) into `out`,
// which must hold PackedBytes(codes.size(), nbits) bytes. nbits in [1, 8].
void PackBits(absl::Span<const uint8_t> codes, int nbits, absl::Span<uint8_t> out);
std::string PackBits(absl::Span<const uint8_t> codes, int nbits);

// Unpacks codes.size() codes. Fails if `packed` is not exactly
// PackedBytes(codes.size(), nbits) long.
absl::Status UnpackBits(absl::string_view packed, int nbits, absl::Span<uint8_t> codes);

// Interprets a 4-bit two's complement code as a signed value.
inline int8_t SignExtend4(uint8_t code) {
  return static_cast<int8_t>(static_cast<int8_t>(code << 4) >> 4);
}

}  // namespace coremlz::format

#endif  // COREMLZ_FORMAT_SUB_BYTE_H_
