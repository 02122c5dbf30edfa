// Bit packing of quantized NeuralNetwork weights (WeightParams.rawValue).
//
// Unlike ML Program blobs (LSB-first, format/sub_byte.h), legacy Core ML
// packs n-bit codes as a big-endian bit stream: each code's most significant
// bit first, and within a byte the first bit of the stream is bit 7. The last
// byte is zero-padded.
#ifndef COREMLZ_FORMAT_NN_BIT_PACKING_H_
#define COREMLZ_FORMAT_NN_BIT_PACKING_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace coremlz::format {

std::string PackNeuralNetworkCodes(absl::Span<const uint8_t> codes, int nbits);
// Fails unless `packed` is exactly ceil(codes.size() * nbits / 8) bytes.
absl::Status UnpackNeuralNetworkCodes(absl::string_view packed, int nbits, absl::Span<uint8_t> codes);

}  // namespace coremlz::format

#endif  // COREMLZ_FORMAT_NN_BIT_PACKING_H_
