// One file of ~640 lines: Palettize is one entry point over five palette
// builders (k-means, uniform, unique, custom, vector) that share the same
// group walk, distinct-value pass and result type; they are file-local so
// that the kernel's whole contract is the one in palettize.h.
#include "compress/palettize.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <map>
#include <numeric>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "compress/float_sort.h"
#include "compress/kmeans1d.h"
#include "compress/reduce.h"
#include "compress/vector_kmeans.h"
#include "format/fp16.h"

namespace coremlz::compress {
namespace {

// Rounds a double to the weight dtype with a single rounding (numpy's astype).
float ToWeightType(double v, Precision p) {
  if (p == Precision::kFloat16) return format::HalfToFloat(format::DoubleToHalf(v));
  return static_cast<float>(v);
}

uint16_t HalfBits(float v) { return format::FloatToHalf(v); }

// Calls fn(FloatToHalf(v)) for every value, narrowing in bulk.
template <typename Fn>
void ForEachHalfBits(absl::Span<const float> vals, Fn&& fn) {
  uint16_t halves[2048];
  for (size_t i = 0; i < vals.size(); i += 2048) {
    const size_t n = std::min<size_t>(2048, vals.size() - i);
    format::FloatToHalf(vals.subspan(i, n), absl::MakeSpan(halves, n));
    for (size_t j = 0; j < n; ++j) fn(halves[j]);
  }
}

// Row-major decomposition around the channel axis: element
// (o, c, i) lives at (o * dim + c) * inner + i.
struct AxisView {
  int64_t outer = 1, dim = 1, inner = 1;
};

AxisView ViewAround(absl::Span<const int64_t> shape, int axis) {
  AxisView v;
  for (int a = 0; a < axis; ++a) v.outer *= shape[a];
  v.dim = shape[axis];
  for (size_t a = axis + 1; a < shape.size(); ++a) v.inner *= shape[a];
  return v;
}

// Sorted distinct values with multiplicities. -0.0 and 0.0 are one value
// (numpy.unique treats them as equal).
struct Distinct {
  std::vector<double> values;
  std::vector<double> counts;
};

absl::StatusOr<Distinct> DistinctValues(absl::Span<const float> vals, Precision p, CancelCheck* cancel) {
  Distinct d;
  if (p == Precision::kFloat16) {
    // fp16 weights: a 65536-bucket histogram, no sort of the data itself.
    std::vector<uint32_t> hist(65536, 0);
    ForEachHalfBits(vals, [&](uint16_t h) { ++hist[h]; });
    std::vector<std::pair<float, uint32_t>> present;
    for (uint32_t h = 0; h < 65536; ++h) {
      if (hist[h] != 0) present.emplace_back(format::HalfToFloat(static_cast<uint16_t>(h)), hist[h]);
    }
    std::sort(present.begin(), present.end(),
              [](const auto& a, const auto& b) { return a.first < b.first; });
    for (const auto& [v, c] : present) {
      if (!d.values.empty() && d.values.back() == v) {
        d.counts.back() += c;
      } else {
        d.values.push_back(v);
        d.counts.push_back(c);
      }
    }
    return d;
  }
  // Radix-sorted (linear, polled): the order, and so which of 0.0 / -0.0
  // comes first, is std::stable_sort's.
  std::vector<float> sorted(vals.begin(), vals.end());
  if (!StableSortFloats(sorted, cancel)) return CancelledStatus();
  d.values.reserve(sorted.size());
  d.counts.reserve(sorted.size());
  for (size_t i = 0; i < sorted.size(); ++i) {
    if ((i & 4095) == 0 && Stopped(cancel, 4096 * 32)) return CancelledStatus();
    const float v = sorted[i];
    if (!d.values.empty() && d.values.back() == v) {
      d.counts.back() += 1;
    } else {
      d.values.push_back(v);
      d.counts.push_back(1);
    }
  }
  return d;
}

// Scratch reused across the groups a thread palettizes (grouped-channel
// palettization of a 4096x4096 weight builds 256 palettes).
struct HalfScratch {
  std::vector<uint32_t> hist = std::vector<uint32_t>(65536, 0);  // all zero between uses
  std::vector<uint8_t> cluster_of = std::vector<uint8_t>(65536);  // half bits -> cluster
};

HalfScratch& ThreadHalfScratch() {
  thread_local HalfScratch scratch;
  return scratch;
}

// DistinctValues of fp16 weights for k-means, without a sort: finite halves
// in value order are the negative bit patterns from 0xfbff down to 0x8001,
// then zero (0x8000 and 0x0000, one value), then 0x0001 up to 0x7bff. Zero
// is stored as +0.0 (DistinctValues keeps whichever zero its sort puts
// first; k-means computes the same from either, unique palettes would not).
// False, with nothing stored, when a value rounds to an fp16 inf or NaN.
bool DistinctHalves(absl::Span<const float> vals, Distinct* d) {
  std::vector<uint32_t>& hist = ThreadHalfScratch().hist;
  ForEachHalfBits(vals, [&](uint16_t h) { ++hist[h]; });
  uint32_t non_finite = 0;
  for (uint32_t h = 0x7c00; h <= 0x7fff; ++h) non_finite |= hist[h] | hist[h | 0x8000];
  if (non_finite != 0) {
    std::fill(hist.begin(), hist.end(), 0);
    return false;
  }
  d->values.clear();
  d->counts.clear();
  auto take = [&](uint32_t h) {
    if (hist[h] == 0) return;
    d->values.push_back(format::HalfToFloat(static_cast<uint16_t>(h)));
    d->counts.push_back(hist[h]);
    hist[h] = 0;
  };
  for (uint32_t h = 0xfbff; h > 0x8000; --h) take(h);
  if (const uint32_t zeros = hist[0x8000] + hist[0x0000]; zeros != 0) {
    d->values.push_back(0.0);
    d->counts.push_back(zeros);
    hist[0x8000] = hist[0x0000] = 0;
  }
  for (uint32_t h = 0x0001; h <= 0x7bff; ++h) take(h);
  return true;
}

// Weighted mean of a run accumulated the way the exact 1-D k-means in Core
// ML tools does (c += (x - c) * w / W), so centroids agree to the last bit.
double RunMean(const Distinct& d, size_t begin, size_t end) {
  double c = 0, total = 0;
  for (size_t i = begin; i < end; ++i) {
    total += d.counts[i];
    c += (d.values[i] - c) * d.counts[i] / total;
  }
  return c;
}

// Cluster id per distinct value for k clusters, minimum SSE. Exact for up
// to kExactLimit distinct values; beyond that (only fp32 weights) the DP runs
// on rank-contiguous buckets and Lloyd iterations refine the result.
constexpr size_t kExactLimit = 65536;

absl::StatusOr<std::vector<int32_t>> ClusterDistinct(const Distinct& d, int k, CancelCheck* cancel) {
  const size_t n = d.values.size();
  if (n <= kExactLimit) return OptimalKMeans1DClusters(d.values, d.counts, k, cancel);
  const size_t buckets = kExactLimit;
  if (Stopped(cancel, 8 * static_cast<int64_t>(n))) return CancelledStatus();
  std::vector<double> bv(buckets), bw(buckets);
  std::vector<size_t> bucket_begin(buckets + 1);
  for (size_t b = 0; b <= buckets; ++b) bucket_begin[b] = b * n / buckets;
  for (size_t b = 0; b < buckets; ++b) {
    double w = 0, s = 0;
    for (size_t i = bucket_begin[b]; i < bucket_begin[b + 1]; ++i) {
      w += d.counts[i];
      s += d.counts[i] * d.values[i];
    }
    bw[b] = w;
    bv[b] = s / w;
  }
  ASSIGN_OR_RETURN(std::vector<int32_t> bucket_cluster, OptimalKMeans1DClusters(bv, bw, k, cancel));
  std::vector<int32_t> cluster(n);
  for (size_t b = 0; b < buckets; ++b) {
    for (size_t i = bucket_begin[b]; i < bucket_begin[b + 1]; ++i) cluster[i] = bucket_cluster[b];
  }
  // Lloyd refinement on the exact values: recompute means, reassign by
  // nearest centroid (contiguous in 1-D), until nothing moves. Clusters are
  // runs of the sorted values (the DP's are, and the reassignment walk only
  // moves forward), kept as run starts: each mean is summed over its run in
  // index order in registers - the same sums as accumulating per element
  // into an array, which went through memory every element.
  const int kc = bucket_cluster.back() + 1;  // the runs are 0, 1, ... in order
  std::vector<size_t> start(kc + 1, 0), next(kc + 1, 0);
  for (size_t i = 0; i < n; ++i) ++start[cluster[i] + 1];
  for (int j = 0; j < kc; ++j) start[j + 1] += start[j];
  std::vector<double> c(kc);
  const double* values = d.values.data();
  const double* counts = d.counts.data();
  for (int iter = 0; iter < 100; ++iter) {
    if (Stopped(cancel, 2 * static_cast<int64_t>(n))) return CancelledStatus();
    for (int j = 0; j < kc; ++j) {
      double sum = 0, cnt = 0;
      for (size_t i = start[j]; i < start[j + 1]; ++i) {
        sum += counts[i] * values[i];
        cnt += counts[i];
      }
      c[j] = cnt > 0 ? sum / cnt : 0;
    }
    int j = 0;
    next[0] = 0;
    for (size_t i = 0; i < n; ++i) {
      const double v = values[i];
      while (j + 1 < kc && std::fabs(v - c[j + 1]) < std::fabs(v - c[j])) next[++j] = i;
    }
    for (int t = j + 1; t <= kc; ++t) next[t] = n;
    if (next == start) break;
    start.swap(next);
  }
  for (int j = 0; j < kc; ++j) std::fill(cluster.begin() + start[j], cluster.begin() + start[j + 1], j);
  return cluster;
}

// One group's scalar palette: LUT entries (already in the weight dtype) and
// the index of every value of the group, in gather order.
struct GroupResult {
  std::vector<float> lut;  // 2^bits entries
  std::vector<uint8_t> idx;
};

absl::StatusOr<GroupResult> KMeansGroup(absl::Span<const float> vals, int bits, Precision p, CancelCheck* cancel) {
  const int k = 1 << bits;
  Distinct d;
  if (p != Precision::kFloat16 || !DistinctHalves(vals, &d)) {
    ASSIGN_OR_RETURN(d, DistinctValues(vals, p, cancel));
  }
  ASSIGN_OR_RETURN(std::vector<int32_t> cluster, ClusterDistinct(d, k, cancel));
  GroupResult g;
  g.lut.assign(k, 0.0f);  // unused entries stay 0, as in Core ML tools
  const int used = cluster.empty() ? 0 : cluster.back() + 1;
  size_t begin = 0;
  for (int c = 0; c < used; ++c) {
    size_t end = begin;
    while (end < cluster.size() && cluster[end] == c) ++end;
    g.lut[c] = ToWeightType(RunMean(d, begin, end), p);
    begin = end;
  }
  g.idx.resize(vals.size());
  if (p == Precision::kFloat16) {
    // Map every half bit pattern present (both zeros share a value) to its
    // cluster; only those are looked up, so the rest need no clearing.
    std::vector<uint8_t>& by_bits = ThreadHalfScratch().cluster_of;
    for (size_t i = 0; i < d.values.size(); ++i) {
      uint16_t h = HalfBits(static_cast<float>(d.values[i]));
      by_bits[h] = static_cast<uint8_t>(cluster[i]);
      if (d.values[i] == 0) {
        by_bits[0x0000] = static_cast<uint8_t>(cluster[i]);
        by_bits[0x8000] = static_cast<uint8_t>(cluster[i]);
      }
    }
    uint16_t halves[2048];
    for (size_t c = 0; c < vals.size(); c += 2048) {
      const size_t n = std::min<size_t>(2048, vals.size() - c);
      format::FloatToHalf(vals.subspan(c, n), absl::MakeSpan(halves, n));
      uint8_t* idx = g.idx.data() + c;
      for (size_t j = 0; j < n; ++j) idx[j] = by_bits[halves[j]];
    }
  } else {
    // Clusters are runs of the sorted distinct values, so a value's cluster
    // is that of the last run starting at or below it: a search over at
    // most 256 run starts (in L1) instead of over millions of distinct
    // values (a cache miss per step, most of an fp32 tensor's time).
    // The search is branch-free over a power-of-two table padded with
    // +infinity (a value's run is unpredictable: a branchy search mispredicts
    // about every other step).
    std::vector<double> run_start;
    std::vector<uint8_t> run_cluster;
    for (size_t i = 0; i < cluster.size(); ++i) {
      if (i == 0 || cluster[i] != cluster[i - 1]) {
        run_start.push_back(d.values[i]);
        run_cluster.push_back(static_cast<uint8_t>(cluster[i]));
      }
    }
    size_t width = 1;
    while (width < run_start.size()) width *= 2;
    run_start.resize(width, std::numeric_limits<double>::infinity());
    const double* starts = run_start.data();
    for (size_t i = 0; i < vals.size(); ++i) {
      if ((i & 4095) == 0 && Stopped(cancel, 4096 * 10)) return CancelledStatus();
      // The last run starting at or below the value; every value is one of
      // d.values, so at least run 0 does.
      const double v = vals[i];
      size_t run = 0;
      for (size_t step = width / 2; step > 0; step /= 2) run += starts[run + step] <= v ? step : 0;
      g.idx[i] = run_cluster[run];
    }
  }
  return g;
}

GroupResult UniformGroup(absl::Span<const float> vals, int bits, Precision precision) {
  Precision p = precision;
  const int levels = (1 << bits) - 1;
  float vmin = vals.empty() ? 0.f : vals[0], vmax = vmin;
  MinMax(vals, &vmin, &vmax);
  // A range beyond fp16's (max - min > 65504) would make every index NaN;
  // numpy then emits a palette of NaNs. Work in fp32 for such a group.
  if (p == Precision::kFloat16 && !std::isfinite(R(p, vmax - vmin))) p = Precision::kFloat32;
  const float width = R(p, vmax - vmin);
  GroupResult g;
  g.lut.resize(levels + 1);
  // The palette step is (max - min) / (2^n - 1) in float64: Core ML tools'
  // reference outputs come from numpy 1.x, where a float16 scalar divided by
  // an int promotes to float64. Entries are i * step + min, cast once.
  const double step = static_cast<double>(width) / levels;
  for (int i = 0; i <= levels; ++i) {
    g.lut[i] = ToWeightType(static_cast<double>(i) * step + static_cast<double>(vmin), precision);
  }
  g.idx.resize(vals.size());
  // ((v - vmin) / (vmax - vmin)) * (2^n - 1), each step rounded to the
  // weight dtype: three bulk roundings per chunk.
  const float top = static_cast<float>(levels);
  float x[1024];
  for (size_t c = 0; c < vals.size(); c += 1024) {
    const size_t n = std::min<size_t>(1024, vals.size() - c);
    const float* in = vals.data() + c;
    for (size_t j = 0; j < n; ++j) x[j] = in[j] - vmin;
    R(p, absl::MakeSpan(x, n));
    for (size_t j = 0; j < n; ++j) x[j] = x[j] / width;
    R(p, absl::MakeSpan(x, n));
    for (size_t j = 0; j < n; ++j) x[j] = x[j] * top;
    R(p, absl::MakeSpan(x, n));
    uint8_t* idx = g.idx.data() + c;
    for (size_t j = 0; j < n; ++j) {
      const float r = RoundHalfEven(x[j]);
      float clamped = r < 0.0f ? 0.0f : r;
      clamped = clamped > top ? top : clamped;
      idx[j] = static_cast<uint8_t>(r == r ? clamped : 0.0f);  // NaN -> 0
    }
  }
  return g;
}

absl::StatusOr<GroupResult> UniqueGroup(absl::Span<const float> vals, int bits, Precision p, CancelCheck* cancel) {
  ASSIGN_OR_RETURN(Distinct d, DistinctValues(vals, p, cancel));
  GroupResult g;
  g.lut.assign(size_t{1} << bits, 0.0f);
  for (size_t i = 0; i < d.values.size(); ++i) g.lut[i] = static_cast<float>(d.values[i]);
  g.idx.resize(vals.size());
  for (size_t i = 0; i < vals.size(); ++i) {
    g.idx[i] = static_cast<uint8_t>(std::lower_bound(d.values.begin(), d.values.end(),
                                                     static_cast<double>(vals[i])) - d.values.begin());
  }
  return g;
}

absl::StatusOr<GroupResult> CustomGroup(absl::Span<const float> vals, const std::vector<float>& palette,
                                        CancelCheck* cancel) {
  GroupResult g;
  g.lut = palette;
  g.idx.resize(vals.size());
  for (size_t i = 0; i < vals.size(); ++i) {
    if ((i & 4095) == 0 && Stopped(cancel, 4096 * static_cast<int64_t>(palette.size()))) return CancelledStatus();
    size_t best = 0;
    float best_d = std::fabs(vals[i] - palette[0]);
    for (size_t j = 1; j < palette.size(); ++j) {
      const float dj = std::fabs(vals[i] - palette[j]);
      if (dj < best_d) {
        best = j;
        best_d = dj;
      }
    }
    g.idx[i] = static_cast<uint8_t>(best);
  }
  return g;
}

int SmallestPaletteBits(size_t distinct, bool allow_3_bits) {
  for (int b : {1, 2, 3, 4, 6, 8}) {
    if (b == 3 && !allow_3_bits) continue;
    if (distinct <= (size_t{1} << b)) return b;
  }
  return 0;
}

// Vector palettes: vectors are cluster_dim consecutive elements along the
// channel axis. Returns LUT rows (2^bits x cd) and one index per vector.
absl::StatusOr<GroupResult> VectorGroup(absl::Span<const float> vecs, int cd, int bits, PaletteMode mode,
                                        const std::vector<float>& custom, Precision p, CancelCheck* cancel) {
  const size_t count = vecs.size() / cd;
  const int k = 1 << bits;
  GroupResult g;
  g.lut.assign(static_cast<size_t>(k) * cd, 0.0f);
  g.idx.resize(count);
  if (mode == PaletteMode::kKMeans) {
    VectorKMeansOptions options;
    options.cancel = cancel;
    // coremltools stops its vector k-means (scikit-learn's KMeans, tol=1e-2)
    // once the centroids barely move; so does this.
    options.shift_tolerance = 1e-2;
    ASSIGN_OR_RETURN(VectorKMeansResult r, VectorKMeans(vecs, cd, k, options));
    for (size_t i = 0; i < r.centroids.size(); ++i) g.lut[i] = ToWeightType(r.centroids[i], p);
    for (size_t v = 0; v < count; ++v) g.idx[v] = static_cast<uint8_t>(r.assignment[v]);
    return g;
  }
  if (mode == PaletteMode::kUnique) {
    std::map<std::vector<float>, int> rows;  // lexicographic order, as numpy.unique(axis=0)
    for (size_t v = 0; v < count; ++v) {
      if ((v & 4095) == 0 && Stopped(cancel, 4096 * 64)) return CancelledStatus();  // a map insertion: ~64 units
      rows.emplace(std::vector<float>(vecs.begin() + v * cd, vecs.begin() + (v + 1) * cd), 0);
    }
    int next = 0;
    for (auto& [row, id] : rows) {
      id = next;
      std::copy(row.begin(), row.end(), g.lut.begin() + static_cast<size_t>(next) * cd);
      ++next;
    }
    for (size_t v = 0; v < count; ++v) {
      if ((v & 4095) == 0 && Stopped(cancel, 4096 * 64)) return CancelledStatus();
      g.idx[v] = static_cast<uint8_t>(rows[std::vector<float>(vecs.begin() + v * cd, vecs.begin() + (v + 1) * cd)]);
    }
    return g;
  }
  if (mode == PaletteMode::kCustom) {
    g.lut = custom;
    for (size_t v = 0; v < count; ++v) {
      if ((v & 1023) == 0 && Stopped(cancel, 1024 * static_cast<int64_t>(k) * cd)) return CancelledStatus();
      double best_d = INFINITY;
      for (int e = 0; e < k; ++e) {
        double dist = 0;
        for (int j = 0; j < cd; ++j) {
          double diff = vecs[v * cd + j] - custom[static_cast<size_t>(e) * cd + j];
          dist += diff * diff;
        }
        if (dist < best_d) {
          best_d = dist;
          g.idx[v] = static_cast<uint8_t>(e);
        }
      }
    }
    return g;
  }
  return absl::InvalidArgumentError("uniform palettization does not support cluster_dim > 1");
}

}  // namespace

absl::StatusOr<Palettized> Palettize(absl::Span<const float> weights, absl::Span<const int64_t> shape,
                                     const PalettizeOptions& o) {
  const int rank = static_cast<int>(shape.size());
  if (rank == 0) return absl::InvalidArgumentError("cannot palettize a scalar");
  if (o.channel_axis < 0 || o.channel_axis >= rank) {
    return absl::InvalidArgumentError(absl::StrCat("channel axis ", o.channel_axis, " out of range for rank ", rank));
  }
  const int64_t n = std::accumulate(shape.begin(), shape.end(), int64_t{1}, std::multiplies<>());
  if (n != static_cast<int64_t>(weights.size())) return absl::InvalidArgumentError("weight count does not match shape");
  if (!AllFinite(weights)) return absl::InvalidArgumentError("weights contain NaN or infinity");
  if (o.cluster_dim < 1) return absl::InvalidArgumentError(absl::StrCat("cluster_dim must be >= 1, got ", o.cluster_dim));
  int bits = o.bits;
  if (o.mode == PaletteMode::kCustom) {
    const size_t entries = o.custom_palette.size() / o.cluster_dim;
    bits = 0;
    for (int b : {1, 2, 3, 4, 6, 8}) {
      if (entries == (size_t{1} << b)) bits = b;
    }
    if (bits == 0 || o.custom_palette.size() % o.cluster_dim != 0) {
      return absl::InvalidArgumentError(absl::StrCat("a custom palette needs 2, 4, 8, 16, 64 or 256 entries of ",
                                                     o.cluster_dim, " values; got ", o.custom_palette.size(), " values"));
    }
  } else if (o.mode != PaletteMode::kUnique && !IsPaletteBits(bits)) {
    return absl::InvalidArgumentError(absl::StrCat("nbits must be one of 1, 2, 3, 4, 6, 8; got ", bits));
  }

  const AxisView view = ViewAround(shape, o.channel_axis);
  const int64_t gs = o.group_size == 0 ? view.dim : o.group_size;
  if (gs <= 0 || view.dim % gs != 0) {
    return absl::FailedPreconditionError(absl::StrCat("the ", view.dim, " channels on axis ", o.channel_axis,
                                                      " are not divisible by group_size ", gs));
  }
  if (gs % o.cluster_dim != 0) {
    return absl::FailedPreconditionError(absl::StrCat("group size ", gs, " is not divisible by cluster_dim ",
                                                      o.cluster_dim));
  }
  const int64_t groups = view.dim / gs;
  const int cd = o.cluster_dim;

  Palettized out;
  // Per-channel scale: max |w| over the channel axis, zeros replaced by 1,
  // and the palette is built for w / scale.
  std::vector<float> normalized;
  absl::Span<const float> w = weights;
  if (o.per_channel_scale) {
    out.scale_shape.assign(shape.begin(), shape.end());
    out.scale_shape[o.channel_axis] = 1;
    out.scale.assign(view.outer * view.inner, 0.0f);
    for (int64_t oo = 0; oo < view.outer; ++oo)
      for (int64_t c = 0; c < view.dim; ++c)
        for (int64_t i = 0; i < view.inner; ++i) {
          float& s = out.scale[oo * view.inner + i];
          s = std::max(s, std::fabs(weights[(oo * view.dim + c) * view.inner + i]));
        }
    for (float& s : out.scale) {
      if (s == 0) s = 1;
    }
    normalized.resize(weights.size());
    for (int64_t oo = 0; oo < view.outer; ++oo)
      for (int64_t c = 0; c < view.dim; ++c)
        for (int64_t i = 0; i < view.inner; ++i) {
          const int64_t e = (oo * view.dim + c) * view.inner + i;
          normalized[e] = R(o.precision, weights[e] / out.scale[oo * view.inner + i]);
        }
    w = normalized;
  }

  // Gather each group's values (vectors for cd > 1) in row-major order.
  auto gather = [&](int64_t g) {
    std::vector<float> vals;
    vals.reserve(view.outer * gs * view.inner);
    if (cd == 1) {
      // A group's scalars are one contiguous run per outer index.
      for (int64_t oo = 0; oo < view.outer; ++oo) {
        const float* run = w.data() + (oo * view.dim + g * gs) * view.inner;
        vals.insert(vals.end(), run, run + gs * view.inner);
      }
      return vals;
    }
    for (int64_t oo = 0; oo < view.outer; ++oo)
      for (int64_t v = 0; v < gs / cd; ++v)
        for (int64_t i = 0; i < view.inner; ++i)
          for (int j = 0; j < cd; ++j)
            vals.push_back(w[(oo * view.dim + g * gs + v * cd + j) * view.inner + i]);
    return vals;
  };
  // A group's values: the weights themselves when they are one contiguous
  // run (per-tensor, or groups along the outermost axis), else a copy in
  // `copy`.
  std::vector<float> group_copy;
  auto group_values = [&](int64_t g, std::vector<float>* copy) -> absl::Span<const float> {
    if (cd == 1 && (view.outer == 1 || groups == 1)) return w.subspan(g * gs * view.inner, view.outer * gs * view.inner);
    *copy = gather(g);
    return *copy;
  };

  if (o.mode == PaletteMode::kUnique) {
    // One bit width for the whole tensor: the widest any group needs.
    size_t most = 0;
    for (int64_t g = 0; g < groups; ++g) {
      absl::Span<const float> vals = group_values(g, &group_copy);
      if (cd == 1) {
        ASSIGN_OR_RETURN(Distinct d, DistinctValues(vals, o.precision, o.cancel));
        most = std::max(most, d.values.size());
      } else {
        std::map<std::vector<float>, int> rows;
        for (size_t v = 0; v < vals.size() / cd; ++v) {
          if ((v & 4095) == 0 && Stopped(o.cancel, 4096 * 64)) return CancelledStatus();
          rows.emplace(std::vector<float>(vals.begin() + v * cd, vals.begin() + (v + 1) * cd), 0);
        }
        most = std::max(most, rows.size());
      }
    }
    bits = SmallestPaletteBits(most, o.allow_3_bits);
    if (bits == 0) {
      return absl::FailedPreconditionError(absl::StrCat(most, " distinct values; unique palettization allows at most 256"));
    }
  }

  out.bits = bits;
  const int64_t entries = int64_t{1} << bits;
  out.lut_shape.assign(rank + 2, 1);
  out.lut_shape[o.channel_axis] = groups;
  out.lut_shape[rank] = entries;
  out.lut_shape[rank + 1] = cd;
  out.lut.assign(groups * entries * cd, 0.0f);
  out.indices_shape.assign(shape.begin(), shape.end());
  out.indices_shape[o.channel_axis] = view.dim / cd;
  out.indices.assign(n / cd, 0);
  out.channel_axis = o.channel_axis;
  if (cd > 1) out.vector_axis = o.channel_axis;

  std::vector<float> custom = o.custom_palette;
  for (float& v : custom) v = R(o.precision, v);

  // One group's palette and indices, written to its own part of `out`
  // (so groups may run at once). `copy`: the caller's scratch for values
  // that are not one contiguous run.
  auto palettize_group = [&](int64_t g, CancelCheck* cancel, std::vector<float>* copy) -> absl::Status {
    // Also covers the linear-time steps (gathering, uniform palettes).
    if (Stopped(cancel, view.outer * gs * view.inner)) return CancelledStatus();
    absl::Span<const float> vals = group_values(g, copy);
    GroupResult r;
    if (cd > 1) {
      ASSIGN_OR_RETURN(r, VectorGroup(vals, cd, bits, o.mode, custom, o.precision, cancel));
    } else {
      switch (o.mode) {
        case PaletteMode::kKMeans: {
          ASSIGN_OR_RETURN(r, KMeansGroup(vals, bits, o.precision, cancel));
          break;
        }
        case PaletteMode::kUniform:
          r = UniformGroup(vals, bits, o.precision);
          break;
        case PaletteMode::kUnique: {
          ASSIGN_OR_RETURN(r, UniqueGroup(vals, bits, o.precision, cancel));
          break;
        }
        case PaletteMode::kCustom: {
          ASSIGN_OR_RETURN(r, CustomGroup(vals, custom, cancel));
          break;
        }
      }
    }
    std::copy(r.lut.begin(), r.lut.end(), out.lut.begin() + g * entries * cd);
    // Scatter indices back: index tensor has dim / cd entries on the axis.
    const int64_t idim = view.dim / cd;
    const int64_t run = (gs / cd) * view.inner;  // indices of one outer index, contiguous
    for (int64_t oo = 0; oo < view.outer; ++oo) {
      std::memcpy(out.indices.data() + (oo * idim + g * (gs / cd)) * view.inner, r.idx.data() + oo * run, run);
    }
    return absl::OkStatus();
  };

  if (o.parallel == nullptr || groups < 2 || view.outer * gs * view.inner > kMaxSideBySideGroupValues) {
    for (int64_t g = 0; g < groups; ++g) RETURN_IF_ERROR(palettize_group(g, o.cancel, &group_copy));
    return out;
  }
  // Side by side. The lowest failing group's error is returned, as one
  // after the other would; groups above a failed one are skipped.
  std::vector<absl::Status> status(groups);
  std::atomic<int64_t> first_failed{groups};
  const uint64_t piece_bytes = static_cast<uint64_t>(view.outer * gs * view.inner) * kSideBySideGroupBytesPerValue;
  o.parallel->Run(groups, piece_bytes, [&](int64_t g) {
    if (g > first_failed.load(std::memory_order_relaxed)) return;
    std::vector<float> copy;
    CancelCheck fork = o.cancel != nullptr ? o.cancel->Fork() : CancelCheck();
    status[g] = palettize_group(g, o.cancel != nullptr ? &fork : nullptr, &copy);
    if (status[g].ok()) return;
    int64_t seen = first_failed.load();
    while (g < seen && !first_failed.compare_exchange_weak(seen, g)) {
    }
  });
  for (const absl::Status& s : status) {
    if (s.ok()) continue;
    if (o.cancel != nullptr && absl::IsCancelled(s)) o.cancel->Poll();  // the caller reads its check
    return s;
  }
  return out;
}

absl::Status Depalettize(const Palettized& p, absl::Span<const int64_t> shape, Precision precision,
                         absl::Span<float> out) {
  const int rank = static_cast<int>(shape.size());
  if (static_cast<int>(p.lut_shape.size()) != rank + 2) return absl::InvalidArgumentError("LUT rank mismatch");
  const int axis = p.channel_axis;
  if (axis < 0 || axis >= rank) return absl::InvalidArgumentError("channel axis out of range");
  const AxisView view = ViewAround(shape, axis);
  const int64_t groups = p.lut_shape[axis];
  const int64_t gs = view.dim / groups;
  const int64_t entries = p.lut_shape[rank];
  const int cd = static_cast<int>(p.lut_shape[rank + 1]);
  const int64_t idim = view.dim / cd;
  for (int64_t oo = 0; oo < view.outer; ++oo)
    for (int64_t c = 0; c < view.dim; ++c) {
      // One channel's run: the same LUT row (group) and vector lane.
      const float* lut = p.lut.data() + (c / gs) * entries * cd + c % cd;
      const uint8_t* idx = p.indices.data() + (oo * idim + c / cd) * view.inner;
      float* dst = out.data() + (oo * view.dim + c) * view.inner;
      for (int64_t i = 0; i < view.inner; ++i) dst[i] = lut[idx[i] * cd];
      if (!p.scale.empty()) {
        const float* scale = p.scale.data() + oo * view.inner;
        for (int64_t i = 0; i < view.inner; ++i) dst[i] *= scale[i];
        R(precision, absl::MakeSpan(dst, view.inner));
      }
    }
  return absl::OkStatus();
}

}  // namespace coremlz::compress
