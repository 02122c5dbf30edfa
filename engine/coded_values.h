// The values of a reconstruction in which every element is determined by
// its block and code (linear quantization: a block's scale and offset;
// palettes: a group's LUT), or is a pruned zero: one element per distinct
// (block, code) pair. The report counts distinct values and checks
// finiteness over these instead of over every element (for fp32 weights
// the count over all of them cost more than the compression).
#ifndef COREMLZ_ENGINE_CODED_VALUES_H_
#define COREMLZ_ENGINE_CODED_VALUES_H_

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
  const uint64_t pairs = static_cast<uint64_t>(blocks) * entries;
  if (codes.size() != reconstructed.size() || (mask && mask->size() != reconstructed.size()) ||
      pairs > reconstructed.size()) {
    return std::nullopt;
  }
  // The value of each (block, code) pair, stored by every element of the
  // pair (they are all equal) with no load to wait for; a masked element
  // stores into the spare last slot instead. Values, not indices: gathering
  // by index afterwards missed the cache on every pair.
  std::vector<float> value(pairs + 1);
  std::vector<uint8_t> present(pairs + 1, 0);
  const uint8_t code_mask = static_cast<uint8_t>(entries - 1);
  const float* values = reconstructed.data();
  const uint8_t* code = codes.data();
  const uint8_t* keep = mask ? mask->data() : nullptr;
  float* v = value.data();
  uint8_t* p = present.data();
  for_each_run([&](int64_t block, int64_t start, int64_t length) {
    const uint64_t base = static_cast<uint64_t>(block) * entries;
    for (int64_t i = start; i < start + length; ++i) {
      const uint64_t t = keep == nullptr || keep[i] ? base + (code[i] & code_mask) : pairs;
      v[t] = values[i];
      p[t] = 1;
    }
  });
  std::vector<float> out(pairs + 2);
  uint64_t k = 0;
  for (uint64_t t = 0; t < pairs; ++t) {  // branch-free compaction
    out[k] = v[t];
    k += p[t];
  }
  if (p[pairs]) out[k++] = 0.0f;
  out.resize(k);
  return out;
}

}  // namespace coremlz::engine

#endif  // COREMLZ_ENGINE_CODED_VALUES_H_
