#include "compress/float_sort.h"

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>

namespace coremlz::compress {
namespace {

// An unsigned key in the floats' order: negatives flipped whole, positives
// with the sign bit set; -0.0 takes +0.0's key so the two stay equal.
inline uint32_t Key(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if (u == 0x80000000u) u = 0;
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

constexpr int kPasses = 3;
constexpr int kShift[kPasses] = {0, 11, 22};
constexpr uint32_t kMask[kPasses] = {0x7ff, 0x7ff, 0x3ff};
constexpr size_t kPoll = size_t{1} << 20;

}  // namespace

bool StableSortFloats(std::vector<float>& v, CancelCheck* cancel) {
  const size_t n = v.size();
  if (n < 2) return true;
  // Every digit's histogram in one pass.
  std::vector<std::array<uint64_t, 2048>> count(kPasses);
  for (auto& c : count) c.fill(0);
  for (size_t i = 0; i < n; ++i) {
    if ((i & (kPoll - 1)) == 0 && Stopped(cancel, static_cast<int64_t>(std::min(kPoll, n - i)))) return false;
    const uint32_t k = Key(v[i]);
    for (int p = 0; p < kPasses; ++p) ++count[p][(k >> kShift[p]) & kMask[p]];
  }
  std::vector<float> other(n);
  std::vector<float>* from = &v;
  std::vector<float>* to = &other;
  for (int p = 0; p < kPasses; ++p) {
    std::array<uint64_t, 2048>& c = count[p];
    // A digit every value shares moves nothing.
    bool trivial = false;
    for (uint64_t x : c) trivial |= x == n;
    if (trivial) continue;
    uint64_t sum = 0;
    for (uint64_t& x : c) {
      const uint64_t here = x;
      x = sum;
      sum += here;
    }
    const float* src = from->data();
    float* dst = to->data();
    for (size_t i = 0; i < n; ++i) {
      if ((i & (kPoll - 1)) == 0 && Stopped(cancel, static_cast<int64_t>(std::min(kPoll, n - i)))) return false;
      dst[c[(Key(src[i]) >> kShift[p]) & kMask[p]]++] = src[i];
    }
    std::swap(from, to);
  }
  if (from != &v) v.swap(other);
  return true;
}

}  // namespace coremlz::compress
