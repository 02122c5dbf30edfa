// Weighted k-means (Lloyd) over the distinct vectors of a tensor.
//
// The procedure is fully specified so that it is reproducible (and so tests
// can mirror it):
//  1. Distinct vectors: rows are stable-sorted by the Morton code of their
//     values (see Distinct below: a total order of the distinct rows, -0
//     equal to +0) and equal rows are merged; weight = multiplicity.
//     Working on the ordered distinct set makes the result independent of
//     row order.
//  2. If there are at most k distinct vectors they are the centroids, in
//     lexicographic order of their values, each the bits of its first
//     occurrence.
//  3. k-means++ seeding with std::mt19937_64(seed), over the points in that
//     Morton order. A draw is u = (rng() >> 11) * 2^-53 in [0, 1). The
//     first centre is the first point i whose running sum of weights
//     exceeds u * total weight; each further centre is the first point whose
//     running sum of w_i * D_i^2 exceeds u * sum(w * D^2), where D_i is the
//     distance to the nearest centre so far (squared distances summed over
//     dimensions in order, in double).
//  4. Lloyd iterations in double: assign each point to its nearest centroid
//     (lowest index on ties), then move centroids to weighted means. A
//     cluster left empty takes the point farthest from its own (updated)
//     centroid among clusters that still have two or more points (the
//     first in Morton order on ties), which strictly lowers the SSE; then
//     means are recomputed. Stop when an update moved the centroids by at
//     most `shift_tolerance` times the points' mean per-dimension variance
//     (squared distances summed over centroids; weighted variance), when no
//     assignment changes, when the relative SSE improvement drops below
//     `tolerance`, or after `max_iterations`.
//  5. Centroids are rounded to float, every vector is assigned to its nearest
//     rounded centroid, and the SSE is measured against those, point by
//     point, so the result is exactly self-consistent.
// The assignment step walks a k-d tree built on that Morton order
// (compress/kmeans_tree.h) and so touches only the points near a boundary
// between clusters; where that prunes poorly (many dimensions) per-point
// bounds take over (compress/kmeans_bounds.h). Either way the assignments
// are exactly a full search's. Means and the SSE that decides when to stop
// are summed per tree node (per point after the switch), so their last bits
// differ from a plain point-by-point sum; nothing depends on that beyond
// rounding.
#include "compress/vector_kmeans.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <optional>
#include <random>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "compress/key_row_sort.h"
#include "compress/kmeans_bounds.h"
#include "compress/kmeans_tree.h"
#include "compress/squared_distance.h"

