#include "format/nn_bit_packing.h"

#include "absl/strings/str_cat.h"

namespace coremlz::format {

std::string PackNeuralNetworkCodes(absl::Span<const uint8_t> codes, int nbits) {
  std::string out((codes.size() * nbits + 7) / 8, '\0');
  uint64_t bit = 0;  // position in the stream; stream bit b is bit 7 - b % 8 of byte b / 8
  for (uint8_t code : codes) {
    for (int i = nbits - 1; i >= 0; --i, ++bit) {
      if ((code >> i) & 1) out[bit / 8] = static_cast<char>(out[bit / 8] | (0x80 >> (bit % 8)));
    }
  }
  return out;
}

absl::Status UnpackNeuralNetworkCodes(absl::string_view packed, int nbits, absl::Span<uint8_t> codes) {
  if (nbits < 1 || nbits > 8) return absl::InvalidArgumentError(absl::StrCat("bad bit width ", nbits));
  const uint64_t want = (codes.size() * static_cast<uint64_t>(nbits) + 7) / 8;
  if (packed.size() != want) {
    return absl::InvalidArgumentError(absl::StrCat("rawValue is ", packed.size(), " bytes; ", codes.size(),
                                                   " codes of ", nbits, " bits need ", want));
  }
  const auto* in = reinterpret_cast<const unsigned char*>(packed.data());
  if (nbits == 8) {
    for (size_t i = 0; i < codes.size(); ++i) codes[i] = in[i];
    return absl::OkStatus();
  }
  uint64_t bit = 0;
  for (uint8_t& code : codes) {
    uint8_t v = 0;
    for (int i = 0; i < nbits; ++i, ++bit) v = static_cast<uint8_t>((v << 1) | ((in[bit / 8] >> (7 - bit % 8)) & 1));
    code = v;
  }
  return absl::OkStatus();
}

}  // namespace coremlz::format
