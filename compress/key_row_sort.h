// Sorting rows of 32-bit key words in linear time: a stable LSD radix sort
// that moves each row's keys with it, so every pass reads its digits in
// order instead of chasing indices into the keys (that gather was most of
// vector k-means' old row sort). Vector k-means sorts its rows by Morton
// code with it, which both collapses equal rows and orders its k-d tree.
#ifndef COREMLZ_COMPRESS_KEY_ROW_SORT_H_
#define COREMLZ_COMPRESS_KEY_ROW_SORT_H_

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "compress/cancel.h"

namespace coremlz::compress {

namespace internal {

constexpr int kDigitBits = 11;
constexpr uint32_t kDigitMask = (uint32_t{1} << kDigitBits) - 1;

// One counting-sort pass by the 11-bit digit of word t at `shift`; `bucket`
// holds each digit's first position. kWidth 0: rows of `width` words.
// kCarry: move `order` with the rows.
template <int kWidth, bool kCarry, typename Index>
void ScatterRows(const std::vector<uint32_t>& keys, const std::vector<Index>& order, size_t count, int t,
                 int shift, size_t* bucket, std::vector<uint32_t>& next_keys, std::vector<Index>& next_order,
                 size_t width = kWidth) {
  const size_t w = kWidth > 0 ? kWidth : width;
  const uint32_t* src = keys.data();
  uint32_t* dst = next_keys.data();
  for (size_t r = 0; r < count; ++r) {
    const size_t at = bucket[(src[r * w + t] >> shift) & kDigitMask]++;
    for (size_t j = 0; j < w; ++j) dst[at * w + j] = src[r * w + j];
    if constexpr (kCarry) next_order[at] = order[r];
  }
}

template <bool kCarry, typename Index>
void ScatterAnyRows(const std::vector<uint32_t>& keys, const std::vector<Index>& order, size_t count,
                    size_t width, int t, int shift, size_t* bucket, std::vector<uint32_t>& next_keys,
                    std::vector<Index>& next_order) {
  // Rows of one or two words (vector k-means' usual rows, the Morton
  // codes) are moved as fixed-size copies, not a memmove call per row.
  if (width == 1) {
    ScatterRows<1, kCarry>(keys, order, count, t, shift, bucket, next_keys, next_order);
  } else if (width == 2) {
    ScatterRows<2, kCarry>(keys, order, count, t, shift, bucket, next_keys, next_order);
  } else {
    ScatterRows<0, kCarry>(keys, order, count, t, shift, bucket, next_keys, next_order, width);
  }
}

}  // namespace internal

// `keys` holds keys->size() / width rows of `width` words (row-major). Sorts the
// rows lexicographically by their first `key_words` words (word 0 most
// significant), stably: rows with equal keys keep their relative order. The
// remaining words ride along (a payload that is then read in order rather
// than gathered), and `order` (optional: nullptr, or one entry per row) is
// permuted with the rows (start it as 0, 1, 2, ... to learn where each row
// came from; without it a pass moves half the bytes for one-word rows).
// 11-bit digits, all of a
// word's counted in one pass; a digit that every row shares is not moved.
// False when cancelled (rows and `order` are then permuted alike, not
// sorted).
template <typename Index>
bool SortKeyRows(std::vector<uint32_t>* keys, int width, int key_words, std::vector<Index>* order,
                 CancelCheck* cancel) {
  using internal::kDigitBits;
  constexpr size_t kBuckets = size_t{1} << kDigitBits;
  constexpr int kPasses = (32 + kDigitBits - 1) / kDigitBits;
  const size_t w = static_cast<size_t>(width);
  const size_t count = keys->size() / w;
  std::vector<uint32_t> next_keys(keys->size());
  std::vector<Index> no_order;
  const bool carry = order != nullptr;
  if (!carry) order = &no_order;
  std::vector<Index> next_order(carry ? count : 0);
  std::vector<size_t> start(kPasses * kBuckets);
  for (int t = key_words - 1; t >= 0; --t) {
    // Digit counts do not depend on the order: one pass counts all three.
    if (Stopped(cancel, static_cast<int64_t>(count) * 4)) return false;
    std::fill(start.begin(), start.end(), 0);
    for (size_t r = 0; r < count; ++r) {
      const uint32_t v = (*keys)[r * w + t];
      for (int pass = 0; pass < kPasses; ++pass) {
        ++start[pass * kBuckets + ((v >> (pass * kDigitBits)) & (kBuckets - 1))];
      }
    }
    for (int pass = 0; pass < kPasses; ++pass) {
      size_t* bucket = &start[pass * kBuckets];
      if (*std::max_element(bucket, bucket + kBuckets) == count) continue;  // shared digit
      if (Stopped(cancel, static_cast<int64_t>(count) * (width + 4))) return false;
      size_t sum = 0;
      for (size_t d = 0; d < kBuckets; ++d) {
        const size_t n = bucket[d];
        bucket[d] = sum;
        sum += n;
      }
      const int shift = pass * kDigitBits;
      if (carry) {
        internal::ScatterAnyRows<true>(*keys, *order, count, w, t, shift, bucket, next_keys, next_order);
      } else {
        internal::ScatterAnyRows<false>(*keys, *order, count, w, t, shift, bucket, next_keys, next_order);
      }
      keys->swap(next_keys);
      order->swap(next_order);
    }
  }
  return true;
}

}  // namespace coremlz::compress

#endif  // COREMLZ_COMPRESS_KEY_ROW_SORT_H_