namespace coremlz::compress {
namespace {

// The distinct rows of a tensor in Morton order: the rows of point p are
// sorted positions [start, start + points.weight[p]) of `order`, start
// being the sum of the earlier weights (the points' multiplicities; the
// k-d tree keeps the points in this order).
struct DistinctRows {
  WeightedPoints points;
  std::vector<uint32_t> codes;  // per point, code_words each (for the tree)
  int code_words = 0;
  std::vector<uint32_t> order;         // sorted position -> input row (when kept)
};

// A float's bits as an unsigned key that sorts in the float's order, with
// -0 and +0 one key (they are equal values).
inline uint32_t OrderKey(float v) {
  uint32_t bits;
  std::memcpy(&bits, &v, sizeof bits);
  // Integer selects, no float compare: the loops over every value
  // vectorise and do not branch on the data.
  bits &= (bits << 1) != 0 ? ~uint32_t{0} : 0u;  // -0 -> +0
  const uint32_t negative = 0u - (bits >> 31);  // all ones if the sign is set
  return bits ^ (negative | 0x80000000u);
}

// The low 32 bits of v on the even bits of the result.
inline uint64_t SpreadBits(uint64_t v) {
  v &= 0xffffffffULL;
  v = (v | (v << 16)) & 0x0000ffff0000ffffULL;
  v = (v | (v << 8)) & 0x00ff00ff00ff00ffULL;
  v = (v | (v << 4)) & 0x0f0f0f0f0f0f0f0fULL;
  v = (v | (v << 2)) & 0x3333333333333333ULL;
  v = (v | (v << 1)) & 0x5555555555555555ULL;
  return v;
}

// SpreadBits' inverse: the even bits of v, packed.
inline uint32_t GatherBits(uint64_t v) {
  v &= 0x5555555555555555ULL;
  v = (v | (v >> 1)) & 0x3333333333333333ULL;
  v = (v | (v >> 2)) & 0x0f0f0f0f0f0f0f0fULL;
  v = (v | (v >> 4)) & 0x00ff00ff00ff00ffULL;
  v = (v | (v >> 8)) & 0x0000ffff0000ffffULL;
  v = (v | (v >> 16)) & 0x00000000ffffffffULL;
  return static_cast<uint32_t>(v);
}

// Byte-wise tables for codes of two coordinates of at most 16 bits each:
// kSpread8[b] is b's bits on the even bits of 16, kGather8[b] packs b's
// even bits into the low nibble and its odd bits into the high one. A
// lookup per byte is a few times cheaper than the shift-and-mask ladders
// above, on the hot 2-D path (pdep/pext would be cheaper still but are
// microcoded and slow on some x86 CPUs).
constexpr auto kSpread8 = [] {
  std::array<uint16_t, 256> table{};
  for (uint32_t b = 0; b < 256; ++b) {
    uint32_t v = 0;
    for (int i = 0; i < 8; ++i) v |= ((b >> i) & 1u) << (2 * i);
    table[b] = static_cast<uint16_t>(v);
  }
  return table;
}();
constexpr auto kGather8 = [] {
  std::array<uint8_t, 256> table{};
  for (uint32_t b = 0; b < 256; ++b) {
    uint32_t even = 0, odd = 0;
    for (int i = 0; i < 4; ++i) {
      even |= ((b >> (2 * i)) & 1u) << i;
      odd |= ((b >> (2 * i + 1)) & 1u) << i;
    }
    table[b] = static_cast<uint8_t>(even | (odd << 4));
  }
  return table;
}();

// (SpreadBits(a) << 1) | SpreadBits(b) for a, b < 2^16.
inline uint32_t Interleave16(uint32_t a, uint32_t b) {
  const uint32_t sa = kSpread8[a & 255] | (uint32_t{kSpread8[a >> 8]} << 16);
  const uint32_t sb = kSpread8[b & 255] | (uint32_t{kSpread8[b >> 8]} << 16);
  return (sa << 1) | sb;
}

// Interleave16's inverse: a from the odd bits of code, b from the even.
inline void Deinterleave16(uint32_t code, uint32_t* a, uint32_t* b) {
  uint32_t even = 0, odd = 0;
  for (int i = 0; i < 4; ++i) {
    const uint32_t g = kGather8[(code >> (8 * i)) & 255];
    even |= (g & 15u) << (4 * i);
    odd |= (g >> 4) << (4 * i);
  }
  *a = odd;
  *b = even;
}

// Codes of four or eight coordinates of at most 16 bits each (fp16 weights
// as 4-D or 8-D vectors), as 64-bit halves: coordinate t's bit i sits at
// bit i * dim + (dim - 1 - t) of the code, as Distinct's general loop puts
// it. Shift-and-mask ladders spread a coordinate to every 4th (8th) bit and
// gather it back.
//
// The low 16 bits of v on every 4th bit (0, 4, ..., 60).
inline uint64_t Spread4(uint64_t v) {
  v &= 0xffffULL;
  v = (v | (v << 24)) & 0x000000ff000000ffULL;
  v = (v | (v << 12)) & 0x000f000f000f000fULL;
  v = (v | (v << 6)) & 0x0303030303030303ULL;
  v = (v | (v << 3)) & 0x1111111111111111ULL;
  return v;
}
// Spread4's inverse: bits 0, 4, ..., 60 of v, packed.
inline uint32_t Gather4(uint64_t v) {
  v &= 0x1111111111111111ULL;
  v = (v | (v >> 3)) & 0x0303030303030303ULL;
  v = (v | (v >> 6)) & 0x000f000f000f000fULL;
  v = (v | (v >> 12)) & 0x000000ff000000ffULL;
  v = (v | (v >> 24)) & 0xffffULL;
  return static_cast<uint32_t>(v);
}
// The low 8 bits of v on every 8th bit (0, 8, ..., 56).
inline uint64_t Spread8(uint64_t v) {
  v &= 0xffULL;
  v = (v | (v << 28)) & 0x0000000f0000000fULL;
  v = (v | (v << 14)) & 0x0003000300030003ULL;
  v = (v | (v << 7)) & 0x0101010101010101ULL;
  return v;
}
// Spread8's inverse: bits 0, 8, ..., 56 of v, packed.
inline uint32_t Gather8(uint64_t v) {
  v &= 0x0101010101010101ULL;
  v = (v | (v >> 7)) & 0x0003000300030003ULL;
  v = (v | (v >> 14)) & 0x0000000f0000000fULL;
  v = (v | (v >> 28)) & 0xffULL;
  return static_cast<uint32_t>(v);
}

// The code of `cells` (4 or 8 of at most 16 bits): half[0] holds bits 0-63,
// half[1] bits 64-127 (only 8 coordinates of more than 8 bits reach them).
inline void InterleaveWide(const uint32_t* cells, size_t dim, uint64_t half[2]) {
  half[0] = half[1] = 0;
  if (dim == 4) {
    for (size_t t = 0; t < 4; ++t) half[0] |= Spread4(cells[t]) << (3 - t);
  } else {  // bit i of coordinate t: i * 8 + 7 - t, the top byte in the upper half
    for (size_t t = 0; t < 8; ++t) {
      half[0] |= Spread8(cells[t]) << (7 - t);
      half[1] |= Spread8(cells[t] >> 8) << (7 - t);
    }
  }
}
// InterleaveWide's inverse.
inline void DeinterleaveWide(const uint64_t half[2], size_t dim, uint32_t* cells) {
  if (dim == 4) {
    for (size_t t = 0; t < 4; ++t) cells[t] = Gather4(half[0] >> (3 - t));
  } else {
    for (size_t t = 0; t < 8; ++t) cells[t] = Gather8(half[0] >> (7 - t)) | (Gather8(half[1] >> (7 - t)) << 8);
  }
}
// A code of `words` 32-bit words, most significant first (the sort's
// layout), to and from its halves.
inline void PutCode(const uint64_t half[2], size_t words, uint32_t* row) {
  for (size_t w = 0; w < words; ++w) row[words - 1 - w] = static_cast<uint32_t>(half[w / 2] >> (32 * (w % 2)));
}
inline void GetCode(const uint32_t* row, size_t words, uint64_t half[2]) {
  half[0] = half[1] = 0;
  for (size_t w = 0; w < words; ++w) half[w / 2] |= static_cast<uint64_t>(row[words - 1 - w]) << (32 * (w % 2));
}

// OrderKey's inverse (a zero comes back as +0).
inline float FromOrderKey(uint32_t key) {
  const uint32_t bits = (key & 0x80000000u) != 0 ? key & 0x7fffffffu : ~key;
  float v;
  std::memcpy(&v, &bits, sizeof v);
  return v;
}

// A coordinate's order keys re-encoded densely, order and equality kept:
// the 9-bit sign-and-exponent prefix replaced by its rank among the
// prefixes that occur, and the mantissa bits that no value varies dropped
// (zeros under a positive key, ones under a negative one, which OrderKey
// flips). fp16 weights widened to float take 16 bits or fewer instead of 32,
// so a 2-D row's code is one word and the sort has fewer passes.
class DenseKey {
 public:
  // Coordinate t of every row.
  void Observe(absl::Span<const float> data, size_t dim, size_t t) {
    uint32_t varied = 0;  // a local: no store-to-load chain through the member
    for (size_t i = t; i < data.size(); i += dim) Note(OrderKey(data[i]), &varied);
    varied_ = varied;
  }
  // Coordinates 0 and 1 of 2-D rows into a and b: one pass over the data.
  static void ObservePair(absl::Span<const float> data, DenseKey& a, DenseKey& b) {
    uint32_t varied_a = 0, varied_b = 0;
    for (size_t i = 0; i + 1 < data.size(); i += 2) {
      a.Note(OrderKey(data[i]), &varied_a);
      b.Note(OrderKey(data[i + 1]), &varied_b);
    }
    a.varied_ = varied_a;
    b.varied_ = varied_b;
  }
  // Returns the bits a key takes.
  int Finish() {
    shift_ = varied_ == 0 ? 23 : __builtin_ctz(varied_);
    mantissa_bits_ = 23 - shift_;
    for (uint32_t prefix = 0; prefix < 512; ++prefix) {
      rank_[prefix] = static_cast<uint32_t>(prefixes_.size());
      if (used_[prefix]) prefixes_.push_back(prefix);
    }
    int rank_bits = 0;
    while ((size_t{1} << rank_bits) < prefixes_.size()) ++rank_bits;
    return rank_bits + mantissa_bits_;
  }
  uint32_t Encode(uint32_t key) const {
    return (rank_[key >> 23] << mantissa_bits_) | ((key & kMantissa) >> shift_);
  }
  // How many codes there are (ValueTable's size).
  size_t Codes() const { return prefixes_.size() << mantissa_bits_; }
  // Every code's value (codes < 2^16 only): a lookup instead of Decode.
  std::vector<float> ValueTable() const {
    std::vector<float> table(prefixes_.size() << mantissa_bits_);
    for (uint32_t code = 0; code < table.size(); ++code) table[code] = FromOrderKey(Decode(code));
    return table;
  }
  uint32_t Decode(uint32_t code) const {
    const uint32_t prefix = prefixes_[code >> mantissa_bits_];
    uint32_t key = (prefix << 23) | ((code & ((uint32_t{1} << mantissa_bits_) - 1)) << shift_);
    if ((key & 0x80000000u) == 0) key |= (uint32_t{1} << shift_) - 1;
    return key;
  }

