// The values of a reconstruction in which every element is determined by
// its block and code (linear quantization: a block's scale and offset;
// palettes: a group's LUT), or is a pruned zero: one element per distinct
// (block, code) pair. The report counts distinct values and checks
// finiteness over these instead of over every element (for fp32 weights
// the count over all of them cost more than the compression).
#ifndef COREMLZ_ENGINE_CODED_VALUES_H_
#define COREMLZ_ENGINE_CODED_VALUES_H_

#include <algorithm>
#include <cstdint>
#include <optional>
#include <vector>

#include "absl/types/span.h"

namespace coremlz::engine {

// `for_each_run(fn)` calls fn(block, first_element, length) over runs that
// cover every element once. Elements whose `mask` (optional) byte is 0 count
// as a +0.0. Nullopt when the (block, code) table would be larger than the
// tensor: then the caller reads `reconstructed` itself.
template <typename ForEachRun>
std::optional<std::vector<float>> CodedValues(absl::Span<const float> reconstructed, absl::Span<const uint8_t> codes,
                                              int bits, int64_t blocks, const std::vector<uint8_t>* mask,
                                              ForEachRun&& for_each_run) {
  const uint64_t entries = uint64_t{1} << bits;
  if (codes.size() != reconstructed.size() || (mask && mask->size() != reconstructed.size()) ||
      static_cast<uint64_t>(blocks) * entries > reconstructed.size()) {
    return std::nullopt;
  }
  std::vector<uint8_t> seen(static_cast<uint64_t>(blocks) * entries, 0);
  std::vector<float> out;
  uint64_t k = 0;
  bool zero = false;
  const uint8_t code_mask = static_cast<uint8_t>(entries - 1);
  const float* values = reconstructed.data();
  const uint8_t* code = codes.data();
  const uint8_t* keep = mask ? mask->data() : nullptr;
  for_each_run([&](int64_t block, int64_t start, int64_t length) {
    // Room for every element of the run, plus the store past the end.
    if (out.size() < k + length + 1) out.resize(std::max<uint64_t>(2 * out.size(), k + length + 1));
    // Branch-free (a block's first sight of a code is frequent and random):
    // always store, advance past the first sight of each pair only. Locals:
    // the byte stores could alias anything reached through a reference.
    uint8_t* block_seen = seen.data() + static_cast<uint64_t>(block) * entries;
    float* o = out.data();
    uint64_t n = k;
    uint8_t masked = 0;
    for (int64_t i = start; i < start + length; ++i) {
      const uint8_t kept = keep ? keep[i] != 0 : 1;
      uint8_t& s = block_seen[code[i] & code_mask];
      o[n] = values[i];
      n += kept & (s ^ 1);
      s |= kept;
      masked |= kept ^ 1;
    }
    k = n;
    zero |= masked != 0;
  });
  out.resize(k);
  if (zero) out.push_back(0.0f);
  return out;
}

}  // namespace coremlz::engine

#endif  // COREMLZ_ENGINE_CODED_VALUES_H_
