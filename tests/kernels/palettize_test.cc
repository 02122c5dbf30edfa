// Palettize / Depalettize against slow references: uniform and unique
// palettes recomputed element by element from coordinates, k-means compared
// with a plain Lloyd k-means (k-means++ seeding, best of several seeds),
// grouped palettes compared with palettizing every group on its own, vector
// palettes checked by exact round trips, and the per-channel scale and the
// custom palette checked against their definitions.
#include "compress/palettize.h"
#include "compress/kmeans1d.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "gtest/gtest.h"
#include "tests/kernels/kernel_test_util.h"

namespace coremlz::compress {
namespace {

using kernel_test::Dist;
using kernel_test::NumElements;
using kernel_test::Prec;
using kernel_test::Ravel;
using kernel_test::Rd;
using kernel_test::Shape;
using kernel_test::ShapeStr;
using kernel_test::Unravel;

Precision ToPrecision(Prec p) { return p == Prec::k16 ? Precision::kFloat16 : Precision::kFloat32; }

const char* ModeName(PaletteMode m) {
  switch (m) {
    case PaletteMode::kKMeans: return "kmeans";
    case PaletteMode::kUniform: return "uniform";
    case PaletteMode::kUnique: return "unique";
    case PaletteMode::kCustom: return "custom";
  }
  return "?";
}

// ---------------------------------------------------------------------------
// Layout helpers, all from coordinates.

// LUT entry (group g, entry e, component j), read through lut_shape.
float LutAt(const Palettized& p, int rank, int axis, int64_t g, int64_t e, int64_t j) {
  std::vector<int64_t> c(rank + 2, 0);
  c[axis] = g;
  c[rank] = e;
  c[rank + 1] = j;
  return p.lut[Ravel(c, p.lut_shape)];
}

// Index of the element at `coords` (weight coordinates).
int IndexAt(const Palettized& p, int axis, int cd, std::vector<int64_t> coords) {
  coords[axis] /= cd;
  return p.indices[Ravel(coords, p.indices_shape)];
}

// Reference decompression: lut[group, index, component] (times the scale,
// rounded to the precision).
std::vector<float> RefDepalettize(const Palettized& p, const Shape& shape, int axis, Prec prec) {
  const int rank = static_cast<int>(shape.size());
  const int64_t groups = p.lut_shape[axis];
  const int64_t gs = shape[axis] / groups;
  const int cd = static_cast<int>(p.lut_shape[rank + 1]);
  std::vector<float> out(NumElements(shape));
  for (int64_t e = 0; e < static_cast<int64_t>(out.size()); ++e) {
    std::vector<int64_t> c = Unravel(e, shape);
    const int64_t ch = c[axis];
    float v = LutAt(p, rank, axis, ch / gs, IndexAt(p, axis, cd, c), ch % cd);
    if (!p.scale.empty()) {
      c[axis] = 0;
      v = Rd(prec, v * p.scale[Ravel(c, p.scale_shape)]);
    }
    out[e] = v;
  }
  return out;
}

// Values of every group (group = channel / group_size), in row-major order.
std::vector<std::vector<float>> GroupValues(const std::vector<float>& w, const Shape& shape, int axis, int64_t gs) {
  std::vector<std::vector<float>> groups(shape[axis] / gs);
  for (int64_t e = 0; e < static_cast<int64_t>(w.size()); ++e) {
    groups[Unravel(e, shape)[axis] / gs].push_back(w[e]);
  }
  return groups;
}

// Shapes documented in palettize.h / iOS18 constexpr_lut_to_dense.
void CheckShapes(const Palettized& p, const Shape& shape, int axis, int64_t groups, int bits, int cd) {
  const int rank = static_cast<int>(shape.size());
  EXPECT_EQ(p.bits, bits);
  ASSERT_EQ(p.lut_shape.size(), static_cast<size_t>(rank + 2));
  for (int a = 0; a < rank; ++a) EXPECT_EQ(p.lut_shape[a], a == axis ? groups : 1) << "lut axis " << a;
  EXPECT_EQ(p.lut_shape[rank], int64_t{1} << bits);
  EXPECT_EQ(p.lut_shape[rank + 1], cd);
  EXPECT_EQ(static_cast<int64_t>(p.lut.size()), NumElements(p.lut_shape));
  Shape ishape = shape;
  ishape[axis] /= cd;
  EXPECT_EQ(p.indices_shape, ishape);
  EXPECT_EQ(static_cast<int64_t>(p.indices.size()), NumElements(ishape));
  for (uint8_t i : p.indices) ASSERT_LT(i, int64_t{1} << bits);
  if (cd > 1) {
    ASSERT_TRUE(p.vector_axis.has_value());
    EXPECT_EQ(*p.vector_axis, axis);
  } else {
    EXPECT_FALSE(p.vector_axis.has_value());
  }
}

// Depalettize must agree with the coordinate-based reference.
void CheckDepalettize(const Palettized& p, const Shape& shape, int axis, Prec prec) {
  std::vector<float> out(NumElements(shape), -12345.f);
  ASSERT_TRUE(Depalettize(p, shape, ToPrecision(prec), absl::MakeSpan(out)).ok());
  const std::vector<float> ref = RefDepalettize(p, shape, axis, prec);
  int bad = 0;
  for (size_t e = 0; e < out.size(); ++e) {
    if (!(out[e] == ref[e]) && !(std::isnan(out[e]) && std::isnan(ref[e]))) {
      ADD_FAILURE() << "Depalettize element " << e << ": " << out[e] << " expected " << ref[e];
      if (++bad > 5) return;
    }
  }
}

// ---------------------------------------------------------------------------
// Uniform reference (QP:713-723): fp16 arithmetic for the indices, a float64
// palette cast once.

struct RefPalette {
  std::vector<std::vector<float>> lut;  // per group, 2^bits entries
  std::vector<int> index;               // per element
  int bits = 0;
};

RefPalette RefUniform(const std::vector<float>& w, const Shape& shape, int axis, int64_t gs, int bits, Prec p) {
  const int levels = (1 << bits) - 1;
  const auto groups = GroupValues(w, shape, axis, gs);
  RefPalette r;
  r.bits = bits;
  std::vector<float> lo(groups.size()), width(groups.size());
  std::vector<Prec> work(groups.size(), p);
  for (size_t g = 0; g < groups.size(); ++g) {
    const float vmin = *std::min_element(groups[g].begin(), groups[g].end());
    const float vmax = *std::max_element(groups[g].begin(), groups[g].end());
    lo[g] = vmin;
    // Documented difference from Core ML tools: a range wider than fp16's
    // (numpy's palette would be all NaN) is worked in fp32.
    if (p == Prec::k16 && !std::isfinite(Rd(p, vmax - vmin))) work[g] = Prec::k32;
    width[g] = Rd(work[g], vmax - vmin);
    const double scale = static_cast<double>(width[g]) / levels;  // fp16 scalar / int -> float64
    std::vector<float> lut(levels + 1);
    for (int i = 0; i <= levels; ++i) lut[i] = kernel_test::CastDouble(p, i * scale + static_cast<double>(vmin));
    r.lut.push_back(lut);
  }
  r.index.resize(w.size());
  for (size_t e = 0; e < w.size(); ++e) {
    const int64_t g = Unravel(e, shape)[axis] / gs;
    const Prec q16 = work[g];
    const float t = Rd(q16, Rd(q16, Rd(q16, w[e] - lo[g]) / width[g]) * static_cast<float>(levels));
    const double q = kernel_test::RoundHalfEvenRef(t);
    r.index[e] = std::isnan(q) ? 0 : static_cast<int>(q);
  }
  return r;
}

// Unique reference: sorted distinct values (0.0 == -0.0), smallest allowed
// bit width over all groups, zero padding.
int SmallestBits(size_t distinct, bool allow3) {
  for (int b : {1, 2, 3, 4, 6, 8}) {
    if (b == 3 && !allow3) continue;
    if (distinct <= (size_t{1} << b)) return b;
  }
  return 0;
}

RefPalette RefUnique(const std::vector<float>& w, const Shape& shape, int axis, int64_t gs, bool allow3) {
  const auto groups = GroupValues(w, shape, axis, gs);
  std::vector<std::vector<float>> distinct;
  size_t most = 0;
  for (const auto& g : groups) {
    std::vector<float> v = g;
    for (float& x : v)
      if (x == 0) x = 0.0f;
    std::sort(v.begin(), v.end());
    v.erase(std::unique(v.begin(), v.end()), v.end());
    most = std::max(most, v.size());
    distinct.push_back(v);
  }
  RefPalette r;
  r.bits = SmallestBits(most, allow3);
  if (r.bits == 0) return r;
  for (auto& d : distinct) {
    std::vector<float> lut(size_t{1} << r.bits, 0.0f);
    std::copy(d.begin(), d.end(), lut.begin());
    r.lut.push_back(lut);
  }
  r.index.resize(w.size());
  for (size_t e = 0; e < w.size(); ++e) {
    const auto& d = distinct[Unravel(e, shape)[axis] / gs];
    int pos = -1;
    for (size_t i = 0; i < d.size(); ++i)
      if (d[i] == w[e]) pos = static_cast<int>(i);
    r.index[e] = pos;
  }
  return r;
}

// Kernel palette vs reference palette, entry by entry and element by element.
void ComparePalette(const Palettized& k, const RefPalette& ref, const Shape& shape, int axis) {
  const int rank = static_cast<int>(shape.size());
  ASSERT_EQ(k.bits, ref.bits);
  int bad = 0;
  for (size_t g = 0; g < ref.lut.size(); ++g) {
    for (size_t i = 0; i < ref.lut[g].size(); ++i) {
      const float kv = LutAt(k, rank, axis, g, i, 0);
      if (!(kv == ref.lut[g][i]) && !(std::isnan(kv) && std::isnan(ref.lut[g][i]))) {
        ADD_FAILURE() << "LUT group " << g << " entry " << i << ": kernel " << kv << " reference " << ref.lut[g][i];
        if (++bad > 5) return;
      }
    }
  }
  for (int64_t e = 0; e < NumElements(shape); ++e) {
    const int ki = IndexAt(k, axis, 1, Unravel(e, shape));
    if (ki != ref.index[e]) {
      ADD_FAILURE() << "index of element " << e << ": kernel " << ki << " reference " << ref.index[e];
      if (++bad > 5) return;
    }
  }
}

// ---------------------------------------------------------------------------
// Lloyd k-means reference: k-means++ seeding, Lloyd until stable, best SSE
// over several seeds.

long double SseOf(const std::vector<double>& x, const std::vector<double>& centers) {
  long double sse = 0;
  for (double v : x) {
    long double best = std::numeric_limits<long double>::infinity();
    for (double c : centers) best = std::min(best, (static_cast<long double>(v) - c) * (static_cast<long double>(v) - c));
    sse += best;
  }
  return sse;
}

long double LloydBestSse(const std::vector<double>& x, int k, int seeds) {
  long double best = std::numeric_limits<long double>::infinity();
  for (int seed = 0; seed < seeds; ++seed) {
    std::mt19937_64 rng(1000 + seed);
    std::vector<double> centers = {x[rng() % x.size()]};
    while (static_cast<int>(centers.size()) < k) {
      std::vector<long double> d2(x.size());
      long double total = 0;
      for (size_t i = 0; i < x.size(); ++i) {
        long double m = std::numeric_limits<long double>::infinity();
        for (double c : centers) m = std::min(m, (static_cast<long double>(x[i]) - c) * (x[i] - c));
        d2[i] = m;
        total += m;
      }
      if (total == 0) break;  // fewer distinct values than k
      std::uniform_real_distribution<double> u(0.0, static_cast<double>(total));
      long double r = u(rng), acc = 0;
      size_t pick = x.size() - 1;
      for (size_t i = 0; i < x.size(); ++i) {
        acc += d2[i];
        if (acc >= r && d2[i] > 0) {
          pick = i;
          break;
        }
      }
      centers.push_back(x[pick]);
    }
    std::vector<int> assign(x.size(), -1);
    for (int iter = 0; iter < 300; ++iter) {
      bool changed = false;
      for (size_t i = 0; i < x.size(); ++i) {
        int bi = 0;
        for (size_t c = 1; c < centers.size(); ++c)
          if (std::fabs(x[i] - centers[c]) < std::fabs(x[i] - centers[bi])) bi = static_cast<int>(c);
        if (assign[i] != bi) {
          assign[i] = bi;
          changed = true;
        }
      }
      if (!changed) break;
      std::vector<long double> sum(centers.size(), 0), cnt(centers.size(), 0);
      for (size_t i = 0; i < x.size(); ++i) {
        sum[assign[i]] += x[i];
        cnt[assign[i]] += 1;
      }
      for (size_t c = 0; c < centers.size(); ++c)
        if (cnt[c] > 0) centers[c] = static_cast<double>(sum[c] / cnt[c]);
    }
    best = std::min(best, SseOf(x, centers));
  }
  return best;
}

// Checks a k-means palette group by group: ascending used entries, zeros
// after them, every used entry referenced, exact when the group has at most
// 2^bits distinct values, and SSE no worse than the Lloyd reference (up to
// rounding the centroids to the weight dtype).
void CheckKMeans(const Palettized& k, const std::vector<float>& w, const Shape& shape, int axis, int64_t gs, int bits,
                 Prec prec) {
  const int rank = static_cast<int>(shape.size());
  const int entries = 1 << bits;
  const auto groups = GroupValues(w, shape, axis, gs);
  // Reconstruction per group, in the same element order as GroupValues.
  std::vector<std::vector<float>> recon(groups.size());
  std::vector<std::set<int>> used_idx(groups.size());
  for (int64_t e = 0; e < static_cast<int64_t>(w.size()); ++e) {
    const auto c = Unravel(e, shape);
    const int64_t g = c[axis] / gs;
    const int idx = IndexAt(k, axis, 1, c);
    used_idx[g].insert(idx);
    recon[g].push_back(LutAt(k, rank, axis, g, idx, 0));
  }
  for (size_t g = 0; g < groups.size(); ++g) {
    SCOPED_TRACE("group " + std::to_string(g));
    std::vector<float> d = groups[g];
    for (float& x : d)
      if (x == 0) x = 0;
    std::sort(d.begin(), d.end());
    d.erase(std::unique(d.begin(), d.end()), d.end());
    const int used = std::min<int>(entries, static_cast<int>(d.size()));
    for (int i = 0; i + 1 < used; ++i) {
      EXPECT_LT(LutAt(k, rank, axis, g, i, 0), LutAt(k, rank, axis, g, i + 1, 0)) << "LUT not ascending at " << i;
    }
    for (int i = used; i < entries; ++i) EXPECT_EQ(LutAt(k, rank, axis, g, i, 0), 0.0f) << "unused entry " << i;
    EXPECT_EQ(static_cast<int>(used_idx[g].size()), used) << "clusters referenced";
    if (!used_idx[g].empty()) {
      EXPECT_LT(*used_idx[g].rbegin(), used);
    }
    long double sse = 0;
    double max_ulp = 0;
    for (size_t i = 0; i < groups[g].size(); ++i) {
      const long double diff = static_cast<long double>(groups[g][i]) - recon[g][i];
      sse += diff * diff;
      max_ulp = std::max(max_ulp, kernel_test::Ulp(prec, recon[g][i]));
    }
    if (static_cast<int>(d.size()) <= entries) {
      EXPECT_EQ(sse, 0.0L) << "fewer distinct values than entries must reconstruct exactly";
      for (size_t i = 0; i < groups[g].size(); ++i) ASSERT_EQ(recon[g][i], groups[g][i]) << i;
      continue;
    }
    std::vector<double> x(groups[g].begin(), groups[g].end());
    const long double ref = LloydBestSse(x, entries, 4);
    const long double tol = groups[g].size() * (max_ulp / 2) * (max_ulp / 2) + 1e-12L * ref;
    EXPECT_LE(sse, ref + tol) << "k-means SSE " << static_cast<double>(sse) << " worse than Lloyd's "
                              << static_cast<double>(ref) << " (" << groups[g].size() << " values, " << d.size()
                              << " distinct, k=" << entries << ")";
  }
}

PalettizeOptions Opts(PaletteMode mode, int bits, int axis, int64_t gs, Prec p, int cd = 1) {
  PalettizeOptions o;
  o.mode = mode;
  o.bits = bits;
  o.channel_axis = axis;
  o.group_size = gs;
  o.cluster_dim = cd;
  o.precision = ToPrecision(p);
  return o;
}

std::string Trace(PaletteMode m, int bits, const Shape& shape, int axis, int64_t gs, Prec p, Dist d) {
  return std::string(ModeName(m)) + " bits " + std::to_string(bits) + " shape " + ShapeStr(shape) + " axis " +
         std::to_string(axis) + " group_size " + std::to_string(gs) + (p == Prec::k16 ? " fp16" : " fp32") +
         " dist " + std::to_string(static_cast<int>(d));
}

// A random shape, axis and group size (0, a proper divisor, or the full dim).
void RandomLayout(std::mt19937_64& rng, int rank, int max_dim, Shape* shape, int* axis, int64_t* gs) {
  *shape = kernel_test::RandomShape(rng, rank, max_dim);
  *axis = static_cast<int>(rng() % rank);
  const auto divs = kernel_test::Divisors((*shape)[*axis]);
  const size_t pick = rng() % (divs.size() + 1);
  *gs = pick == divs.size() ? 0 : divs[pick];
}

const Dist kDists[] = {Dist::kNormal, Dist::kUniformPos, Dist::kHugeRange, Dist::kHugePos,
                       Dist::kSmallInts, Dist::kFewValues, Dist::kConstant, Dist::kZeros};

// ---------------------------------------------------------------------------

TEST(PalettizeTest, UniformMatchesReference) {
  std::mt19937_64 rng(11);
  for (int iter = 0; iter < 120; ++iter) {
    const int rank = 1 + iter % 5;
    Shape shape;
    int axis;
    int64_t gs;
    RandomLayout(rng, rank, rank >= 4 ? 5 : (rank == 1 ? 30 : 9), &shape, &axis, &gs);
    for (Dist d : kDists) {
      for (Prec p : {Prec::k16, Prec::k32}) {
        for (int bits : {1, 2, 3, 4, 6, 8}) {
          if (bits >= 6 && rng() % 3 != 0) continue;
          SCOPED_TRACE(Trace(PaletteMode::kUniform, bits, shape, axis, gs, p, d));
          const auto w = kernel_test::RandomTensor(rng, NumElements(shape), d, p);
          auto k = Palettize(w, shape, Opts(PaletteMode::kUniform, bits, axis, gs, p));
          ASSERT_TRUE(k.ok()) << k.status();
          const int64_t g = gs == 0 ? shape[axis] : gs;
          CheckShapes(*k, shape, axis, shape[axis] / g, bits, 1);
          ComparePalette(*k, RefUniform(w, shape, axis, g, bits, p), shape, axis);
          CheckDepalettize(*k, shape, axis, p);
          if (HasFailure()) return;
        }
      }
    }
  }
}

// Hand-checked uniform palette: [0, 1] with 2 bits -> {0, 1/3, 2/3, 1}; the
// index uses fp16 ((v - min) / (max - min)) * 3 rounded half to even.
TEST(PalettizeTest, UniformHandExample) {
  const std::vector<float> w = {0.0f, 0.5f, 1.0f, 0.25f, 0.75f, 1.0f / 6};
  std::vector<float> w16(w.size());
  for (size_t i = 0; i < w.size(); ++i) w16[i] = kernel_test::H(w[i]);
  auto k = Palettize(w16, {6}, Opts(PaletteMode::kUniform, 2, 0, 0, Prec::k16));
  ASSERT_TRUE(k.ok()) << k.status();
  EXPECT_EQ(k->lut, (std::vector<float>{0.0f, kernel_test::H(1.0f / 3), kernel_test::H(2.0f / 3), 1.0f}));
  // 0.5*3 = 1.5 -> 2 (half to even); 0.25*3 = 0.75 -> 1; 0.75*3 = 2.25 -> 2;
  // fp16(1/6) = 0.16662598 -> *3 = 0.4998779 -> 0.
  EXPECT_EQ(k->indices, (std::vector<uint8_t>{0, 2, 3, 1, 2, 0}));
}

TEST(PalettizeTest, UniqueMatchesReference) {
  std::mt19937_64 rng(12);
  for (int iter = 0; iter < 150; ++iter) {
    const int rank = 1 + iter % 5;
    Shape shape;
    int axis;
    int64_t gs;
    RandomLayout(rng, rank, rank >= 4 ? 5 : (rank == 1 ? 40 : 10), &shape, &axis, &gs);
    for (Prec p : {Prec::k16, Prec::k32}) {
      for (bool allow3 : {true, false}) {
        // Draw values from a pool of a random size so every bit width occurs.
        const int pool_size = 1 + static_cast<int>(rng() % 300);
        const auto pool = kernel_test::RandomTensor(rng, pool_size, rng() % 2 ? Dist::kNormal : Dist::kHugeRange, p);
        std::vector<float> w(NumElements(shape));
        for (auto& v : w) v = pool[rng() % pool_size];
        if (rng() % 4 == 0) {
          for (auto& v : w)
            if (rng() % 6 == 0) v = (rng() % 2) ? -0.0f : 0.0f;
        }
        SCOPED_TRACE(Trace(PaletteMode::kUnique, 0, shape, axis, gs, p, Dist::kNormal) +
                     (allow3 ? "" : " no-3-bit") + " pool " + std::to_string(pool_size));
        PalettizeOptions o = Opts(PaletteMode::kUnique, 0, axis, gs, p);
        o.allow_3_bits = allow3;
        auto k = Palettize(w, shape, o);
        const int64_t g = gs == 0 ? shape[axis] : gs;
        const RefPalette ref = RefUnique(w, shape, axis, g, allow3);
        if (ref.bits == 0) {
          ASSERT_FALSE(k.ok());
          EXPECT_EQ(k.status().code(), absl::StatusCode::kFailedPrecondition);
          continue;
        }
        ASSERT_TRUE(k.ok()) << k.status();
        CheckShapes(*k, shape, axis, shape[axis] / g, ref.bits, 1);
        ComparePalette(*k, ref, shape, axis);
        CheckDepalettize(*k, shape, axis, p);
        // Exact round trip.
        std::vector<float> out(w.size());
        ASSERT_TRUE(Depalettize(*k, shape, ToPrecision(p), absl::MakeSpan(out)).ok());
        for (size_t e = 0; e < w.size(); ++e) ASSERT_EQ(out[e], w[e]) << e;
        if (HasFailure()) return;
      }
    }
  }
}

TEST(PalettizeTest, UniqueBitWidthInference) {
  // distinct count -> expected bits with and without 3-bit palettes.
  const struct {
    int distinct, bits, bits_no3;
  } cases[] = {{1, 1, 1}, {2, 1, 1}, {3, 2, 2}, {4, 2, 2}, {5, 3, 4}, {8, 3, 4}, {9, 4, 4},
               {16, 4, 4}, {17, 6, 6}, {64, 6, 6}, {65, 8, 8}, {256, 8, 8}};
  for (const auto& c : cases) {
    std::vector<float> w(300);
    for (size_t i = 0; i < w.size(); ++i) w[i] = static_cast<float>(static_cast<int>(i % c.distinct) - 7);
    for (bool allow3 : {true, false}) {
      PalettizeOptions o = Opts(PaletteMode::kUnique, 0, 0, 0, Prec::k16);
      o.allow_3_bits = allow3;
      auto k = Palettize(w, {300}, o);
      ASSERT_TRUE(k.ok()) << c.distinct;
      EXPECT_EQ(k->bits, allow3 ? c.bits : c.bits_no3) << c.distinct << " distinct";
      // LUT = sorted distinct values, then zeros.
      for (int i = 0; i < (1 << k->bits); ++i)
        EXPECT_EQ(k->lut[i], i < c.distinct ? static_cast<float>(i - 7) : 0.0f) << c.distinct << " entry " << i;
    }
  }
  std::vector<float> w(257);
  for (size_t i = 0; i < w.size(); ++i) w[i] = static_cast<float>(i);
  auto k = Palettize(w, {257}, Opts(PaletteMode::kUnique, 0, 0, 0, Prec::k16));
  ASSERT_FALSE(k.ok());
  EXPECT_EQ(k.status().code(), absl::StatusCode::kFailedPrecondition);
  // The widest group decides: one group with 2 values, one with 20.
  std::vector<float> g2(40);
  for (int i = 0; i < 20; ++i) g2[i] = static_cast<float>(i % 2);
  for (int i = 20; i < 40; ++i) g2[i] = static_cast<float>(i);
  auto kg = Palettize(g2, {2, 20}, Opts(PaletteMode::kUnique, 0, 0, 1, Prec::k16));
  ASSERT_TRUE(kg.ok());
  EXPECT_EQ(kg->bits, 6);
}

// Core ML tools' example (TP:258-299): arange(16).reshape(4, 4), groups of
// 2 rows, 3-bit unique palettes.
TEST(PalettizeTest, UniqueGroupedCoreMLToolsExample) {
  std::vector<float> w(16);
  for (int i = 0; i < 16; ++i) w[i] = static_cast<float>(i);
  auto k = Palettize(w, {4, 4}, Opts(PaletteMode::kUnique, 0, 0, 2, Prec::k32));
  ASSERT_TRUE(k.ok()) << k.status();
  EXPECT_EQ(k->bits, 3);
  EXPECT_EQ(k->lut_shape, (std::vector<int64_t>{2, 1, 8, 1}));
  for (int i = 0; i < 16; ++i) EXPECT_EQ(k->lut[i], static_cast<float>(i));
  EXPECT_EQ(k->indices, (std::vector<uint8_t>{0, 1, 2, 3, 4, 5, 6, 7, 0, 1, 2, 3, 4, 5, 6, 7}));
}

TEST(PalettizeTest, KMeansQualityVsLloyd) {
  std::mt19937_64 rng(13);
  for (int iter = 0; iter < 250; ++iter) {
    const int rank = 1 + iter % 5;
    Shape shape;
    int axis;
    int64_t gs;
    RandomLayout(rng, rank, rank >= 4 ? 5 : (rank == 1 ? 120 : 12), &shape, &axis, &gs);
    const Dist d = kDists[iter % 8];
    const Prec p = (iter / 8) % 2 ? Prec::k32 : Prec::k16;
    const int bits_choices[] = {1, 2, 3, 4, 2, 3, 6, 8};
    const int bits = bits_choices[rng() % 8];
    SCOPED_TRACE(Trace(PaletteMode::kKMeans, bits, shape, axis, gs, p, d));
    const auto w = kernel_test::RandomTensor(rng, NumElements(shape), d, p);
    auto k = Palettize(w, shape, Opts(PaletteMode::kKMeans, bits, axis, gs, p));
    ASSERT_TRUE(k.ok()) << k.status();
    const int64_t g = gs == 0 ? shape[axis] : gs;
    CheckShapes(*k, shape, axis, shape[axis] / g, bits, 1);
    CheckKMeans(*k, w, shape, axis, g, bits, p);
    CheckDepalettize(*k, shape, axis, p);
    if (HasFailure()) return;
  }
}

// fp16 k-means counts halves in a per-thread histogram. A value beyond the
// fp16 range (inf once rounded) takes the general path - an error, as it
// always was - and leaves the histogram clean: the next palette equals one
// built on a fresh thread.
TEST(PalettizeTest, KMeansFp16ValueBeyondHalfRange) {
  std::mt19937_64 rng(31);
  const Shape shape = {4, 64};
  const auto w = kernel_test::RandomTensor(rng, NumElements(shape), Dist::kNormal, Prec::k16);
  const PalettizeOptions o = Opts(PaletteMode::kKMeans, 2, 0, 2, Prec::k16);
  Palettized fresh;
  std::thread([&] {
    auto k = Palettize(w, shape, o);
    ASSERT_TRUE(k.ok()) << k.status();
    fresh = *k;
  }).join();
  std::vector<float> bad = w;
  bad[7] = 1e6f;
  EXPECT_FALSE(Palettize(bad, shape, o).ok());
  auto k = Palettize(w, shape, o);
  ASSERT_TRUE(k.ok()) << k.status();
  EXPECT_EQ(k->lut, fresh.lut);
  EXPECT_EQ(k->indices, fresh.indices);
}

TEST(PalettizeTest, KMeansLargerGroups) {
  std::mt19937_64 rng(14);
  {
    // fp16 groups of >= 10000 elements: Core ML tools' reproducible kmeans1d
    // path.
    const Shape shape = {2, 12000};
    const auto w = kernel_test::RandomTensor(rng, NumElements(shape), Dist::kNormal, Prec::k16);
    auto k = Palettize(w, shape, Opts(PaletteMode::kKMeans, 4, 0, 1, Prec::k16));
    ASSERT_TRUE(k.ok()) << k.status();
    CheckShapes(*k, shape, 0, 2, 4, 1);
    CheckKMeans(*k, w, shape, 0, 1, 4, Prec::k16);
  }
  for (Prec p : {Prec::k16, Prec::k32}) {
    for (int bits : {2, 4}) {
      for (Dist d : {Dist::kNormal, Dist::kHugeRange}) {
        SCOPED_TRACE(Trace(PaletteMode::kKMeans, bits, {1500}, 0, 0, p, d));
        const auto w = kernel_test::RandomTensor(rng, 1500, d, p);
        auto k = Palettize(w, {30, 50}, Opts(PaletteMode::kKMeans, bits, 1, 0, p));
        ASSERT_TRUE(k.ok()) << k.status();
        CheckKMeans(*k, w, {30, 50}, 1, 50, bits, p);
      }
    }
  }
}

// fp32 groups with more than 65536 distinct values take the kernel's
// bucketed path; the palette must still be at least as good as Lloyd's.
TEST(PalettizeTest, KMeansFp32ManyDistinctValues) {
  std::mt19937_64 rng(21);
  const Shape shape = {7, 10000};
  const auto w = kernel_test::RandomTensor(rng, NumElements(shape), Dist::kNormal, Prec::k32);
  for (int bits : {2, 3}) {
    SCOPED_TRACE(Trace(PaletteMode::kKMeans, bits, shape, 0, 0, Prec::k32, Dist::kNormal));
    auto k = Palettize(w, shape, Opts(PaletteMode::kKMeans, bits, 0, 0, Prec::k32));
    ASSERT_TRUE(k.ok()) << k.status();
    CheckShapes(*k, shape, 0, 1, bits, 1);
    CheckKMeans(*k, w, shape, 0, 7, bits, Prec::k32);
  }
}

// The bucketed path written out plainly, as it was before it was made
// fast (a comparison sort; Lloyd with a cluster per value, summed through
// an array): the kernel must give the same palette and indices bit for bit.
struct PlainBucketed {
  std::vector<float> lut;
  std::vector<uint8_t> idx;
};

PlainBucketed PlainBucketedKMeans(const std::vector<float>& w, int bits) {
  std::vector<float> sorted = w;
  std::stable_sort(sorted.begin(), sorted.end(), std::less<float>());
  std::vector<double> values, counts;
  for (float v : sorted) {
    if (!values.empty() && values.back() == v) {
      counts.back() += 1;
    } else {
      values.push_back(v);
      counts.push_back(1);
    }
  }
  const size_t n = values.size(), buckets = 65536;
  std::vector<double> bv(buckets), bw(buckets);
  std::vector<size_t> begin(buckets + 1);
  for (size_t b = 0; b <= buckets; ++b) begin[b] = b * n / buckets;
  for (size_t b = 0; b < buckets; ++b) {
    double wsum = 0, s = 0;
    for (size_t i = begin[b]; i < begin[b + 1]; ++i) {
      wsum += counts[i];
      s += counts[i] * values[i];
    }
    bw[b] = wsum;
    bv[b] = s / wsum;
  }
  auto r = OptimalKMeans1D(bv, bw, 1 << bits);
  EXPECT_TRUE(r.ok());
  std::vector<int32_t> cluster(n);
  for (size_t b = 0; b < buckets; ++b) {
    for (size_t i = begin[b]; i < begin[b + 1]; ++i) cluster[i] = r->cluster[b];
  }
  const int kc = static_cast<int>(r->centroids.size());
  for (int iter = 0; iter < 100; ++iter) {
    std::vector<double> sum(kc, 0), cnt(kc, 0);
    for (size_t i = 0; i < n; ++i) {
      sum[cluster[i]] += counts[i] * values[i];
      cnt[cluster[i]] += counts[i];
    }
    std::vector<double> c(kc);
    for (int j = 0; j < kc; ++j) c[j] = cnt[j] > 0 ? sum[j] / cnt[j] : 0;
    bool moved = false;
    int j = 0;
    for (size_t i = 0; i < n; ++i) {
      while (j + 1 < kc && std::fabs(values[i] - c[j + 1]) < std::fabs(values[i] - c[j])) ++j;
      if (cluster[i] != j) {
        cluster[i] = j;
        moved = true;
      }
    }
    if (!moved) break;
  }
  PlainBucketed out;
  out.lut.assign(size_t{1} << bits, 0.0f);
  for (int j = 0; j <= cluster.back(); ++j) {
    double mean = 0, total = 0;  // Core ML tools' running mean
    for (size_t i = 0; i < n; ++i) {
      if (cluster[i] != j) continue;
      total += counts[i];
      mean += (values[i] - mean) * counts[i] / total;
    }
    out.lut[j] = static_cast<float>(mean);
  }
  for (float v : w) {
    const size_t at = std::lower_bound(values.begin(), values.end(), static_cast<double>(v)) - values.begin();
    out.idx.push_back(static_cast<uint8_t>(cluster[at]));
  }
  return out;
}

TEST(PalettizeTest, KMeansFp32BucketedPathEqualsPlainLloyd) {
  std::mt19937_64 rng(22);
  const Shape shape = {9, 10000};
  auto w = kernel_test::RandomTensor(rng, NumElements(shape), Dist::kNormal, Prec::k32);
  for (size_t i = 0; i < w.size(); i += 97) w[i] = (i / 97) % 2 ? 0.0f : -0.0f;  // both zeros
  for (int bits : {1, 4, 6}) {
    SCOPED_TRACE(bits);
    auto k = Palettize(w, shape, Opts(PaletteMode::kKMeans, bits, 0, 0, Prec::k32));
    ASSERT_TRUE(k.ok()) << k.status();
    const PlainBucketed want = PlainBucketedKMeans(w, bits);
    EXPECT_EQ(k->lut, want.lut);
    EXPECT_EQ(k->indices, want.idx);
  }
}

TEST(PalettizeTest, KMeansTinyAndDegenerate) {
  std::mt19937_64 rng(15);
  for (Prec p : {Prec::k16, Prec::k32}) {
    for (int n = 1; n <= 3; ++n) {
      for (Dist d : {Dist::kNormal, Dist::kConstant, Dist::kZeros, Dist::kHugeRange}) {
        for (int bits : {1, 2, 8}) {
          const auto w = kernel_test::RandomTensor(rng, n, d, p);
          SCOPED_TRACE(Trace(PaletteMode::kKMeans, bits, {n}, 0, 0, p, d));
          auto k = Palettize(w, {n}, Opts(PaletteMode::kKMeans, bits, 0, 0, p));
          ASSERT_TRUE(k.ok()) << k.status();
          CheckShapes(*k, {n}, 0, 1, bits, 1);
          CheckKMeans(*k, w, {n}, 0, n, bits, p);
          // Uniform on the same tiny input, against its reference.
          auto u = Palettize(w, {n}, Opts(PaletteMode::kUniform, bits, 0, 0, p));
          ASSERT_TRUE(u.ok()) << u.status();
          ComparePalette(*u, RefUniform(w, {n}, 0, n, bits, p), {n}, 0);
        }
      }
    }
  }
  // All zeros: one zero centroid, zero padding; uniform palette all zero.
  const std::vector<float> zeros(12, 0.0f);
  auto k = Palettize(zeros, {3, 4}, Opts(PaletteMode::kKMeans, 4, 0, 0, Prec::k16));
  ASSERT_TRUE(k.ok());
  for (float v : k->lut) EXPECT_EQ(v, 0.0f);
  for (uint8_t i : k->indices) EXPECT_EQ(i, 0);
  auto u = Palettize(zeros, {3, 4}, Opts(PaletteMode::kUniform, 4, 0, 0, Prec::k16));
  ASSERT_TRUE(u.ok());
  for (float v : u->lut) EXPECT_EQ(v, 0.0f);
  for (uint8_t i : u->indices) EXPECT_EQ(i, 0);
}

// Grouped palettes (per_grouped_channel along axis 0 and 1) must equal
// palettizing every group as a tensor of its own.
TEST(PalettizeTest, GroupedEqualsPerGroupPalettization) {
  std::mt19937_64 rng(16);
  for (int iter = 0; iter < 100; ++iter) {
    const int rank = 2 + iter % 3;
    Shape shape = kernel_test::RandomShape(rng, rank, rank == 4 ? 4 : 7);
    const int axis = iter % 2;
    shape[axis] = 2 * (1 + static_cast<int64_t>(rng() % 4)) * (1 + static_cast<int64_t>(rng() % 2));
    const auto divs = kernel_test::Divisors(shape[axis]);
    const int64_t gs = divs[rng() % (divs.size() - 1)];  // a proper divisor: several groups
    const Prec p = iter % 3 == 0 ? Prec::k32 : Prec::k16;
    const Dist d = kDists[rng() % 6];
    const auto w = kernel_test::RandomTensor(rng, NumElements(shape), d, p);
    for (PaletteMode mode : {PaletteMode::kKMeans, PaletteMode::kUniform, PaletteMode::kUnique}) {
      const int bits = mode == PaletteMode::kUnique ? 0 : 1 + static_cast<int>(rng() % 4);
      SCOPED_TRACE(Trace(mode, bits, shape, axis, gs, p, d));
      auto whole = Palettize(w, shape, Opts(mode, bits, axis, gs, p));
      if (mode == PaletteMode::kUnique && !whole.ok()) {
        EXPECT_EQ(whole.status().code(), absl::StatusCode::kFailedPrecondition);
        continue;
      }
      ASSERT_TRUE(whole.ok()) << whole.status();
      const int64_t groups = shape[axis] / gs;
      CheckShapes(*whole, shape, axis, groups, whole->bits, 1);
      CheckDepalettize(*whole, shape, axis, p);
      int max_group_bits = 0;
      for (int64_t g = 0; g < groups; ++g) {
        Shape sub_shape = shape;
        sub_shape[axis] = gs;
        std::vector<float> sub(NumElements(sub_shape));
        for (int64_t e = 0; e < static_cast<int64_t>(sub.size()); ++e) {
          auto c = Unravel(e, sub_shape);
          c[axis] += g * gs;
          sub[e] = w[Ravel(c, shape)];
        }
        auto part = Palettize(sub, sub_shape, Opts(mode, bits, axis, 0, p));
        ASSERT_TRUE(part.ok()) << part.status();
        max_group_bits = std::max(max_group_bits, part->bits);
        const int entries_whole = 1 << whole->bits;
        for (int i = 0; i < entries_whole; ++i) {
          const float expect = i < (1 << part->bits) ? LutAt(*part, rank, axis, 0, i, 0) : 0.0f;
          const float got = LutAt(*whole, rank, axis, g, i, 0);
          EXPECT_TRUE(got == expect || (std::isnan(got) && std::isnan(expect)))
              << "group " << g << " entry " << i << ": " << got << " vs " << expect;
        }
        for (int64_t e = 0; e < static_cast<int64_t>(sub.size()); ++e) {
          auto c = Unravel(e, sub_shape);
          const int pi = IndexAt(*part, axis, 1, c);
          c[axis] += g * gs;
          ASSERT_EQ(IndexAt(*whole, axis, 1, c), pi) << "group " << g << " element " << e;
        }
      }
      if (mode == PaletteMode::kUnique) {
        EXPECT_EQ(whole->bits, max_group_bits);
      } else {
        EXPECT_EQ(whole->bits, bits);
      }
    }
  }
}

// Vector palettization: vectors are cluster_dim consecutive elements along
// the channel axis. A tensor made of at most 2^bits distinct vectors must
// round-trip exactly; unique mode must list the vectors in lexicographic
// order.
TEST(PalettizeTest, VectorRoundTrip) {
  std::mt19937_64 rng(17);
  for (int iter = 0; iter < 300; ++iter) {
    const int cd = iter % 2 ? 4 : 2;
    const int rank = 1 + iter % 4;
    Shape shape = kernel_test::RandomShape(rng, rank, rank >= 3 ? 4 : 6);
    const int axis = static_cast<int>(rng() % std::min(rank, 2));
    shape[axis] = cd * (1 + static_cast<int64_t>(rng() % 4));
    const int64_t nvec_axis = shape[axis] / cd;
    const auto divs = kernel_test::Divisors(nvec_axis);
    const int64_t gs = cd * divs[rng() % divs.size()];  // multiple of cd
    const int bits = 1 + static_cast<int>(rng() % 4);
    const Prec p = iter % 3 ? Prec::k16 : Prec::k32;
    // A set of distinct vectors, at most 2^bits.
    const int nd = 1 + static_cast<int>(rng() % (1 << bits));
    const auto pool = kernel_test::RandomTensor(rng, nd * cd, iter % 5 == 0 ? Dist::kSmallInts : Dist::kNormal, p);
    std::vector<float> w(NumElements(shape));
    Shape ishape = shape;
    ishape[axis] /= cd;
    for (int64_t v = 0; v < NumElements(ishape); ++v) {
      const int which = static_cast<int>(rng() % nd);
      auto c = Unravel(v, ishape);
      const int64_t base = c[axis] * cd;
      for (int j = 0; j < cd; ++j) {
        c[axis] = base + j;
        w[Ravel(c, shape)] = pool[which * cd + j];
      }
    }
    for (PaletteMode mode : {PaletteMode::kKMeans, PaletteMode::kUnique}) {
      SCOPED_TRACE(Trace(mode, bits, shape, axis, gs, p, Dist::kNormal) + " cd " + std::to_string(cd));
      auto k = Palettize(w, shape, Opts(mode, bits, axis, gs, p, cd));
      ASSERT_TRUE(k.ok()) << k.status();
      const int64_t groups = shape[axis] / gs;
      if (mode == PaletteMode::kKMeans) CheckShapes(*k, shape, axis, groups, bits, cd);
      std::vector<float> out(w.size());
      ASSERT_TRUE(Depalettize(*k, shape, ToPrecision(p), absl::MakeSpan(out)).ok());
      for (size_t e = 0; e < w.size(); ++e) ASSERT_EQ(out[e], w[e]) << "element " << e;
      CheckDepalettize(*k, shape, axis, p);
      if (mode == PaletteMode::kUnique) {
        // Per group: sorted distinct vectors, zero padded; bits = widest group.
        std::vector<std::vector<std::vector<float>>> per_group(groups);
        for (int64_t v = 0; v < NumElements(ishape); ++v) {
          auto c = Unravel(v, ishape);
          const int64_t g = c[axis] * cd / gs;
          std::vector<float> vec(cd);
          const int64_t base = c[axis] * cd;
          for (int j = 0; j < cd; ++j) {
            c[axis] = base + j;
            vec[j] = w[Ravel(c, shape)];
          }
          per_group[g].push_back(vec);
        }
        size_t most = 0;
        for (auto& pg : per_group) {
          std::sort(pg.begin(), pg.end());
          pg.erase(std::unique(pg.begin(), pg.end()), pg.end());
          most = std::max(most, pg.size());
        }
        const int ubits = SmallestBits(most, true);
        CheckShapes(*k, shape, axis, groups, ubits, cd);
        for (int64_t g = 0; g < groups; ++g)
          for (int i = 0; i < (1 << ubits); ++i)
            for (int j = 0; j < cd; ++j) {
              const float expect = i < static_cast<int>(per_group[g].size()) ? per_group[g][i][j] : 0.0f;
              EXPECT_EQ(LutAt(*k, rank, axis, g, i, j), expect) << "group " << g << " entry " << i << "," << j;
            }
      }
      if (HasFailure()) return;
    }
  }
}

TEST(PalettizeTest, VectorKMeansMoreVectorsThanEntries) {
  std::mt19937_64 rng(18);
  for (Prec p : {Prec::k16, Prec::k32}) {
    const Shape shape = {8, 40};
    const auto w = kernel_test::RandomTensor(rng, NumElements(shape), Dist::kNormal, p);
    auto k = Palettize(w, shape, Opts(PaletteMode::kKMeans, 3, 0, 4, p, 2));
    ASSERT_TRUE(k.ok()) << k.status();
    CheckShapes(*k, shape, 0, 2, 3, 2);
    CheckDepalettize(*k, shape, 0, p);
    // Lloyd's centroids are cluster means (or the assignment is nearest to
    // the previous means), so the SSE of each group cannot exceed the group's
    // total sum of squares about its mean (beyond the rounding of the LUT).
    for (int64_t g = 0; g < 2; ++g) {
      double mean[2] = {0, 0}, total = 0, sse = 0, max_ulp = 0;
      const int64_t count = 2 * 40;  // vectors in the group
      for (int64_t row = 2 * g; row < 2 * g + 2; ++row)
        for (int64_t col = 0; col < 40; ++col)
          for (int j = 0; j < 2; ++j) mean[j] += w[(row * 2 + j) * 40 + col] / count;
      for (int64_t row = 2 * g; row < 2 * g + 2; ++row)
        for (int64_t col = 0; col < 40; ++col) {
          const int idx = k->indices[row * 40 + col];
          for (int j = 0; j < 2; ++j) {
            const double x = w[(row * 2 + j) * 40 + col];
            const double c = LutAt(*k, 2, 0, g, idx, j);
            total += (x - mean[j]) * (x - mean[j]);
            sse += (x - c) * (x - c);
            max_ulp = std::max(max_ulp, kernel_test::Ulp(p, c));
          }
        }
      EXPECT_LE(sse, total * (1 + 1e-9) + 2 * count * max_ulp * max_ulp) << "group " << g;
      EXPECT_LT(sse, total * 0.9) << "group " << g << ": 8 centroids should beat one by far on normal data";
    }
  }
}

// enable_per_channel_scale: scale = max |w| over the channel axis (shape
// with that axis reduced to 1), zeros replaced by 1; the palette is built for
// w / scale (rounded to the dtype) and Depalettize returns lut * scale
// rounded. `single_group_off_axis0` selects the layouts hit by the
// Depalettize bug below (one palette group, channel axis != 0); the others
// are checked by PerChannelScale.
void PerChannelScaleCases(bool single_group_off_axis0) {
  std::mt19937_64 rng(single_group_off_axis0 ? 190 : 19);
  int cases = 0;
  for (int iter = 0; cases < 60 && iter < 5000; ++iter) {
    const int rank = 1 + iter % 4;
    Shape shape = kernel_test::RandomShape(rng, rank, rank >= 3 ? 5 : 8);
    const int axis = static_cast<int>(rng() % rank);
    const auto divs = kernel_test::Divisors(shape[axis]);
    const int64_t gs = (iter % 3 == 0) ? 0 : divs[rng() % divs.size()];
    const int64_t g = gs == 0 ? shape[axis] : gs;
    const bool affected = axis != 0 && shape[axis] / g == 1;
    if (affected != single_group_off_axis0) continue;
    // Layouts where the buggy Depalettize would also read past the end of
    // the scale vector (shape[axis] > shape[0]) are left out: undefined
    // behaviour in a test is no use.
    if (affected && shape[axis] > shape[0]) continue;
    ++cases;
    const Prec p = iter % 2 ? Prec::k32 : Prec::k16;
    const int bits = 2 + static_cast<int>(rng() % 3);
    auto w = kernel_test::RandomTensor(rng, NumElements(shape), iter % 4 == 3 ? Dist::kHugeRange : Dist::kNormal, p);
    // Zero a whole line along the axis sometimes: its scale must become 1.
    if (iter % 2 == 0 && w.size() > 1) {
      auto c0 = Unravel(rng() % w.size(), shape);
      for (int64_t ch = 0; ch < shape[axis]; ++ch) {
        c0[axis] = ch;
        w[Ravel(c0, shape)] = 0.0f;
      }
    }
    SCOPED_TRACE(Trace(PaletteMode::kUniform, bits, shape, axis, gs, p, Dist::kNormal) + " per-channel scale");
    PalettizeOptions o = Opts(PaletteMode::kUniform, bits, axis, gs, p);
    o.per_channel_scale = true;
    auto k = Palettize(w, shape, o);
    ASSERT_TRUE(k.ok()) << k.status();
    Shape sshape = shape;
    sshape[axis] = 1;
    ASSERT_EQ(k->scale_shape, sshape);
    std::vector<float> scale(NumElements(sshape), 0.0f);
    for (int64_t e = 0; e < static_cast<int64_t>(w.size()); ++e) {
      auto c = Unravel(e, shape);
      c[axis] = 0;
      float& s = scale[Ravel(c, sshape)];
      s = std::max(s, std::fabs(w[e]));
    }
    for (float& s : scale)
      if (s == 0) s = 1;
    ASSERT_EQ(k->scale.size(), scale.size());
    for (size_t i = 0; i < scale.size(); ++i) EXPECT_EQ(k->scale[i], scale[i]) << "scale " << i;
    std::vector<float> normalized(w.size());
    for (int64_t e = 0; e < static_cast<int64_t>(w.size()); ++e) {
      auto c = Unravel(e, shape);
      c[axis] = 0;
      normalized[e] = Rd(p, w[e] / scale[Ravel(c, sshape)]);
    }
    CheckShapes(*k, shape, axis, shape[axis] / g, bits, 1);
    ComparePalette(*k, RefUniform(normalized, shape, axis, g, bits, p), shape, axis);
    // KERNEL BUG (palettize.cc:463-465 and :479, Depalettize: the channel
    // axis is guessed as `p.vector_axis.value_or(0)` unless some LUT dim
    // exceeds 1, and scale_shape is ignored): with a single palette group and a per-channel
    // scale on channel_axis != 0, Depalettize applies the scale along axis 0
    // and returns wrong values (and reads past the end of `scale` when
    // shape[axis] > shape[0]). Fails only in PerChannelScaleSingleGroupOffAxis0.
    CheckDepalettize(*k, shape, axis, p);
    if (::testing::Test::HasFailure()) return;
  }
  EXPECT_EQ(cases, 60);
}

TEST(PalettizeTest, PerChannelScale) { PerChannelScaleCases(false); }

// See the KERNEL BUG note in PerChannelScaleCases.
TEST(PalettizeTest, PerChannelScaleSingleGroupOffAxis0) { PerChannelScaleCases(true); }

TEST(PalettizeTest, PerChannelScaleSmallRepro) {
  // KERNEL BUG repro (see PerChannelScaleCases): shape [3, 2], channel_axis
  // 1, per tensor, per-channel scale -> scale_shape [3, 1] = {2, 4, 8}; the
  // unique palette of w / scale reproduces w exactly, but Depalettize
  // multiplies by scale[column] instead of scale[row].
  const std::vector<float> w = {1, -2, 4, 0.5f, 0.25f, -8};
  const Shape shape = {3, 2};
  PalettizeOptions o = Opts(PaletteMode::kUnique, 0, 1, 0, Prec::k16);
  o.per_channel_scale = true;
  auto k = Palettize(w, shape, o);
  ASSERT_TRUE(k.ok()) << k.status();
  EXPECT_EQ(k->scale_shape, (Shape{3, 1}));
  EXPECT_EQ(k->scale, (std::vector<float>{2, 4, 8}));
  std::vector<float> out(6, -1.f);
  ASSERT_TRUE(Depalettize(*k, shape, Precision::kFloat16, absl::MakeSpan(out)).ok());
  for (int i = 0; i < 6; ++i) EXPECT_EQ(out[i], w[i]) << "KERNEL BUG: Depalettize used the wrong scale axis, element " << i;
}

TEST(PalettizeTest, CustomPaletteNearestEntry) {
  std::mt19937_64 rng(20);
  std::normal_distribution<float> normal(0.f, 1.5f);
  for (int iter = 0; iter < 100; ++iter) {
    const int rank = 1 + iter % 4;
    Shape shape;
    int axis;
    int64_t gs;
    RandomLayout(rng, rank, rank >= 3 ? 5 : 9, &shape, &axis, &gs);
    const int bits = 1 + static_cast<int>(rng() % 4);
    if (bits == 3 && iter % 2) continue;
    const Prec p = iter % 2 ? Prec::k32 : Prec::k16;
    std::vector<float> palette(1 << bits);
    for (float& v : palette) v = normal(rng);  // not fp16-exact: must be rounded
    const auto w = kernel_test::RandomTensor(rng, NumElements(shape), Dist::kNormal, p);
    SCOPED_TRACE(Trace(PaletteMode::kCustom, bits, shape, axis, gs, p, Dist::kNormal));
    PalettizeOptions o = Opts(PaletteMode::kCustom, 0, axis, gs, p);
    o.custom_palette = palette;
    auto k = Palettize(w, shape, o);
    ASSERT_TRUE(k.ok()) << k.status();
    const int64_t g = gs == 0 ? shape[axis] : gs;
    CheckShapes(*k, shape, axis, shape[axis] / g, bits, 1);
    for (int64_t grp = 0; grp < shape[axis] / g; ++grp)
      for (int i = 0; i < (1 << bits); ++i) EXPECT_EQ(LutAt(*k, rank, axis, grp, i, 0), Rd(p, palette[i]));
    for (int64_t e = 0; e < static_cast<int64_t>(w.size()); ++e) {
      const int idx = IndexAt(*k, axis, 1, Unravel(e, shape));
      const double mine = std::fabs(static_cast<double>(w[e]) - Rd(p, palette[idx]));
      for (int j = 0; j < (1 << bits); ++j)
        ASSERT_LE(mine, std::fabs(static_cast<double>(w[e]) - Rd(p, palette[j]))) << "element " << e << " entry " << j;
    }
    CheckDepalettize(*k, shape, axis, p);
  }
}

TEST(PalettizeTest, CustomVectorPalette) {
  // 4 entries of 2 values; data made of exactly those vectors.
  const std::vector<float> palette = {0, 0, 1, -1, -2, 3, 0.5f, 0.5f};
  const Shape shape = {4, 3};  // vectors along axis 0: rows (0,1) and (2,3)
  std::vector<float> w(12);
  const int choice[6] = {3, 1, 0, 2, 2, 1};
  for (int v = 0; v < 6; ++v) {
    const int r = v / 3, col = v % 3;
    w[(2 * r) * 3 + col] = palette[2 * choice[v]];
    w[(2 * r + 1) * 3 + col] = palette[2 * choice[v] + 1];
  }
  PalettizeOptions o = Opts(PaletteMode::kCustom, 0, 0, 0, Prec::k16, 2);
  o.custom_palette = palette;
  auto k = Palettize(w, shape, o);
  ASSERT_TRUE(k.ok()) << k.status();
  CheckShapes(*k, shape, 0, 1, 2, 2);
  for (int v = 0; v < 6; ++v) EXPECT_EQ(k->indices[v], choice[v]) << v;
  std::vector<float> out(12);
  ASSERT_TRUE(Depalettize(*k, shape, Precision::kFloat16, absl::MakeSpan(out)).ok());
  EXPECT_EQ(out, w);
}

TEST(PalettizeTest, Errors) {
  const std::vector<float> w = {1, 2, 3, 4, 5, 6};
  const Shape shape = {2, 3};
  for (PaletteMode mode : {PaletteMode::kKMeans, PaletteMode::kUniform, PaletteMode::kUnique, PaletteMode::kCustom}) {
    SCOPED_TRACE(ModeName(mode));
    PalettizeOptions o = Opts(mode, 2, 0, 0, Prec::k16);
    if (mode == PaletteMode::kCustom) o.custom_palette = {0, 1, 2, 3};
    ASSERT_TRUE(Palettize(w, shape, o).ok());
    for (float bad : {std::nanf(""), std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity()}) {
      std::vector<float> wb = w;
      wb[4] = bad;
      auto k = Palettize(wb, shape, o);
      ASSERT_FALSE(k.ok()) << bad;
      EXPECT_EQ(k.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    }
    // Channel count not divisible by the group size: a skip.
    PalettizeOptions g = o;
    g.channel_axis = 1;
    g.group_size = 2;
    auto k = Palettize(w, shape, g);
    ASSERT_FALSE(k.ok());
    EXPECT_EQ(k.status().code(), absl::StatusCode::kFailedPrecondition);
    g.channel_axis = 0;
    g.group_size = 4;  // larger than the axis: does not divide it either
    k = Palettize(w, shape, g);
    ASSERT_FALSE(k.ok());
    EXPECT_EQ(k.status().code(), absl::StatusCode::kFailedPrecondition);
    // Channel axis out of range.
    PalettizeOptions a = o;
    a.channel_axis = 2;
    k = Palettize(w, shape, a);
    ASSERT_FALSE(k.ok());
    EXPECT_EQ(k.status().code(), absl::StatusCode::kInvalidArgument);
    // Weight count mismatch.
    k = Palettize(w, {2, 2}, o);
    ASSERT_FALSE(k.ok());
    EXPECT_EQ(k.status().code(), absl::StatusCode::kInvalidArgument);
  }
  for (PaletteMode mode : {PaletteMode::kKMeans, PaletteMode::kUniform}) {
    for (int bits : {0, 5, 7, 9}) {
      auto k = Palettize(w, shape, Opts(mode, bits, 0, 0, Prec::k16));
      ASSERT_FALSE(k.ok()) << bits;
      EXPECT_EQ(k.status().code(), absl::StatusCode::kInvalidArgument) << bits;
    }
  }
  // Custom palettes must have 2^n entries (n in 1,2,3,4,6,8).
  for (size_t n : {0u, 1u, 3u, 5u, 32u}) {
    PalettizeOptions o = Opts(PaletteMode::kCustom, 0, 0, 0, Prec::k16);
    o.custom_palette.assign(n, 0.5f);
    auto k = Palettize(w, shape, o);
    ASSERT_FALSE(k.ok()) << n;
    EXPECT_EQ(k.status().code(), absl::StatusCode::kInvalidArgument) << n;
  }
  // Group size not a multiple of cluster_dim: a skip.
  const std::vector<float> w12(12, 1.0f);
  auto k = Palettize(w12, {6, 2}, Opts(PaletteMode::kKMeans, 2, 0, 3, Prec::k16, 2));
  ASSERT_FALSE(k.ok());
  EXPECT_EQ(k.status().code(), absl::StatusCode::kFailedPrecondition);
  // Uniform does not support vectors (Core ML tools: NotImplementedError).
  k = Palettize(w12, {6, 2}, Opts(PaletteMode::kUniform, 2, 0, 0, Prec::k16, 2));
  ASSERT_FALSE(k.ok());
  EXPECT_EQ(k.status().code(), absl::StatusCode::kInvalidArgument);
  // cluster_dim < 1.
  k = Palettize(w12, {6, 2}, Opts(PaletteMode::kKMeans, 2, 0, 0, Prec::k16, 0));
  ASSERT_FALSE(k.ok());
  EXPECT_EQ(k.status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace coremlz::compress