 private:
  static constexpr uint32_t kMantissa = 0x7fffff;

  // Records a key's prefix, and in `varied` the mantissa bits it does not
  // share with the fill (all ones under a negative key, zero under a
  // positive one: compared without a branch).
  void Note(uint32_t key, uint32_t* varied) {
    used_[key >> 23] = true;
    *varied |= (key ^ ((key >> 31) - 1)) & kMantissa;
  }

  bool used_[512] = {};
  uint32_t varied_ = 0;
  int shift_ = 0;
  int mantissa_bits_ = 0;
  uint32_t rank_[512] = {};
  std::vector<uint32_t> prefixes_;
};

// Sorts the rows by their Morton codes and collapses equal ones. A row's
// code interleaves, bit by bit from the top (dimension 0 first), each
// coordinate's DenseKey (all padded to the widest): order-preserving per
// coordinate and exact, so equal codes are equal rows (-0 = +0) and
// the order is a total order of the distinct rows, whatever the input's row
// order. The sort is stable, so a group's first row represents it. Points
// are read in sorted order rather than gathered from the input: decoded
// from the code (one or two dimensions; a zero comes back as +0, the same
// value) or carried through the sort beside it. `keep_order`: record which
// input row each sorted position came from (else out->order stays empty
// and the sort moves less). False when cancelled.
bool Distinct(absl::Span<const float> data, int dim, bool keep_order, CancelCheck* cancel,
              DistinctRows* out) {
  const size_t count = data.size() / dim;
  const size_t d = static_cast<size_t>(dim);
  std::vector<DenseKey> dense(d);
  if (d == 2) {
    DenseKey::ObservePair(data, dense[0], dense[1]);
  } else {
    for (size_t t = 0; t < d; ++t) dense[t].Observe(data, d, t);
  }
  int bits = 1;
  for (DenseKey& key : dense) bits = std::max(bits, key.Finish());
  const size_t total_bits = d * bits;
  const size_t words = (total_bits + 31) / 32;
  // One or two dimensions decode from the code cheaply, and so do four or
  // eight of fp16 width (InterleaveWide); only other rows carry their
  // floats through the sort (more words moved per pass).
  const bool wide16 = (d == 4 || d == 8) && bits <= 16;
  const bool decode = d <= 2 || wide16;
  const size_t width = decode ? words : words + d;
  if (Stopped(cancel, static_cast<int64_t>(data.size()) * 2)) return false;

  std::vector<uint32_t> rows(count * width);
  std::vector<uint32_t> cell(d);
  // fp16 weights as 2-D vectors: every row one word, built by tables.
  const bool pair16 = d == 2 && bits <= 16;
  if (pair16) {
    for (size_t r = 0; r < count; ++r) {
      rows[r] = Interleave16(dense[0].Encode(OrderKey(data[2 * r])), dense[1].Encode(OrderKey(data[2 * r + 1])));
    }
  }
  if (wide16) {
    uint64_t half[2];
    for (size_t r = 0; r < count; ++r) {
      for (size_t t = 0; t < d; ++t) cell[t] = dense[t].Encode(OrderKey(data[r * d + t]));
      InterleaveWide(cell.data(), d, half);
      PutCode(half, words, &rows[r * width]);
    }
  }
  for (size_t r = 0; r < (pair16 || wide16 ? 0 : count); ++r) {
    uint32_t* row = &rows[r * width];
    for (size_t t = 0; t < d; ++t) {
      const float v = data[r * d + t];
      cell[t] = dense[t].Encode(OrderKey(v));
      if (!decode) {
        const float value = v == 0 ? 0.0f : v;  // +0, as a decoded point: no bit depends on row order
        std::memcpy(&row[words + t], &value, sizeof value);
      }
    }
    if (d == 1) {
      row[0] = cell[0];
    } else if (d == 2) {
      const uint64_t code = (SpreadBits(cell[0]) << 1) | SpreadBits(cell[1]);
      if (words == 1) {
        row[0] = static_cast<uint32_t>(code);
      } else {
        row[0] = static_cast<uint32_t>(code >> 32);
        row[1] = static_cast<uint32_t>(code);
      }
    } else {
      std::fill_n(row, words, 0);
      size_t position = total_bits;  // bits still to place, counted from the code's least significant end
      for (int b = bits - 1; b >= 0; --b) {
        for (size_t t = 0; t < d; ++t) {
          --position;
          row[words - 1 - position / 32] |= ((cell[t] >> b) & 1) << (position % 32);
        }
      }
    }
  }
  out->order.clear();
  if (keep_order) {
    out->order.resize(count);
    std::iota(out->order.begin(), out->order.end(), uint32_t{0});
  }
  if (!SortKeyRows<uint32_t>(&rows, static_cast<int>(width), static_cast<int>(words),
                             keep_order ? &out->order : nullptr, cancel)) {
    return false;
  }

  const auto same_code = [&](size_t a, size_t b) {
    if (words == 1) return rows[a * width] == rows[b * width];  // no memcmp call per row
    return std::equal(&rows[a * width], &rows[a * width] + words, &rows[b * width]);
  };
  size_t n = count == 0 ? 0 : 1;
  for (size_t r = 1; r < count; ++r) n += same_code(r - 1, r) ? 0 : 1;
  if (Stopped(cancel, static_cast<int64_t>(count) * 2)) return false;
  WeightedPoints& points = out->points;
  points.dim = dim;
  points.x.resize(n * d);
  points.weight.assign(n, 0);
  out->code_words = static_cast<int>(words);
  out->codes.resize(n * words);
  // fp16-width 2-D codes decode by tables, which pay for themselves only
  // over many more rows than entries (a small group decodes directly).
  const bool tables = pair16 && count >= 4 * (dense[0].Codes() + dense[1].Codes());
  std::vector<float> value0, value1;
  if (tables) {
    value0 = dense[0].ValueTable();
    value1 = dense[1].ValueTable();
  }
  for (size_t r = 0, p = 0; r < count; ++r) {
    if (r > 0 && !same_code(r - 1, r)) ++p;
    if (points.weight[p] == 0) {  // the group's first row
      const uint32_t* row = &rows[r * width];
      std::copy_n(row, words, &out->codes[p * words]);
      if (!decode) {
        std::memcpy(&points.x[p * d], row + words, sizeof(float) * d);
      } else if (wide16) {
        uint64_t half[2];
        GetCode(row, words, half);
        DeinterleaveWide(half, d, cell.data());
        for (size_t t = 0; t < d; ++t) points.x[p * d + t] = FromOrderKey(dense[t].Decode(cell[t]));
      } else if (tables) {
        uint32_t c0, c1;
        Deinterleave16(row[0], &c0, &c1);
        points.x[2 * p] = value0[c0];
        points.x[2 * p + 1] = value1[c1];
      } else {
        const uint64_t code = words == 1 ? row[0] : (static_cast<uint64_t>(row[0]) << 32) | row[1];
        for (size_t t = 0; t < d; ++t) {
          const uint32_t cell = d == 1 ? static_cast<uint32_t>(code) : GatherBits(code >> (1 - t));
          points.x[p * d + t] = FromOrderKey(dense[t].Decode(cell));
        }
      }
    }
    points.weight[p] += 1;
  }
  return true;
}

double Uniform01(std::mt19937_64& rng) { return static_cast<double>(rng() >> 11) * 0x1p-53; }

// The running sum of a pass's masses m_0, m_1, ... (each >= 0, summed in
// index order), with checkpoints from which a draw is found without a
// second pass: the first index whose running sum exceeds u * total. The
// running sum is a fixed sequence of roundings, so resuming it from the
// checkpoint before that index reproduces it bit for bit; a draw costs a
// binary search and at most one block.
class RunningSum {
 public:
  void Start(size_t n) {
    checkpoints_.clear();
    checkpoints_.reserve(n / kBlock + 1);
    total_ = 0;
    last_positive_ = 0;
  }
  void Add(size_t i, double m) {
    if ((i & (kBlock - 1)) == 0) checkpoints_.push_back(total_);
    last_positive_ = m > 0 ? i : last_positive_;
    total_ += m;
  }
  double total() const { return total_; }

