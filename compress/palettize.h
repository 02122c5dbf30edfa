// Palettization (weight clustering): every weight becomes an n-bit index into
// a palette (look-up table) of 2^n values, optionally per group of channels,
// optionally clustering short vectors instead of scalars, optionally after
// normalising by a per-channel scale. Shapes follow Core ML's iOS18
// constexpr_lut_to_dense: the LUT has rank R + 2, [.., groups at the channel
// axis, .., 2^n, cluster_dim], and indices have the weight's shape with the
// channel axis divided by cluster_dim.
//
// palettize.cc is ~640 lines: one entry point per mode that Core ML can
// express (per tensor, grouped channels, per-channel scale, vectors, custom
// and unique palettes) sharing the index packing; splitting the modes apart
// would scatter the one layout contract above.
#ifndef COREMLZ_COMPRESS_PALETTIZE_H_
#define COREMLZ_COMPRESS_PALETTIZE_H_

#include <cstdint>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "compress/cancel.h"
#include "compress/parallel_for.h"
#include "compress/precision.h"

namespace coremlz::compress {

enum class PaletteMode {
  kKMeans,   // minimum-SSE palette (exact 1-D DP for scalars)
  kUniform,  // 2^n evenly spaced values over [min, max]
  kUnique,   // the distinct values themselves; bit width inferred
  kCustom,   // a palette given by the caller; nearest entry per weight
};

struct PalettizeOptions {
  PaletteMode mode = PaletteMode::kKMeans;
  int bits = 4;                // ignored for kUnique and kCustom
  int channel_axis = 0;        // normalised (non-negative)
  int64_t group_size = 0;      // channels per palette along channel_axis; 0 = all
  int cluster_dim = 1;         // > 1: vector palettization along channel_axis
  bool per_channel_scale = false;
  std::vector<float> custom_palette;  // kCustom: 2^n entries
  bool allow_3_bits = true;    // kUnique: iOS16/17 palettes cannot be 3-bit
  Precision precision = Precision::kFloat16;
  // Optional: polled inside the long steps (k-means, sorting, nearest-entry
  // search); when it says stop, Palettize returns CANCELLED.
  CancelCheck* cancel = nullptr;
  // Optional: with more than one group (group_size > 0), the groups'
  // palettes are solved through it, side by side (each with a fork of
  // `cancel`). The result is the same either way.
  const ParallelFor* parallel = nullptr;
};

// Groups run side by side only while each holds at most this many values:
// every group in flight holds its copy and its k-means scratch (a few times
// its values), and a caller's memory bound allows one weight, not one per
// thread. Larger groups run one after another.
inline constexpr int64_t kMaxSideBySideGroupValues = int64_t{1} << 22;
// The most memory a group solved side by side holds per value: its copy,
// the sort's copy, the distinct values and counts, cluster ids and indices
// (measured 23-29 bytes on 4M-value scalar, gathered and vector groups).
inline constexpr uint64_t kSideBySideGroupBytesPerValue = 32;

struct Palettized {
  int bits = 0;
  std::vector<int64_t> lut_shape;  // rank R + 2
  std::vector<float> lut;          // row-major over lut_shape, exact in the weight dtype
  std::vector<int64_t> indices_shape;
  std::vector<uint8_t> indices;    // row-major over indices_shape
  int channel_axis = 0;            // groups, vectors and the scale live on this axis
  std::optional<int> vector_axis;  // set when cluster_dim > 1
  // Per-channel scale (enable_per_channel_scale): weight shape with the
  // channel axis reduced to 1; the palette applies to weight / scale.
  std::vector<int64_t> scale_shape;
  std::vector<float> scale;
};

// Errors: InvalidArgument for bad options or non-finite weights; Cancelled
// when options.cancel says so;
// FailedPrecondition when the technique does not apply to this tensor (a
// channel count not divisible by the group size, more than 256 distinct
// values in unique mode, ...), which callers report as a skipped weight.
absl::StatusOr<Palettized> Palettize(absl::Span<const float> weights, absl::Span<const int64_t> shape,
                                     const PalettizeOptions& options);

// Dense values of a palettized tensor (LUT lookup, then the scale), rounded
// to `precision`: the reference decompression for tests and reports.
absl::Status Depalettize(const Palettized& p, absl::Span<const int64_t> shape, Precision precision,
                         absl::Span<float> out);

// Bit widths Core ML can express in palettes (iOS18; iOS16 lacks 3).
inline bool IsPaletteBits(int bits) {
  return bits == 1 || bits == 2 || bits == 3 || bits == 4 || bits == 6 || bits == 8;
}

}  // namespace coremlz::compress

#endif  // COREMLZ_COMPRESS_PALETTIZE_H_
