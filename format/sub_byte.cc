#include "format/sub_byte.h"

#include <cstring>

#include "absl/strings/str_cat.h"

namespace coremlz::format {

void PackBits(absl::Span<const uint8_t> codes, int nbits, absl::Span<uint8_t> out) {
  const uint32_t mask = (1u << nbits) - 1u;
  if (nbits == 8) {
    if (!codes.empty()) std::memcpy(out.data(), codes.data(), codes.size());  // data() may be null when empty
    return;
  }
  if (nbits == 4) {
    const size_t pairs = codes.size() / 2;
    const uint8_t* in = codes.data();
    uint8_t* dst = out.data();
    for (size_t p = 0; p < pairs; ++p) dst[p] = static_cast<uint8_t>((in[2 * p] & 0xf) | ((in[2 * p + 1] & 0xf) << 4));
    if (codes.size() % 2 == 1) dst[pairs] = codes.back() & 0xf;
    return;
  }
  // General case: shift codes into a bit accumulator and flush whole bytes.
  uint64_t acc = 0;
  int acc_bits = 0;
  size_t b = 0;
  for (uint8_t code : codes) {
    acc |= static_cast<uint64_t>(code & mask) << acc_bits;
    acc_bits += nbits;
    while (acc_bits >= 8) {
      out[b++] = static_cast<uint8_t>(acc & 0xff);
      acc >>= 8;
      acc_bits -= 8;
    }
  }
  if (acc_bits > 0) out[b] = static_cast<uint8_t>(acc & 0xff);
}

std::string PackBits(absl::Span<const uint8_t> codes, int nbits) {
  std::string out(PackedBytes(codes.size(), nbits), '\0');
  PackBits(codes, nbits, absl::Span<uint8_t>(reinterpret_cast<uint8_t*>(out.data()), out.size()));
  return out;
}

absl::Status UnpackBits(absl::string_view packed, int nbits, absl::Span<uint8_t> codes) {
  if (nbits < 1 || nbits > 8) return absl::InvalidArgumentError(absl::StrCat("bad bit width ", nbits));
  const uint64_t want = PackedBytes(codes.size(), nbits);
  if (packed.size() != want) {
    return absl::InvalidArgumentError(absl::StrCat("packed data is ", packed.size(), " bytes; ",
                                                   codes.size(), " codes of ", nbits,
                                                   " bits need exactly ", want));
  }
  const auto* in = reinterpret_cast<const uint8_t*>(packed.data());
  if (nbits == 8) {
    if (!codes.empty()) std::memcpy(codes.data(), in, codes.size());
    return absl::OkStatus();
  }
  if (nbits == 4) {
    for (size_t i = 0; i < codes.size(); ++i) codes[i] = (in[i / 2] >> (4 * (i % 2))) & 0xf;
    return absl::OkStatus();
  }
  const uint32_t mask = (1u << nbits) - 1u;
  uint64_t acc = 0;
  int acc_bits = 0;
  size_t b = 0;
  for (size_t i = 0; i < codes.size(); ++i) {
    while (acc_bits < nbits) {
      acc |= static_cast<uint64_t>(in[b++]) << acc_bits;
      acc_bits += 8;
    }
    codes[i] = static_cast<uint8_t>(acc & mask);
    acc >>= nbits;
    acc_bits -= nbits;
  }
  return absl::OkStatus();
}

}  // namespace coremlz::format