  // The first index whose running sum exceeds u * total; the last index
  // with positive mass if rounding leaves the target unreached. `mass(i)`
  // must give the m_i that were added.
  template <typename Mass>
  size_t Draw(size_t n, Mass mass, double u) const {
    const double target = u * total_;
    // Blocks end at the next checkpoint (the last at the total); running
    // sums never decrease, so the first block ending above the target
    // holds the index.
    const size_t blocks = checkpoints_.size();
    size_t lo = 0, hi = blocks;  // first block b in [lo, hi) with end(b) > target
    auto end_of = [&](size_t b) { return b + 1 < blocks ? checkpoints_[b + 1] : total_; };
    while (lo < hi) {
      const size_t mid = lo + (hi - lo) / 2;
      if (end_of(mid) > target) {
        hi = mid;
      } else {
        lo = mid + 1;
      }
    }
    if (lo == blocks) return last_positive_;
    double running = checkpoints_[lo];
    for (size_t i = lo * kBlock, end = std::min(n, (lo + 1) * kBlock); i < end; ++i) {
      running += mass(i);
      if (running > target) return i;
    }
    return last_positive_;  // unreachable: the block ends above the target
  }

 private:
  static constexpr size_t kBlock = 256;
  std::vector<double> checkpoints_;  // the running sum before each block
  double total_ = 0;
  size_t last_positive_ = 0;
};

// Empty when cancelled. One pass per centre: it updates D^2 and sums
// w * D^2, and the next centre is drawn from its checkpoints.
std::vector<double> SeedKMeansPlusPlus(const WeightedPoints& p, int k, uint64_t seed, CancelCheck* cancel) {
  const int dim = p.dim;
  const size_t n = p.size();
  if (Stopped(cancel, static_cast<int64_t>(n) * (dim + 2))) return {};
  std::mt19937_64 rng(seed);
  std::vector<double> centroids(static_cast<size_t>(k) * dim);
  RunningSum sum;
  sum.Start(n);
  for (size_t i = 0; i < n; ++i) sum.Add(i, p.weight[i]);
  size_t pick = sum.Draw(n, [&](size_t i) { return p.weight[i]; }, Uniform01(rng));
  std::copy(p.row(pick), p.row(pick) + dim, centroids.begin());
  std::vector<double> d2(n);
  sum.Start(n);
  for (size_t i = 0; i < n; ++i) {
    d2[i] = SquaredDistance(p.row(i), p.row(pick), dim);
    sum.Add(i, p.weight[i] * d2[i]);
  }
  for (int c = 1; c < k; ++c) {
    if (Stopped(cancel, static_cast<int64_t>(n) * (dim + 4))) return {};
    // There are more distinct points than k, so some point has D > 0 and
    // already chosen points (D = 0) are never chosen again.
    pick = sum.Draw(n, [&](size_t i) { return p.weight[i] * d2[i]; }, Uniform01(rng));
    std::copy(p.row(pick), p.row(pick) + dim, centroids.begin() + static_cast<size_t>(c) * dim);
    if (c + 1 == k) break;
    sum.Start(n);
    for (size_t i = 0; i < n; ++i) {
      d2[i] = std::min(d2[i], SquaredDistance(p.row(i), p.row(pick), dim));
      sum.Add(i, p.weight[i] * d2[i]);
    }
  }
  return centroids;
}

// The weighted variance of each coordinate, averaged over coordinates
// (about the first point, then corrected: no cancellation far from zero).
// kDim > 0: points of that many coordinates, the sums in registers (the
// same sums in the same order as with kDim = 0, which keeps them in
// memory).
template <int kDim>
double MeanVariance(const WeightedPoints& p) {
  const int dim = kDim > 0 ? kDim : p.dim;
  std::conditional_t<(kDim > 0), std::array<double, (kDim > 0 ? kDim : 1)>, std::vector<double>> sum{},
      sum_sq{};
  if constexpr (kDim == 0) {
    sum.assign(dim, 0);
    sum_sq.assign(dim, 0);
  }
  double total_weight = 0;
  const float* anchor = p.row(0);
  for (size_t i = 0; i < p.size(); ++i) {
    const float* x = p.row(i);
    total_weight += p.weight[i];
    for (int t = 0; t < dim; ++t) {
      const double d = static_cast<double>(x[t]) - static_cast<double>(anchor[t]);
      sum[t] += p.weight[i] * d;
      sum_sq[t] += p.weight[i] * d * d;
    }
  }
  double mean_variance = 0;
  for (int t = 0; t < dim; ++t) {
    const double mean = sum[t] / total_weight;
    mean_variance += std::max(0.0, sum_sq[t] / total_weight - mean * mean);
  }
  return mean_variance / dim;
}

// Weighted means of the clusters from scratch, point by point in the tree's
// order (after assignments were changed by hand). Returns the number of
// points per cluster.
std::vector<int64_t> UpdateMeans(const WeightedPoints& p, const std::vector<int32_t>& assignment, int k,
                                 std::vector<double>* centroids) {
  ClusterSums sums;
  sums.Reset(k, p.dim);
  std::vector<double> row(p.dim);
  for (size_t i = 0; i < p.size(); ++i) {
    std::copy_n(p.row(i), p.dim, row.begin());
    sums.Add(row.data(), p.weight[i], 1, assignment[i]);
  }
  return sums.Finish(centroids);
}

// Lloyd's assignment step: KMeansTree, which prunes well in few dimensions,
// until a pass has computed more than half the distances of a full search
// (boxes that straddle most bisectors, as in 8 dimensions: 76 %); from then
// on per-point bounds (KMeansBounds), which skip more there. Distances, not
// points searched: in 4 dimensions with k = 256 the tree searches 92 % of
// the points but among a few kept centroids each (4 % of the distances).
// Both assign exactly as a full search; the switch changes only the order
// of the sums.
class Assigner {
 public:
  Assigner(KMeansTree tree, int k, CancelCheck* cancel) : tree_(std::move(tree)), k_(k), cancel_(cancel) {}
  // bounds_ refers to tree_'s points.
  Assigner(const Assigner&) = delete;
  Assigner& operator=(const Assigner&) = delete;

