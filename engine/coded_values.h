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
// cover every element once, each run inside one block, all of one length.
// Elements whose `mask` (optional) byte is 0 count as a +0.0. Each run's
// pairs are collected in a table of 2^bits entries (in L1), so a block
// spread over several runs may give repeats. Nullopt when the runs are
// shorter than the table (the caller then reads `reconstructed` itself).
template <typename ForEachRun>
std::optional<std::vector<float>> CodedValues(absl::Span<const float> reconstructed, absl::Span<const uint8_t> codes,
                                              int bits, const std::vector<uint8_t>* mask, ForEachRun&& for_each_run) {
  const int64_t entries = int64_t{1} << bits;
  if (codes.size() != reconstructed.size() || (mask && mask->size() != reconstructed.size())) return std::nullopt;
  // The value of each code in the run, stored by every element that has it
  // (they are all equal) with no load to wait for; masked elements store
  // into the spare last entry.
  float value[257] = {};
  uint8_t present[257] = {};
  const uint8_t code_mask = static_cast<uint8_t>(entries - 1);
  const float* values = reconstructed.data();
  const uint8_t* code = codes.data();
  const uint8_t* keep = mask ? mask->data() : nullptr;
  std::vector<float> out;
  uint64_t k = 0;
  bool zero = false, short_runs = false;
  for_each_run([&](int64_t, int64_t start, int64_t length) {
    if (short_runs || length < entries) {
      short_runs = true;
      return;
    }
    // Everything in locals: the byte stores may alias whatever the lambda
    // reaches through its captures, which would be reloaded every element.
    const float* in = values + start;
    const uint8_t* c = code + start;
    float* v = value;
    uint8_t* p = present;
    const uint8_t m = code_mask;
    if (keep == nullptr) {
      for (int64_t i = 0; i < length; ++i) {
        const int t = c[i] & m;
        v[t] = in[i];
        p[t] = 1;
      }
    } else {
      const uint8_t* kept = keep + start;
      const int spare = static_cast<int>(entries);
      for (int64_t i = 0; i < length; ++i) {
        const int t = kept[i] ? c[i] & m : spare;
        v[t] = in[i];
        p[t] = 1;
      }
    }
    if (out.size() < k + entries) out.resize(std::max<uint64_t>(2 * out.size(), k + entries));
    float* o = out.data();
    uint64_t n = k;
    for (int64_t t = 0; t < entries; ++t) {  // branch-free compaction
      o[n] = v[t];
      n += p[t];
      p[t] = 0;
    }
    k = n;
    zero |= p[entries] != 0;
    p[entries] = 0;
  });
  if (short_runs) return std::nullopt;
  out.resize(k);
  if (zero) out.push_back(0.0f);
  return out;
}

}  // namespace coremlz::engine

#endif  // COREMLZ_ENGINE_CODED_VALUES_H_