  const WeightedPoints& points() const { return tree_.points(); }
  bool cancelled() const { return cancel_ != nullptr && cancel_->cancelled(); }

  // `before`: the centroids of the previous call (unused by the first).
  double Assign(const std::vector<double>& before, const std::vector<double>& centroids,
                std::vector<int32_t>* assignment, size_t* changed, ClusterSums* sums) {
    if (bounds_.has_value()) return bounds_->Assign(before, centroids, assignment, changed, sums);
    const double sse = tree_.Assign(centroids, k_, assignment, changed, sums);
    if (tree_.last_distances() * 2 > points().size() * static_cast<size_t>(k_)) bounds_.emplace(points(), k_, cancel_);
    return sse;
  }

  // Point i's assignment was changed by hand.
  void Moved(size_t i) {
    tree_.ForgetOwners();
    if (bounds_.has_value()) bounds_->Invalidate(i);
  }

 private:
  KMeansTree tree_;
  const int k_;
  CancelCheck* const cancel_;
  std::optional<KMeansBounds> bounds_;
};

// Moves centroids to cluster means (`sums`, accumulated over the current
// assignment), re-seeding empty clusters.
// Returns early (centroids partly updated) when cancelled.
void Update(Assigner& assigner, int k, const ClusterSums& sums, std::vector<int32_t>* assignment,
            std::vector<double>* centroids, CancelCheck* cancel) {
  const WeightedPoints& p = assigner.points();
  const int dim = p.dim;
  std::vector<int64_t> members = sums.Finish(centroids);
  bool any_empty = false;
  for (int c = 0; c < k; ++c) any_empty |= members[c] == 0;
  if (!any_empty) return;
  std::vector<double> dist(p.size());
  for (size_t i = 0; i < p.size(); ++i) {
    const int c = (*assignment)[i];
    dist[i] = SquaredDistance(p.row(i), centroids->data() + static_cast<size_t>(c) * dim, dim);
  }
  for (int e = 0; e < k; ++e) {
    if (members[e] != 0) continue;
    if (Stopped(cancel, static_cast<int64_t>(p.size()))) return;
    // Only clusters with >= 2 points give one up, so none empties in turn;
    // since #points > k such a cluster exists and one of its points is off
    // its mean.
    int64_t far = -1;
    for (size_t i = 0; i < p.size(); ++i) {
      if (members[(*assignment)[i]] < 2) continue;
      if (far < 0 || dist[i] > dist[far]) far = static_cast<int64_t>(i);
    }
    --members[(*assignment)[far]];
    (*assignment)[far] = e;
    assigner.Moved(far);
    members[e] = 1;
    dist[far] = 0;
  }
  UpdateMeans(p, *assignment, k, centroids);
}

// Up to this many centroids (of at most two dimensions) a row's search is
// cheaper than carrying its index through the sort.
constexpr int kRowSearchMaxK = 16;

// Each row's nearest centroid, the lowest index on ties. kDim > 0: rows of
// that many coordinates (the loop unrolls), else `dim`. False when
// cancelled.
template <int kDim>
bool NearestCentroids(absl::Span<const float> data, int dim, const double* centroids, int k,
                      CancelCheck* cancel, std::vector<int32_t>* assignment) {
  const int d = kDim > 0 ? kDim : dim;
  const size_t count = data.size() / d;
  for (size_t r = 0; r < count; ++r) {
    const float* row = &data[r * d];
    int32_t best = 0;
    double best_distance = SquaredDistance(row, centroids, d);
    for (int c = 1; c < k; ++c) {
      const double distance = SquaredDistance(row, centroids + static_cast<size_t>(c) * d, d);
      if (distance < best_distance) {
        best_distance = distance;
        best = c;
      }
    }
    (*assignment)[r] = best;
    if ((r & 0xffff) == 0 && Stopped(cancel, int64_t{0x10000} * k)) return false;
  }
  return true;
}

// No more distinct rows than centroids: the centroids are the distinct
// rows in lexicographic order, each with the bits of its first occurrence,
// and every row goes to the one it equals (found by binary search, so
// without the sort's record of where rows came from).
absl::StatusOr<VectorKMeansResult> FewDistinctRows(absl::Span<const float> data, int dim,
                                                   const WeightedPoints& points, CancelCheck* cancel) {
  const size_t n = points.size(), count = data.size() / dim;
  const auto less = [dim](const float* a, const float* b) {  // < : -0 equals +0
    return std::lexicographical_compare(a, a + dim, b, b + dim);
  };
  std::vector<size_t> rank(n);
  std::iota(rank.begin(), rank.end(), size_t{0});
  std::sort(rank.begin(), rank.end(), [&](size_t a, size_t b) { return less(points.row(a), points.row(b)); });
  std::vector<float> listed(n * dim);  // the points in that order
  for (size_t j = 0; j < n; ++j) std::copy_n(points.row(rank[j]), dim, &listed[j * dim]);
  VectorKMeansResult result;
  result.assignment.resize(count);
  result.centroids.resize(n * dim);
  std::vector<bool> seen(n, false);
  for (size_t r = 0; r < count; ++r) {
    const float* row = &data[r * dim];
    size_t lo = 0, hi = n - 1;  // the listed row equal to `row` is in [lo, hi]
    while (lo < hi) {
      const size_t mid = lo + (hi - lo) / 2;
      if (less(&listed[mid * dim], row)) {
        lo = mid + 1;
      } else {
        hi = mid;
      }
    }
    const size_t j = lo;
    result.assignment[r] = static_cast<int32_t>(j);
    if (!seen[j]) {
      seen[j] = true;
      std::copy_n(row, dim, &result.centroids[j * dim]);
    }
    if ((r & 0xffff) == 0 && Stopped(cancel, 0x10000 * static_cast<int64_t>(n))) return CancelledStatus();
  }
  return result;
}

absl::Status Validate(absl::Span<const float> data, int dim, int k,
                      const VectorKMeansOptions& options) {
  if (dim < 1) return absl::InvalidArgumentError(absl::StrCat("VectorKMeans: dim must be >= 1, got ", dim));
  if (k < 1) return absl::InvalidArgumentError(absl::StrCat("VectorKMeans: k must be >= 1, got ", k));
  if (data.size() % static_cast<size_t>(dim) != 0) {
    return absl::InvalidArgumentError(absl::StrCat("VectorKMeans: data has ", data.size(),
                                                   " values, not a multiple of dim = ", dim));
  }
  if (options.max_iterations < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("VectorKMeans: max_iterations must be >= 0, got ", options.max_iterations));
  }
  if (!(options.tolerance >= 0) || !std::isfinite(options.tolerance)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "VectorKMeans: tolerance must be finite and >= 0, got ", options.tolerance));
  }
  if (!(options.shift_tolerance >= 0) || !std::isfinite(options.shift_tolerance)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "VectorKMeans: shift_tolerance must be finite and >= 0, got ", options.shift_tolerance));
  }
  for (size_t i = 0; i < data.size(); ++i) {
    if (!std::isfinite(data[i])) {
      return absl::InvalidArgumentError(absl::StrCat("VectorKMeans: data[", i, "] (row ", i / dim,
                                                     ") = ", data[i], " is not finite"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<VectorKMeansResult> VectorKMeans(absl::Span<const float> data, int dim, int k,
                                                const VectorKMeansOptions& options) {
  if (absl::Status status = Validate(data, dim, k, options); !status.ok()) return status;
  CancelCheck* const cancel = options.cancel;
  const size_t count = data.size() / dim;
  // 32-bit row and point indices halve the sort's traffic; no tensor that
  // fits the engine's memory bounds comes near them.
  if (count >= std::numeric_limits<uint32_t>::max()) {
    return absl::ResourceExhaustedError(
        absl::StrCat("VectorKMeans: ", count, " vectors; at most 2^32 - 2 are supported"));
  }
  // Where a row's nearest centroid costs only a few distances, rows find
  // their clusters themselves at the end instead of through the sort's
  // record of where each came from: a sort pass then moves 4 bytes a row
  // instead of 8, and the final scatter's random writes go.
  const bool rows_search = dim <= 2 && k <= kRowSearchMaxK;
  DistinctRows distinct;
  if (!Distinct(data, dim, !rows_search, cancel, &distinct)) return CancelledStatus();
  const size_t n = distinct.points.size();

  if (n <= static_cast<size_t>(k)) return FewDistinctRows(data, dim, distinct.points, cancel);
  VectorKMeansResult result;
  result.assignment.resize(count);

  std::vector<double> centroids = SeedKMeansPlusPlus(distinct.points, k, options.seed, cancel);
  if (centroids.empty()) return CancelledStatus();
  ASSIGN_OR_RETURN(KMeansTree tree, KMeansTree::Build(std::move(distinct.points), std::move(distinct.codes),
                                                      distinct.code_words, cancel));
  Assigner assigner(std::move(tree), k, cancel);
  std::vector<int32_t> assignment(n, -1);
  size_t changed = 0;
  ClusterSums sums;
  // The centroids of the last assignment: the bounds loosen by how far the
  // centroids moved since then, however many updates ago.
  std::vector<double> assigned_with = centroids;
  double sse = assigner.Assign(assigned_with, centroids, &assignment, &changed, &sums);
  if (assigner.cancelled()) return CancelledStatus();
  int iterations = 0;
  const double shift_limit =
      options.shift_tolerance > 0
          ? options.shift_tolerance *
                (dim == 2 ? MeanVariance<2>(assigner.points()) : MeanVariance<0>(assigner.points()))
          : -1;
  while (iterations < options.max_iterations) {
    Update(assigner, k, sums, &assignment, &centroids, cancel);
    if (assigner.cancelled()) return CancelledStatus();
    if (shift_limit >= 0 && SquaredDistance(assigned_with.data(), centroids.data(),
                                            static_cast<int>(centroids.size())) <= shift_limit) {
      ++iterations;  // settled: the final assignment below is against these
      break;
    }
    const double previous = sse;
    sse = assigner.Assign(assigned_with, centroids, &assignment, &changed, &sums);
    assigned_with = centroids;
    if (assigner.cancelled()) return CancelledStatus();
    ++iterations;
    if (changed == 0 || previous - sse <= options.tolerance * previous) break;
  }

  // Round to float and make the assignment and SSE consistent with what is
  // returned; reassigning can only lower the SSE for these centroids.
  result.iterations = iterations;
  result.centroids.resize(static_cast<size_t>(k) * dim);
  for (size_t i = 0; i < result.centroids.size(); ++i) {
    result.centroids[i] = static_cast<float>(centroids[i]);
    centroids[i] = result.centroids[i];
  }
  assigner.Assign(assigned_with, centroids, &assignment, &changed, nullptr);
  if (assigner.cancelled()) return CancelledStatus();
  const WeightedPoints& points = assigner.points();
  double sse_total = 0;  // a local: the sum stays in a register
  for (size_t j = 0; j < n; ++j) {
    sse_total += points.weight[j] *
                 SquaredDistance(points.row(j), &result.centroids[static_cast<size_t>(assignment[j]) * dim], dim);
  }
  result.sse = sse_total;
  if (rows_search) {
    // The same nearest centroid as the point equal to the row (the same
    // values, and -0 squares as +0), lowest index on ties.
    const bool done =
        dim == 2 ? NearestCentroids<2>(data, dim, centroids.data(), k, cancel, &result.assignment)
                 : NearestCentroids<0>(data, dim, centroids.data(), k, cancel, &result.assignment);
    if (!done) return CancelledStatus();
    return result;
  }
  for (size_t p = 0, r = 0; p < n; ++p) {
    for (const size_t end = r + static_cast<size_t>(points.weight[p]); r < end; ++r) {
      result.assignment[distinct.order[r]] = assignment[p];
    }
  }
  return result;
}

}  // namespace coremlz::compress
